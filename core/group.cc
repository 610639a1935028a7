#include "core/group.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace singleflight {

// A flight's life, Flight::state, changed only under its shard's mutex:
//
//   state       event                                  next        in
//   ----------  -------------------------------------  ----------  ----------
//   kNew        no limit, or a slot is free            kStarting   RunFetch
//   kNew        no slot free, room in the queue        kQueued     Start
//   kQueued     the limiter gives it a slot            kStarting   RunFetch
//   kStarting   Fetch returned                         kRunning    RunFetch
//   kStarting,  the fetcher's result, with a linger    kLingering  Complete
//   kRunning
//   kNew to     a result, a timeout, the queue full,   kEnded      Complete,
//   kRunning    the last waiter left, FailAll                      Leave,
//                                                                  FailAll
//   kLingering  the linger is over, Forget, FailAll    kEnded      Expire,
//                                                                  Forget,
//                                                                  FailAll
//
// kNew to kRunning are "active": the flight has waiters, counts against its
// fetcher's max_flights, and owns its key in the shard's table (or sits in
// the forgotten set). Every active flight ends through EndLocked, once.
//
// In kStarting, the thread calling Fetch owns the flight's concurrency slot:
// if the flight ends meanwhile (an immediate result, the last waiter
// leaving), that thread gives the slot back once Fetch has returned, so that
// no more than max_concurrency fetches are ever being called or run.

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

std::shared_ptr<const FlightResult> Failure(absl::Status status) {
  return std::make_shared<const FlightResult>(
      FlightResult{std::move(status), ""});
}

}  // namespace

Group::Group(TimerQueue* timers, FlightObserver* observer)
    : timers_(timers), observer_(observer) {}

Group::Ticket Group::Do(const NamedFetcher& fetcher, const Call& call,
                        Waiter waiter) {
  if (fetcher.cache != nullptr) {
    return DoCached(fetcher, call, std::move(waiter));
  }
  return DoFlight(fetcher, call, std::move(waiter));
}

Group::Ticket Group::DoCached(const NamedFetcher& fetcher, const Call& call,
                              Waiter waiter) {
  const std::shared_ptr<ResultCache>& cache = fetcher.cache;
  absl::Time now = absl::Now();
  ResultCache::Found found = cache->Find(call.scope, call.key, now);
  if (found.kind != ResultCache::Kind::kMiss) {
    if (found.refresh) {
      if (closed_.load(std::memory_order_acquire)) {
        cache->RefreshFailed(call.scope, call.key, /*background=*/true);
      } else {
        Refresh(fetcher, call);
      }
    }
    waiter(Outcome{std::move(found.result), /*shared=*/true, found.age,
                   /*stale=*/found.kind == ResultCache::Kind::kStale});
    return Ticket();
  }
  // The flight's outcome is kept (once: every waiter of a flight holds the
  // same result), or, if it failed, replaced by the last good value while
  // stale_if_error allows.
  return DoFlight(
      fetcher, call,
      [cache, scope = std::string(call.scope), key = std::string(call.key),
       started = now, epoch = cache->epoch(),
       waiter = std::move(waiter)](Outcome outcome) mutable {
        absl::Time now = absl::Now();
        if (outcome.result->from_fetcher && cache->Keeps(outcome.status())) {
          cache->Store(scope, key, outcome.result, started, now, epoch);
          waiter(std::move(outcome));
          return;
        }
        cache->RefreshFailed(scope, key, /*background=*/false);
        ResultCache::Found stale = cache->StaleIfError(scope, key, now);
        if (stale.kind == ResultCache::Kind::kMiss) {
          waiter(std::move(outcome));
          return;
        }
        waiter(Outcome{std::move(stale.result), outcome.shared, stale.age,
                       /*stale=*/true});
      });
}

void Group::Refresh(const NamedFetcher& fetcher, const Call& call) {
  DoFlight(
      fetcher, call,
      [cache = fetcher.cache, scope = std::string(call.scope),
       key = std::string(call.key), started = absl::Now(),
       epoch = fetcher.cache->epoch()](Outcome outcome) {
        absl::Time now = absl::Now();
        if (outcome.result->from_fetcher && cache->Keeps(outcome.status())) {
          cache->Store(scope, key, outcome.result, started, now, epoch);
        } else {
          cache->RefreshFailed(scope, key, /*background=*/true);
        }
      });
}

