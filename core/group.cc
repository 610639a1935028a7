#include "core/group.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace singleflight {

// One execution in progress, and the waiters who want its outcome.
// Every field but the constants is guarded by its shard's mutex.
struct Group::Flight {
  Flight(absl::string_view fetcher, absl::string_view key, size_t shard)
      : fetcher(fetcher), key(key), shard(shard) {}

  const std::string fetcher;
  const std::string key;
  const size_t shard;
  const absl::Time started = absl::Now();
  const std::shared_ptr<CancellationSignal> cancellation =
      std::make_shared<CancellationSignal>();

  // Set once the outcome is delivered or the flight is cancelled; from then
  // on the flight is out of its shard and takes no more waiters.
  bool done = false;
  // Set by Forget: the flight is in its shard's `forgotten` set, not its
  // table, so that a newer flight may own the key.
  bool forgotten = false;
  // Go's dups > 0: someone joined after the starter.
  bool joined = false;
  uint64_t next_waiter_id = kStarterId;
  absl::flat_hash_map<uint64_t, Waiter> waiters;
  TimerQueue::TimerId timeout_timer = 0;

  static constexpr uint64_t kStarterId = 1;
};

Group::Group(TimerQueue* timers) : timers_(timers) {}

Group::Shard& Group::ShardFor(KeyView key) {
  return shards_[KeyHash()(key) % kShards];
}

Group::Ticket Group::Do(const NamedFetcher& fetcher, absl::string_view key,
                        absl::string_view payload, Waiter waiter) {
  KeyView view{fetcher.name, key};
  Shard& shard = ShardFor(view);
  Ticket ticket;
  {
    absl::MutexLock lock(&shard.mu);
    auto it = shard.flights.find(view);
    if (it != shard.flights.end()) {
      Flight& flight = *it->second;
      flight.joined = true;
      ticket.waiter_id_ = flight.next_waiter_id++;
      flight.waiters.emplace(ticket.waiter_id_, std::move(waiter));
      ticket.flight_ = it->second;
      return ticket;
    }
    auto flight =
        std::make_shared<Flight>(fetcher.name, key, &shard - &shards_[0]);
    ticket.waiter_id_ = flight->next_waiter_id++;
    flight->waiters.emplace(ticket.waiter_id_, std::move(waiter));
    shard.flights.emplace(std::make_pair(fetcher.name, std::string(key)),
                          flight);
    ticket.flight_ = std::move(flight);
  }
  Start(fetcher, ticket.flight_, std::string(payload));
  return ticket;
}

void Group::Start(const NamedFetcher& fetcher,
                  const std::shared_ptr<Flight>& flight, std::string payload) {
  absl::Duration timeout = fetcher.policy.timeout;
  TimerQueue::TimerId timer =
      timers_->Schedule(timeout, [this, flight, timeout] {
        Complete(flight,
                 {absl::DeadlineExceededError(absl::StrCat(
                      "fetcher \"", flight->fetcher, "\" timed out after ",
                      absl::FormatDuration(timeout))),
                  ""},
                 /*cancel_fetch=*/true);
      });
  {
    absl::MutexLock lock(&shards_[flight->shard].mu);
    flight->timeout_timer = timer;
  }

  FetchRequest request{flight->key, std::move(payload), flight->cancellation};
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
    fetcher.fetcher->Fetch(std::move(request), std::move(done));
  } catch (const std::exception& e) {
    Complete(flight, {absl::InternalError(e.what()), ""});
  } catch (...) {
    Complete(
        flight,
        {absl::InternalError(absl::StrCat("fetcher \"", flight->fetcher,
                                          "\" threw a non-standard exception")),
         ""});
  }
}

void Group::Detach(Shard& shard, Flight& flight) {
  if (flight.forgotten) {
    shard.forgotten.erase(&flight);
  } else {
    shard.flights.erase(KeyView{flight.fetcher, flight.key});
  }
}

void Group::Complete(const std::shared_ptr<Flight>& flight, FlightResult result,
                     bool cancel_fetch) {
  absl::flat_hash_map<uint64_t, Waiter> waiters;
  bool joined;
  TimerQueue::TimerId timer;
  {
    Shard& shard = shards_[flight->shard];
    absl::MutexLock lock(&shard.mu);
    if (flight->done) return;
    flight->done = true;
    // Unless forgotten, this flight still owns its key: a newer flight can
    // only exist for a forgotten one, and Detach leaves it alone.
    Detach(shard, *flight);
    waiters.swap(flight->waiters);
    joined = flight->joined;
    timer = flight->timeout_timer;
  }
  if (timer != 0) timers_->Cancel(timer);
  if (cancel_fetch) flight->cancellation->Cancel();
  auto shared_result = std::make_shared<const FlightResult>(std::move(result));
  for (auto& [id, waiter] : waiters) {
    waiter(Outcome{shared_result, id != Flight::kStarterId || joined});
  }
}

bool Group::Leave(const Ticket& ticket, absl::Status status) {
  if (ticket.flight_ == nullptr) return false;
  Flight& flight = *ticket.flight_;
  Waiter waiter;
  bool cancel_flight = false;
  TimerQueue::TimerId timer = 0;
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
    }
  }
  if (cancel_flight) {
    if (timer != 0) timers_->Cancel(timer);
    flight.cancellation->Cancel();
  }
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

bool Group::Forget(absl::string_view fetcher, absl::string_view key) {
  KeyView view{fetcher, key};
  Shard& shard = ShardFor(view);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.flights.find(view);
  if (it == shard.flights.end()) return false;
  it->second->forgotten = true;
  shard.forgotten.emplace(it->second.get(), it->second);
  shard.flights.erase(it);
  return true;
}

std::vector<FlightInfo> Group::InFlight() const {
  std::vector<FlightInfo> infos;
  absl::Time now = absl::Now();
  auto describe = [&](const Flight& flight) {
    infos.push_back(FlightInfo{flight.fetcher, flight.key,
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
