#ifndef SINGLEFLIGHT_CORE_FLIGHT_OBSERVER_H_
#define SINGLEFLIGHT_CORE_FLIGHT_OBSERVER_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/fetcher.h"

namespace singleflight {

// What a Group reports as it works: the hooks that metrics are built on.
//
// Implementations must be thread-safe and cheap: the Group calls them on its
// hot paths, from any thread. They must not call into the Group:
// ExecutionStarted is called under the lock of the flight's shard (so that
// no end of an execution is reported before its start); the others outside
// the Group's locks.
class FlightObserver {
 public:
  virtual ~FlightObserver() = default;

  // An execution of `fetcher` is starting (its Fetch is about to be called).
  virtual void ExecutionStarted(const NamedFetcher& fetcher) = 0;

  // An execution that started has ended after `duration`: with its result,
  // DEADLINE_EXCEEDED on timeout, or CANCELLED when its last waiter left.
  virtual void ExecutionEnded(const NamedFetcher& fetcher,
                              const absl::Status& status,
                              absl::Duration duration) = 0;

  // A caller joined a flight in progress, or took a lingering value, instead
  // of starting an execution.
  virtual void Joined(const NamedFetcher& fetcher) = 0;

  // A caller was refused with RESOURCE_EXHAUSTED by a limit: "max_flights",
  // "max_waiters" or "max_queue".
  virtual void Rejected(const NamedFetcher& fetcher, const char* limit) = 0;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_FLIGHT_OBSERVER_H_
