#ifndef SINGLEFLIGHT_CORE_GROUP_H_
#define SINGLEFLIGHT_CORE_GROUP_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/concurrency_limiter.h"
#include "core/fetcher.h"
#include "core/flight_observer.h"
#include "core/flight_result.h"
#include "core/timer_queue.h"
#include "core/waiter_list.h"

namespace singleflight {

// What one waiter receives, exactly once.
struct Outcome {
  std::shared_ptr<const FlightResult> result;
  // True for a waiter that joined a flight (or took a lingering or cached
  // value); for the waiter that started it, true iff anyone joined.
  bool shared = false;
  // For a value from the fetcher's cache (ResultCache): how long ago its
  // execution finished, and whether it is past its time to live. Zero and
  // false for a value just executed.
  absl::Duration age = absl::ZeroDuration();
  bool stale = false;

  const absl::Status& status() const { return result->status; }
  const std::string& value() const { return result->value; }
};

// A waiter is a callback, not a blocked thread.
using Waiter = absl::AnyInvocable<void(Outcome)>;

// What a caller brings to Group::Do.
struct Call {
  absl::string_view key;
  // Handed to the fetcher if this call starts the flight.
  absl::string_view payload;
  // More identity: calls whose scopes differ never share a flight (the
  // server puts the values of the fetcher's key_metadata here).
  absl::string_view scope;
  // Forwarded to the fetcher (FetchRequest::metadata) if this call starts
  // the flight. May be null.
  const Metadata* metadata = nullptr;
};

// An operator's view of one flight.
struct FlightInfo {
  std::string fetcher;
  std::string key;
  uint32_t waiters = 0;
  absl::Duration age;
  bool forgotten = false;
};

// Group is Go's singleflight.Group for asynchronous callers: while a flight
// for (fetcher, scope, key) runs, every further Do for it joins that flight,
// the fetcher runs once, and every waiter receives the same Outcome.
//
// Beyond Go: a waiter may Leave early (deadline, cancellation) without
// disturbing the others; when the last waiter leaves, the flight is cancelled
// (the fetcher sees its CancellationSignal) and the key is free; every
// execution is bounded by its fetcher's timeout; a fetcher's max_concurrency
// makes further flights wait in a bounded queue (still coalescing); and its
// linger keeps a finished value briefly for callers who arrive just after.
//
// Without linger, a flight that finishes is gone: there is no caching.
//
// Thread-safe. Waiters are called outside the Group's locks, on whichever
// thread completes the flight (a fetcher's thread, the timer thread, the
// caller of Do/Leave itself when the result is immediate, or the caller of
// FailAll), so a waiter must not block, and must not throw.
//
// REQUIRES: the Group outlives every fetch it starts and `timers`; every
// NamedFetcher outlives the flights started on it and every call of its
// Fetch (which may still be running when its waiters have been answered).
class Group {
 private:
  struct Flight;

 public:
  // Identifies one waiter of one flight, for Leave().
  class Ticket {
   public:
    Ticket() = default;

   private:
    friend class Group;
    std::shared_ptr<Flight> flight_;
    uint64_t waiter_id_ = 0;
  };

  // `observer`, if not null, is told of executions and joins; it must
  // outlive the Group.
  explicit Group(TimerQueue* timers, FlightObserver* observer = nullptr);
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // Joins the flight for (fetcher.name, call.scope, call.key), or starts one
  // that calls fetcher.fetcher->Fetch with the call's payload and metadata
  // (a joiner's are ignored). `waiter` is called exactly once: with the
  // flight's outcome, or with the status given to Leave(). It may be called
  // before Do returns.
  //
  // With a cache policy (fetcher.cache), the fetcher's ResultCache answers
  // first: a fresh value or kept error at once; a stale value at once while
  // one background refresh (itself a flight, with no waiter of the
  // caller's) runs; otherwise the flight, whose outcome is kept if the
  // policy keeps it, and whose error becomes the last good value while that
  // is within stale_if_error.
  Ticket Do(const NamedFetcher& fetcher, const Call& call, Waiter waiter);
  Ticket Do(const NamedFetcher& fetcher, absl::string_view key,
            absl::string_view payload, Waiter waiter) {
    return Do(fetcher, Call{key, payload, "", nullptr}, std::move(waiter));
  }

  // Go's Do: blocks the calling thread until the outcome is known. For tests
  // and tools; servers use Do().
  Outcome DoSync(const NamedFetcher& fetcher, absl::string_view key,
                 absl::string_view payload);

