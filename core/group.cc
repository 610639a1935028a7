#include "core/group.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace singleflight {

// One execution, and the waiters who want its outcome; after it finished, a
// lingering value. Every field but the constants is guarded by its shard's
// mutex.
struct Group::Flight {
  Flight(const NamedFetcher& fetcher, absl::string_view scope,
         absl::string_view key, size_t shard)
      : fetcher(fetcher),
        fetcher_name(fetcher.name),
        scope(scope),
        key(key),
        shard(shard) {}

  // Used only while the flight runs (the fetcher may be gone once every
  // waiter is answered); `fetcher_name` is the flight's own copy.
  const NamedFetcher& fetcher;
  const std::string fetcher_name;
  const std::string scope;
  const std::string key;
  const size_t shard;
  const absl::Time started = absl::Now();
  const std::shared_ptr<CancellationSignal> cancellation =
      std::make_shared<CancellationSignal>();

  // Set once the outcome is delivered or the flight is cancelled; from then
  // on the flight takes no more waiters, and is out of its shard unless it
  // lingers.
  bool done = false;
  // Set by Forget: the flight is in its shard's `forgotten` set, not its
  // table, so that a newer flight may own the key.
  bool forgotten = false;
  // Go's dups > 0: someone joined after the starter.
  bool joined = false;
  // The fetch holds one of its fetcher's max_concurrency slots.
  bool holds_slot = false;
  // Finished, and kept in the table with `result` for the fetcher's linger.
  bool lingering = false;
  std::shared_ptr<const FlightResult> result;
  uint64_t next_waiter_id = kStarterId;
  absl::flat_hash_map<uint64_t, Waiter> waiters;
  TimerQueue::TimerId timeout_timer = 0;
  // When the fetch was called; unset while the flight waits for a slot.
  absl::Time fetch_started = absl::InfinitePast();

  static constexpr uint64_t kStarterId = 1;
};

namespace {

// Counts a new flight of `fetcher`, unless that would pass its max_flights.
bool AdmitFlight(const NamedFetcher& fetcher) {
  int before = fetcher.flights.fetch_add(1);
  if (fetcher.policy.max_flights > 0 && before >= fetcher.policy.max_flights) {
    fetcher.flights.fetch_sub(1);
    return false;
  }
  return true;
}

}  // namespace

Group::Group(TimerQueue* timers, FlightObserver* observer)
    : timers_(timers), observer_(observer) {}

Group::Shard& Group::ShardFor(KeyView key) {
  return shards_[KeyHash()(key) % kShards];
}

Group::Ticket Group::Do(const NamedFetcher& fetcher, const Call& call,
                        Waiter waiter) {
  KeyView view{fetcher.name, call.scope, call.key};
  Shard& shard = ShardFor(view);
  Ticket ticket;
  std::shared_ptr<const FlightResult> lingering;
  bool joined = false;
  const char* refused_by = nullptr;
  const FetcherPolicy& policy = fetcher.policy;
  {
    absl::MutexLock lock(&shard.mu);
    auto it = shard.flights.find(view);
    if (it != shard.flights.end()) {
      Flight& flight = *it->second;
      if (flight.lingering) {
        lingering = flight.result;
      } else if (policy.max_waiters > 0 &&
                 flight.waiters.size() >=
                     static_cast<size_t>(policy.max_waiters)) {
        refused_by = "max_waiters";
      } else {
        flight.joined = true;
        ticket.waiter_id_ = flight.next_waiter_id++;
        flight.waiters.emplace(ticket.waiter_id_, std::move(waiter));
        ticket.flight_ = it->second;
        joined = true;
      }
    } else if (!AdmitFlight(fetcher)) {
      refused_by = "max_flights";
    } else {
      auto flight = std::make_shared<Flight>(fetcher, call.scope, call.key,
                                             &shard - &shards_[0]);
      ticket.waiter_id_ = flight->next_waiter_id++;
      flight->waiters.emplace(ticket.waiter_id_, std::move(waiter));
      shard.flights.emplace(OwnedKey(fetcher.name, std::string(call.scope),
                                     std::string(call.key)),
                            flight);
      ticket.flight_ = std::move(flight);
    }
  }
  if (refused_by != nullptr) {
    if (observer_ != nullptr) observer_->Rejected(fetcher, refused_by);
    waiter(Outcome{std::make_shared<const FlightResult>(FlightResult{
                       absl::ResourceExhaustedError(absl::StrCat(
                           "fetcher \"", fetcher.name, "\" is at its ",
                           refused_by, " limit; try again later")),
                       ""}),
                   false});
    return Ticket();
  }
  if (joined) {
    if (observer_ != nullptr) observer_->Joined(fetcher);
    return ticket;
  }
  if (lingering != nullptr) {
    if (observer_ != nullptr) observer_->Joined(fetcher);
    waiter(Outcome{std::move(lingering), /*shared=*/true});
    return Ticket();
  }
  FetchRequest request;
  request.key = std::string(call.key);
  request.payload = std::string(call.payload);
  if (call.metadata != nullptr) request.metadata = *call.metadata;
  request.cancellation = ticket.flight_->cancellation;
  Start(ticket.flight_, std::move(request));
  return ticket;
}