Group::Ticket Group::DoFlight(const NamedFetcher& fetcher, const Call& call,
                              Waiter waiter) {
  KeyView view(fetcher.name, call.scope, call.key);
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
      flight.home->mu.AssertHeld();  // The same mutex as shard.mu.
      if (flight.state == State::kLingering) {
        lingering = flight.result;
      } else if (policy.max_waiters > 0 &&
                 flight.waiters.size() >=
                     static_cast<size_t>(policy.max_waiters)) {
        refused_by = "max_waiters";
      } else {
        flight.joined = true;
        ticket.waiter_id_ = flight.waiters.Add(std::move(waiter));
        ticket.flight_ = it->second;
        joined = true;
      }
    } else if (!AdmitFlight(fetcher)) {
      refused_by = "max_flights";
    } else {
      auto flight = std::make_shared<Flight>(this, fetcher, view, &shard);
      flight->home->mu.AssertHeld();
      ticket.waiter_id_ = flight->waiters.Add(std::move(waiter));
      shard.flights.emplace(flight->Identity(), flight);
      ticket.flight_ = std::move(flight);
    }
  }
  if (refused_by != nullptr) {
    if (observer_ != nullptr) observer_->Rejected(fetcher, refused_by);
    waiter(Outcome{Failure(absl::ResourceExhaustedError(
                       absl::StrCat("fetcher \"", fetcher.name, "\" is at its ",
                                    refused_by, " limit; try again later"))),
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
  request.cancellation = std::shared_ptr<CancellationSignal>(
      ticket.flight_, &ticket.flight_->cancellation);
  if (fetcher.cache != nullptr && fetcher.policy.cache.respect_cache_control) {
    request.directives = &ticket.flight_->directives;
  }
  Start(ticket.flight_, std::move(request));
  return ticket;
}

void Group::Start(const std::shared_ptr<Flight>& flight, FetchRequest request) {
  const std::shared_ptr<ConcurrencyLimiter> limiter = flight->fetcher.limiter;
  if (limiter == nullptr) {
    RunFetch(flight, std::move(request));
    return;
  }
  ConcurrencyLimiter::QueueTicket queued_as = 0;
  bool accepted = limiter->Acquire(
      [this, flight, request = std::move(request)]() mutable {
        return RunFetch(flight, std::move(request));
      },
      &queued_as);
  if (!accepted) {
    const FetcherPolicy& policy = flight->fetcher.policy;
    if (observer_ != nullptr) observer_->Rejected(flight->fetcher, "max_queue");
    Complete(flight,
             {absl::ResourceExhaustedError(absl::StrCat(
                  "fetcher \"", flight->fetcher.name, "\" is running ",
                  policy.max_concurrency, " executions and has ",
                  policy.max_queue, " waiting; try again later")),
              ""},
             Source::kLocal, /*cancel_fetch=*/false);
    return;
  }
  if (queued_as == 0) return;  // It ran (or was declined) inside Acquire.
  bool abandoned = false;
  {
    absl::MutexLock lock(&flight->home->mu);
    if (flight->state == State::kNew) {
      flight->state = State::kQueued;
      flight->queue_ticket = queued_as;
    } else {
      // It ended before it could be marked queued (its place must go), or it
      // already left the queue and started.
      abandoned = flight->state == State::kEnded;
    }
  }
  if (abandoned) limiter->Withdraw(queued_as);
}

bool Group::RunFetch(const std::shared_ptr<Flight>& flight,
                     FetchRequest request) {
  // Read while the flight is known to be active: once it has ended, its
  // fetcher may be gone.
  absl::Duration timeout;
  std::shared_ptr<ConcurrencyLimiter> limiter;
  absl::Time started;
  {
    absl::MutexLock lock(&flight->home->mu);
    if (flight->state != State::kNew && flight->state != State::kQueued) {
      return false;  // Ended while it waited for a slot.
    }
    timeout = flight->fetcher.policy.timeout;
    limiter = flight->fetcher.limiter;
    started = absl::Now();
    flight->state = State::kStarting;
    flight->queue_ticket = 0;
    flight->fetch_started = started;
    // Under the lock, so that no end of this execution is reported first.
    if (observer_ != nullptr) observer_->ExecutionStarted(flight->fetcher);
  }
  // Small enough for FetchCallback's inline storage: no allocation.
  auto done = [flight](absl::StatusOr<std::string> value) {
    if (value.ok()) {
      // The fetch wrote its directives, if any, before calling back.
      flight->group->Complete(flight,
                              {absl::OkStatus(), *std::move(value),
                               flight->directives, /*from_fetcher=*/true},
                              Source::kFetcher, /*cancel_fetch=*/false);
    } else {
      flight->group->Complete(flight,
                              {value.status(), "", std::nullopt,
                               /*from_fetcher=*/true},
                              Source::kFetcher,
                              /*cancel_fetch=*/false);
    }
  };
  // A throwing fetcher is Go's panicking fn: the flight fails, every waiter is
  // told, and nothing hangs.
  try {
    flight->fetcher.fetcher->Fetch(std::move(request), std::move(done));
  } catch (const std::exception& e) {
    Complete(flight, {absl::InternalError(e.what()), ""}, Source::kFetcher,
             /*cancel_fetch=*/false);
  } catch (...) {
    Complete(
        flight,
        {absl::InternalError(absl::StrCat("fetcher \"", flight->fetcher_name,
                                          "\" threw a non-standard exception")),
         ""},
        Source::kFetcher, /*cancel_fetch=*/false);
  }
  bool ended;
  {
    absl::MutexLock lock(&flight->home->mu);
    ended = flight->state != State::kStarting;
    if (!ended) flight->state = State::kRunning;
  }
  if (ended) {
    // An immediate result, the common case of cheap fetchers, or every
    // waiter left: the slot held while Fetch ran is given back now, and no
    // timer is needed.
    if (limiter != nullptr) limiter->Release();
    return true;
  }
  // The timeout runs from the start of the fetch.
  TimerQueue::TimerId timer = timers_->Schedule(
      started + timeout - absl::Now(), [this, flight, timeout] {
        Complete(flight,
                 {absl::DeadlineExceededError(absl::StrCat(
                      "fetcher \"", flight->fetcher_name, "\" timed out after ",
                      absl::FormatDuration(timeout))),
                  ""},
                 Source::kLocal, /*cancel_fetch=*/true);
      });
  {
    absl::MutexLock lock(&flight->home->mu);
    if (flight->state == State::kRunning) {
      flight->timeout_timer = timer;
      return true;
    }
  }
  timers_->Cancel(timer);  // It ended while the timer was set.
  return true;
}

void Group::Detach(Flight& flight) {
  Shard& shard = *flight.home;
  shard.mu.AssertHeld();  // flight.home->mu, under another name.
  if (flight.forgotten) {
    shard.forgotten.erase(&flight);
    return;
  }
  // Unless forgotten, a flight still owns its key: a newer flight can only
  // exist for a forgotten one.
  auto it = shard.flights.find(flight.Identity());
  if (it != shard.flights.end() && it->second.get() == &flight) {
    shard.flights.erase(it);
  }
}

bool Group::EndLocked(const std::shared_ptr<Flight>& flight,
                      std::shared_ptr<const FlightResult> result, Source source,
                      bool cancel_fetch, Ending& ending) {
  const State was = flight->state;
  if (was == State::kEnded) return false;
  if (was == State::kLingering) {
    Detach(*flight);
    flight->state = State::kEnded;
    flight->result = nullptr;
    return true;
  }
  const FetcherPolicy& policy = flight->fetcher.policy;
  // With a cache, the cache keeps values: a lingering one would hand a
  // refresh the very value it is to replace.
  const bool linger = source == Source::kFetcher && !flight->forgotten &&
                      flight->fetcher.cache == nullptr &&
                      policy.linger > absl::ZeroDuration() &&
                      (result->status.ok() || policy.linger_errors);
  if (linger) {
    flight->state = State::kLingering;
    flight->result = result;
    ending.linger = policy.linger;
  } else {
    Detach(*flight);
    flight->state = State::kEnded;
  }
  ending.result = std::move(result);
  ending.was_active = true;
  ending.cancel_fetch = cancel_fetch;
  std::swap(ending.waiters, flight->waiters);
  ending.joined = flight->joined;
  ending.timer = std::exchange(flight->timeout_timer, 0);
  ending.fetch_started = flight->fetch_started;
  switch (was) {
    case State::kQueued:
      ending.withdraw_from = flight->fetcher.limiter;
      ending.withdraw_ticket = std::exchange(flight->queue_ticket, 0);
      break;
    case State::kRunning:
      ending.release_slot_of = flight->fetcher.limiter;
      break;
    default:  // kNew holds nothing; in kStarting, RunFetch owns the slot.
      break;
  }
  return true;
}

void Group::Settle(const std::shared_ptr<Flight>& flight, Ending& ending) {
  if (ending.timer != 0) timers_->Cancel(ending.timer);
  if (ending.withdraw_from != nullptr) {
    ending.withdraw_from->Withdraw(ending.withdraw_ticket);
  }
  if (ending.was_active) {
    if (observer_ != nullptr && ending.fetch_started != absl::InfinitePast()) {
      observer_->ExecutionEnded(flight->fetcher, ending.result->status,
                                absl::Now() - ending.fetch_started);
    }
    flight->fetcher.flights.fetch_sub(1);
  }
  if (ending.linger > absl::ZeroDuration()) {
    timers_->Schedule(ending.linger, [this, flight] { Expire(flight); });
  }
  if (ending.cancel_fetch) flight->cancellation.Cancel();
  // Nothing from here on touches the fetcher (the slot is handed on through
  // the limiter, which the Ending shares).
  ending.waiters.TakeAll([&](uint64_t id, Waiter& waiter) {
    waiter(Outcome{ending.result,
                   id != WaiterList<Waiter>::kFirstId || ending.joined});
  });
  if (ending.leaver) {
    ending.leaver(Outcome{Failure(std::move(ending.leaver_status)), false});
  }
  // Last, so that the next flight's fetch (which may answer at once) never
  // runs before this flight's waiters are told.
  if (ending.release_slot_of != nullptr) ending.release_slot_of->Release();
}

void Group::Complete(const std::shared_ptr<Flight>& flight, FlightResult result,
                     Source source, bool cancel_fetch) {
  Ending ending;
  {
    absl::MutexLock lock(&flight->home->mu);
    if (!EndLocked(flight,
                   std::make_shared<const FlightResult>(std::move(result)),
                   source, cancel_fetch, ending)) {
      return;
    }
  }
  Settle(flight, ending);
}

void Group::Expire(const std::shared_ptr<Flight>& flight) {
  Ending ending;  // Holds nothing to settle: the flight only lingered.
  absl::MutexLock lock(&flight->home->mu);
  if (flight->state == State::kLingering) {
    EndLocked(flight, nullptr, Source::kLocal, false, ending);
  }
}

bool Group::Leave(const Ticket& ticket, absl::Status status) {
  if (ticket.flight_ == nullptr) return false;
  const std::shared_ptr<Flight>& flight = ticket.flight_;
  Waiter waiter;
  Ending ending;
  bool last;
  {
    absl::MutexLock lock(&flight->home->mu);
    waiter = flight->waiters.Remove(ticket.waiter_id_);
    if (waiter == nullptr) return false;
    // Nobody wants the result any more: free the key, stop the fetch.
    last = flight->waiters.empty() &&
           EndLocked(flight, Failure(absl::CancelledError("every waiter left")),
                     Source::kLocal, /*cancel_fetch=*/true, ending);
  }
  if (!last) {
    waiter(Outcome{Failure(std::move(status)), false});
    return true;
  }
  ending.leaver = std::move(waiter);
  ending.leaver_status = std::move(status);
  Settle(flight, ending);
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

bool Group::Forget(const NamedFetcher& fetcher, absl::string_view key,
                   absl::string_view scope) {
  if (fetcher.cache != nullptr) fetcher.cache->Drop(scope, key);
  return Forget(fetcher.name, key, scope);
}

bool Group::Forget(absl::string_view fetcher, absl::string_view key,
                   absl::string_view scope) {
  KeyView view(fetcher, scope, key);
  Shard& shard = ShardFor(view);
  std::shared_ptr<Flight> found;  // Released outside the lock.
  absl::MutexLock lock(&shard.mu);
  auto it = shard.flights.find(view);
  if (it == shard.flights.end()) return false;
  found = it->second;
  found->home->mu.AssertHeld();
  if (found->state == State::kLingering) {
    Ending ending;  // Nothing to settle: the value only lingered.
    EndLocked(found, nullptr, Source::kLocal, false, ending);
    return false;
  }
  shard.flights.erase(it);
  found->forgotten = true;
  shard.forgotten.emplace(found.get(), found);
  return true;
}

void Group::FailAll(const absl::Status& status) {
  closed_.store(true, std::memory_order_release);
  auto failure = Failure(status);
  for (Shard& shard : shards_) {
    std::vector<std::pair<std::shared_ptr<Flight>, Ending>> endings;
    {
      absl::MutexLock lock(&shard.mu);
      std::vector<std::shared_ptr<Flight>> flights;
      for (const auto& entry : shard.flights) flights.push_back(entry.second);
      for (const auto& entry : shard.forgotten) flights.push_back(entry.second);
      for (std::shared_ptr<Flight>& flight : flights) {
        flight->home->mu.AssertHeld();
        Ending ending;
        if (EndLocked(flight, failure, Source::kLocal, /*cancel_fetch=*/true,
                      ending) &&
            ending.was_active) {
          endings.emplace_back(std::move(flight), std::move(ending));
        }
      }
    }
    for (auto& [flight, ending] : endings) Settle(flight, ending);
  }
}

std::vector<FlightInfo> Group::InFlight() const {
  std::vector<FlightInfo> infos;
  absl::Time now = absl::Now();
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    auto describe = [&](const Flight& flight) {
      flight.home->mu.AssertHeld();
      if (flight.state == State::kLingering) return;
      infos.push_back(FlightInfo{flight.fetcher_name, flight.key,
                                 static_cast<uint32_t>(flight.waiters.size()),
                                 now - flight.started, flight.forgotten});
    };
    for (const auto& entry : shard.flights) describe(*entry.second);
    for (const auto& entry : shard.forgotten) describe(*entry.second);
  }
  return infos;
}

}  // namespace singleflight