  // Removes the waiter and calls it at once with `status` (for example
  // CANCELLED or DEADLINE_EXCEEDED). Returns false, and does nothing, if the
  // waiter was already called or is being called. If it was the flight's last
  // waiter, the flight is cancelled.
  // REQUIRES: !status.ok()
  bool Leave(const Ticket& ticket, absl::Status status);

  // Go's Forget: the running flight for (fetcher, scope, key) goes on and its
  // waiters still get its outcome, but the next Do starts a new flight. A
  // lingering value for the key is dropped. Returns true if a flight was in
  // progress.
  bool Forget(absl::string_view fetcher, absl::string_view key,
              absl::string_view scope = "");
  // As above, and drops the key's cached value (fetcher.cache) too.
  bool Forget(const NamedFetcher& fetcher, absl::string_view key,
              absl::string_view scope);

  // Every flight in progress, forgotten ones included (lingering values are
  // not flights).
  std::vector<FlightInfo> InFlight() const;

  // Ends every flight in progress with `status`, cancelling its fetch, and
  // drops lingering values: for a server that stops.
  // REQUIRES: !status.ok()
  void FailAll(const absl::Status& status);

 private:
  // A flight's identity, with its hash, computed once per call. In the
  // table, a key's views point into its own Flight's strings.
  struct KeyView {
    KeyView(absl::string_view fetcher, absl::string_view scope,
            absl::string_view key)
        : fetcher(fetcher),
          scope(scope),
          key(key),
          hash(absl::Hash<std::tuple<absl::string_view, absl::string_view,
                                     absl::string_view>>()(
              {fetcher, scope, key})) {}
    KeyView(absl::string_view fetcher, absl::string_view scope,
            absl::string_view key, size_t hash)
        : fetcher(fetcher), scope(scope), key(key), hash(hash) {}

    absl::string_view fetcher;
    absl::string_view scope;
    absl::string_view key;
    size_t hash;
  };
  struct KeyHash {
    size_t operator()(const KeyView& k) const { return k.hash; }
  };
  struct KeyEq {
    bool operator()(const KeyView& a, const KeyView& b) const {
      return a.hash == b.hash && a.key == b.key && a.fetcher == b.fetcher &&
             a.scope == b.scope;
    }
  };

  using Table =
      absl::flat_hash_map<KeyView, std::shared_ptr<Flight>, KeyHash, KeyEq>;
  // One sixteenth of the keys, under one mutex.
  struct Shard {
    mutable absl::Mutex mu;
    // Flights in progress, and finished ones that linger, by key.
    Table flights ABSL_GUARDED_BY(mu);
    // Forgotten flights still running: they are out of `flights`.
    absl::flat_hash_map<Flight*, std::shared_ptr<Flight>> forgotten
        ABSL_GUARDED_BY(mu);
  };
  static constexpr int kShardBits = 4;
  static constexpr size_t kShards = size_t{1} << kShardBits;

  // Where a flight's life stands; group.cc has the transition table.
  enum class State { kNew, kQueued, kStarting, kRunning, kLingering, kEnded };
  // Where a flight's result comes from: only a fetcher's own results linger.
  enum class Source { kFetcher, kLocal };

  // One execution, and the waiters who want its outcome; after it finished, a
  // lingering value.
  struct Flight {
    Flight(Group* group, const NamedFetcher& fetcher, const KeyView& identity,
           Shard* home)
        : group(group),
          fetcher(fetcher),
          fetcher_name(identity.fetcher),
          scope(identity.scope),
          key(identity.key),
          key_hash(identity.hash),
          home(home) {}

    // Its key in its shard's table, pointing into its own strings.
    KeyView Identity() const {
      return KeyView(fetcher_name, scope, key, key_hash);
    }

    // The group it belongs to: the fetch callback carries only the flight.
    Group* const group;
    // Used only while the flight runs (the fetcher may be gone once every
    // waiter is answered); `fetcher_name` is the flight's own copy.
    const NamedFetcher& fetcher;
    const std::string fetcher_name;
    const std::string scope;
    const std::string key;
    const size_t key_hash;
    Shard* const home;
    const absl::Time started = absl::Now();
    // Handed to the fetch as a pointer that shares the flight's ownership
    // (no allocation of its own).
    CancellationSignal cancellation;
    // Written by the fetch, before it calls back, when the fetcher's cache
    // respects backend directives (FetchRequest::directives).
    std::optional<CacheDirectives> directives;