void Group::Start(const std::shared_ptr<Flight>& flight, FetchRequest request) {
  ConcurrencyLimiter* limiter = flight->fetcher.limiter.get();
  if (limiter == nullptr) {
    RunFetch(flight, std::move(request));
    return;
  }
  bool accepted =
      limiter->Acquire([this, flight, request = std::move(request)]() mutable {
        {
          absl::MutexLock lock(&shards_[flight->shard].mu);
          if (flight->done) return false;  // Abandoned while it waited.
          flight->holds_slot = true;
        }
        RunFetch(flight, std::move(request));
        return true;
      });
  if (!accepted) {
    const FetcherPolicy& policy = flight->fetcher.policy;
    if (observer_ != nullptr) observer_->Rejected(flight->fetcher, "max_queue");
    Complete(flight, {absl::ResourceExhaustedError(absl::StrCat(
                          "fetcher \"", flight->fetcher.name, "\" is running ",
                          policy.max_concurrency, " executions and has ",
                          policy.max_queue, " waiting; try again later")),
                      ""});
  }
}

void Group::RunFetch(const std::shared_ptr<Flight>& flight,
                     FetchRequest request) {
  const absl::Duration timeout = flight->fetcher.policy.timeout;
  const absl::Time started = absl::Now();
  {
    absl::MutexLock lock(&shards_[flight->shard].mu);
    flight->fetch_started = started;
  }
  if (observer_ != nullptr) observer_->ExecutionStarted(flight->fetcher);
  auto done = [this, flight](absl::StatusOr<std::string> value) {
    if (value.ok()) {
      Complete(flight, {absl::OkStatus(), *std::move(value)});
    } else {
      Complete(flight, {value.status(), ""});
    }
  };
  // A throwing fetcher is Go's panicking fn: the flight fails, every waiter is
  // told, and nothing hangs.
  try {
    flight->fetcher.fetcher->Fetch(std::move(request), std::move(done));
  } catch (const std::exception& e) {
    Complete(flight, {absl::InternalError(e.what()), ""});
  } catch (...) {
    Complete(
        flight,
        {absl::InternalError(absl::StrCat("fetcher \"", flight->fetcher_name,
                                          "\" threw a non-standard exception")),
         ""});
  }
  // The timeout runs from the start of the fetch. An immediate result, the
  // common case of cheap fetchers, needs no timer at all.
  {
    absl::MutexLock lock(&shards_[flight->shard].mu);
    if (flight->done) return;
  }
  TimerQueue::TimerId timer = timers_->Schedule(
      started + timeout - absl::Now(), [this, flight, timeout] {
        Complete(flight,
                 {absl::DeadlineExceededError(absl::StrCat(
                      "fetcher \"", flight->fetcher_name, "\" timed out after ",
                      absl::FormatDuration(timeout))),
                  ""},
                 /*cancel_fetch=*/true);
      });
  bool ended;
  {
    absl::MutexLock lock(&shards_[flight->shard].mu);
    ended = flight->done;
    if (!ended) flight->timeout_timer = timer;
  }
  if (ended) timers_->Cancel(timer);  // It ended while the timer was set.
}

void Group::Detach(Shard& shard, Flight& flight) {
  if (flight.forgotten) {
    shard.forgotten.erase(&flight);
  } else {
    // Unless forgotten, a flight still owns its key: a newer flight can only
    // exist for a forgotten one.
    shard.flights.erase(KeyView{flight.fetcher_name, flight.scope, flight.key});
  }
}

void Group::Complete(const std::shared_ptr<Flight>& flight, FlightResult result,
                     bool cancel_fetch) {
  bool ok = result.status.ok();
  auto shared_result = std::make_shared<const FlightResult>(std::move(result));
  absl::flat_hash_map<uint64_t, Waiter> waiters;
  bool joined;
  absl::Duration linger = absl::ZeroDuration();
  ConcurrencyLimiter* slot_of = nullptr;
  TimerQueue::TimerId timer;
  absl::Time fetch_started;
  {
    Shard& shard = shards_[flight->shard];
    absl::MutexLock lock(&shard.mu);
    if (flight->done) return;
    flight->done = true;
    const FetcherPolicy& policy = flight->fetcher.policy;
    if (!flight->forgotten && (ok || policy.linger_errors)) {
      linger = policy.linger;
    }
    if (linger > absl::ZeroDuration()) {
      flight->lingering = true;
      flight->result = shared_result;
    } else {
      Detach(shard, *flight);
    }
    waiters.swap(flight->waiters);
    joined = flight->joined;
    timer = flight->timeout_timer;
    if (flight->holds_slot) slot_of = flight->fetcher.limiter.get();
    flight->holds_slot = false;
    fetch_started = flight->fetch_started;
  }
  if (timer != 0) timers_->Cancel(timer);
  if (observer_ != nullptr && fetch_started != absl::InfinitePast()) {
    observer_->ExecutionEnded(flight->fetcher, shared_result->status,
                              absl::Now() - fetch_started);
  }
  if (linger > absl::ZeroDuration()) {
    timers_->Schedule(linger, [this, flight] { Expire(flight); });
  }
  if (cancel_fetch) flight->cancellation->Cancel();
  // Nothing here touches the fetcher once a waiter has its outcome: a caller
  // may tear the fetcher down as soon as all of its waiters are answered.
  flight->fetcher.flights.fetch_sub(1);
  if (slot_of != nullptr) slot_of->Release();
  for (auto& [id, waiter] : waiters) {
    waiter(Outcome{shared_result, id != Flight::kStarterId || joined});
  }
}

