#ifndef SINGLEFLIGHT_CORE_FETCHER_H_
#define SINGLEFLIGHT_CORE_FETCHER_H_

#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/cancellation.h"

namespace singleflight {

// What one execution of a fetcher is given.
struct FetchRequest {
  std::string key;
  // The payload of the caller that started the flight.
  std::string payload;
  // Raised when nobody wants the result any more (the last waiter left, or
  // the execution timed out). Never null.
  std::shared_ptr<CancellationSignal> cancellation;
};

// Receives the result of one execution. May be called from any thread.
using FetchCallback = absl::AnyInvocable<void(absl::StatusOr<std::string>)>;

// A backend that produces the value for a key: the expensive call the tier
// exists to run once.
//
// Fetch() must not block: it starts the work and returns, and the result is
// delivered later through `done`, from any thread (or at once, from inside
// Fetch, if it is already known). Blocking work belongs on a bounded pool; see
// BlockingFetcher.
//
// Implementations must be thread-safe: Fetch() is called concurrently for
// different flights.
class Fetcher {
 public:
  virtual ~Fetcher() = default;

  // Starts one execution for `request`.
  // `done` must be called exactly once, unless the cancellation signal is
  // raised first, in which case the fetcher may drop it without calling it.
  // A C++ exception thrown from Fetch() fails the flight with INTERNAL.
  virtual void Fetch(FetchRequest request, FetchCallback done) = 0;
};

// How the Group runs a fetcher.
struct FetcherPolicy {
  // One execution is failed with DEADLINE_EXCEEDED, and cancelled, after this.
  absl::Duration timeout = absl::Seconds(30);
};

// A fetcher under the name callers select it by, with its policy.
// Flights are keyed by (name, key).
struct NamedFetcher {
  std::string name;
  std::string uri;
  FetcherPolicy policy;
  std::unique_ptr<Fetcher> fetcher;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_FETCHER_H_