    State state ABSL_GUARDED_BY(home->mu) = State::kNew;
    // Set by Forget: the flight is in its shard's `forgotten` set, not its
    // table, so that a newer flight may own the key.
    bool forgotten ABSL_GUARDED_BY(home->mu) = false;
    // Go's dups > 0: someone joined after the starter.
    bool joined ABSL_GUARDED_BY(home->mu) = false;
    // Its place in the limiter's queue while kQueued.
    ConcurrencyLimiter::QueueTicket queue_ticket ABSL_GUARDED_BY(home->mu) = 0;
    // When the fetch was called; unset before kStarting.
    absl::Time fetch_started ABSL_GUARDED_BY(home->mu) = absl::InfinitePast();
    TimerQueue::TimerId timeout_timer ABSL_GUARDED_BY(home->mu) = 0;
    // The outcome, while lingering.
    std::shared_ptr<const FlightResult> result ABSL_GUARDED_BY(home->mu);
    // The starter is the first: WaiterList::kFirstId.
    WaiterList<Waiter> waiters ABSL_GUARDED_BY(home->mu);
  };

  // What ending a flight leaves to do once its shard is unlocked.
  struct Ending {
    std::shared_ptr<const FlightResult> result;
    WaiterList<Waiter> waiters;
    bool joined = false;
    TimerQueue::TimerId timer = 0;
    absl::Duration linger = absl::ZeroDuration();
    bool cancel_fetch = false;
    // Set when the execution started: its end is to be reported.
    absl::Time fetch_started = absl::InfinitePast();
    // The flight's slot, to hand on after the waiters are told.
    std::shared_ptr<ConcurrencyLimiter> release_slot_of;
    // The flight's place in the limiter's queue, to give up.
    std::shared_ptr<ConcurrencyLimiter> withdraw_from;
    ConcurrencyLimiter::QueueTicket withdraw_ticket = 0;
    // The flight was active: it gives back its unit of max_flights.
    bool was_active = false;
    // A waiter that left (Leave), told with `leaver_status` among the others.
    Waiter leaver;
    absl::Status leaver_status;
  };

  // The shard of `key`: from the hash's high bits, so that the bits the
  // table itself uses stay random within a shard.
  Shard& ShardFor(const KeyView& key) {
    return shards_[key.hash >> (sizeof(size_t) * 8 - kShardBits)];
  }
  // Do without the cache: the flight itself.
  Ticket DoFlight(const NamedFetcher& fetcher, const Call& call, Waiter waiter);
  // Do with the fetcher's cache (fetcher.cache not null).
  Ticket DoCached(const NamedFetcher& fetcher, const Call& call, Waiter waiter);
  // Starts a flight for `call` whose outcome only refreshes the cache.
  void Refresh(const NamedFetcher& fetcher, const Call& call);
  // Runs the flight's fetch now, or when its fetcher's limiter allows.
  void Start(const std::shared_ptr<Flight>& flight, FetchRequest request);
  // Calls the fetcher, unless the flight ended while it waited for a slot.
  // Returns whether it did (and so took the slot it was given, if any).
  bool RunFetch(const std::shared_ptr<Flight>& flight, FetchRequest request);
  // Ends the flight with `result` unless it already ended.
  void Complete(const std::shared_ptr<Flight>& flight, FlightResult result,
                Source source, bool cancel_fetch);
  // The one way a flight ends (see the state table in group.cc): takes it out
  // of its shard, or makes it linger, and fills `ending` with what is left to
  // do. Returns false, and does nothing, if the flight already ended.
  bool EndLocked(const std::shared_ptr<Flight>& flight,
                 std::shared_ptr<const FlightResult> result, Source source,
                 bool cancel_fetch, Ending& ending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(flight->home->mu);
  // Does, outside the locks, what EndLocked left to do: cancels the timer
  // and the fetch, reports the execution, tells the waiters, and only then
  // gives the fetcher's slot to the next flight.
  void Settle(const std::shared_ptr<Flight>& flight, Ending& ending);
  // Drops a lingering flight from the table once its linger is over.
  void Expire(const std::shared_ptr<Flight>& flight);
  // Takes the flight out of its shard's table or forgotten set.
  static void Detach(Flight& flight)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(flight.home->mu);

  TimerQueue* const timers_;
  FlightObserver* const observer_;
  // Set by FailAll: background refreshes start no more.
  std::atomic<bool> closed_{false};
  std::array<Shard, kShards> shards_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_GROUP_H_