void Group::Expire(const std::shared_ptr<Flight>& flight) {
  Shard& shard = shards_[flight->shard];
  absl::MutexLock lock(&shard.mu);
  auto it = shard.flights.find(
      KeyView{flight->fetcher_name, flight->scope, flight->key});
  if (it != shard.flights.end() && it->second == flight) {
    shard.flights.erase(it);
  }
}

bool Group::Leave(const Ticket& ticket, absl::Status status) {
  if (ticket.flight_ == nullptr) return false;
  Flight& flight = *ticket.flight_;
  Waiter waiter;
  bool cancel_flight = false;
  ConcurrencyLimiter* slot_of = nullptr;
  TimerQueue::TimerId timer = 0;
  absl::Time fetch_started = absl::InfinitePast();
  {
    Shard& shard = shards_[flight.shard];
    absl::MutexLock lock(&shard.mu);
    auto it = flight.waiters.find(ticket.waiter_id_);
    if (it == flight.waiters.end()) return false;
    waiter = std::move(it->second);
    flight.waiters.erase(it);
    if (flight.waiters.empty()) {
      // Nobody wants the result any more: free the key, stop the fetch.
      flight.done = true;
      Detach(shard, flight);
      cancel_flight = true;
      timer = flight.timeout_timer;
      if (flight.holds_slot) slot_of = flight.fetcher.limiter.get();
      flight.holds_slot = false;
      fetch_started = flight.fetch_started;
    }
  }
  if (cancel_flight) {
    if (timer != 0) timers_->Cancel(timer);
    flight.cancellation->Cancel();
    if (observer_ != nullptr && fetch_started != absl::InfinitePast()) {
      observer_->ExecutionEnded(flight.fetcher,
                                absl::CancelledError("every waiter left"),
                                absl::Now() - fetch_started);
    }
  }
  if (cancel_flight) flight.fetcher.flights.fetch_sub(1);
  if (slot_of != nullptr) slot_of->Release();
  waiter(Outcome{
      std::make_shared<const FlightResult>(FlightResult{std::move(status), ""}),
      false});
  return true;
}

Outcome Group::DoSync(const NamedFetcher& fetcher, absl::string_view key,
                      absl::string_view payload) {
  absl::Notification ready;
  Outcome outcome;
  Do(fetcher, key, payload, [&](Outcome o) {
    outcome = std::move(o);
    ready.Notify();
  });
  ready.WaitForNotification();
  return outcome;
}

bool Group::Forget(absl::string_view fetcher, absl::string_view key,
                   absl::string_view scope) {
  KeyView view{fetcher, scope, key};
  Shard& shard = ShardFor(view);
  std::shared_ptr<Flight> dropped;  // Released outside the lock.
  absl::MutexLock lock(&shard.mu);
  auto it = shard.flights.find(view);
  if (it == shard.flights.end()) return false;
  dropped = it->second;
  shard.flights.erase(it);
  if (dropped->lingering) return false;
  dropped->forgotten = true;
  shard.forgotten.emplace(dropped.get(), dropped);
  return true;
}

void Group::FailAll(const absl::Status& status) {
  std::vector<std::shared_ptr<Flight>> flights;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& entry : shard.flights) flights.push_back(entry.second);
    for (const auto& entry : shard.forgotten) flights.push_back(entry.second);
  }
  for (const std::shared_ptr<Flight>& flight : flights) {
    if (flight->lingering) {
      Expire(flight);
    } else {
      Complete(flight, {status, ""}, /*cancel_fetch=*/true);
    }
  }
}

std::vector<FlightInfo> Group::InFlight() const {
  std::vector<FlightInfo> infos;
  absl::Time now = absl::Now();
  auto describe = [&](const Flight& flight) {
    if (flight.lingering) return;
    infos.push_back(FlightInfo{flight.fetcher_name, flight.key,
                               static_cast<uint32_t>(flight.waiters.size()),
                               now - flight.started, flight.forgotten});
  };
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& entry : shard.flights) describe(*entry.second);
    for (const auto& entry : shard.forgotten) describe(*entry.second);
  }
  return infos;
}

}  // namespace singleflight
