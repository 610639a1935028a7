#ifndef SINGLEFLIGHT_FETCHERS_ECHO_FETCHER_H_
#define SINGLEFLIGHT_FETCHERS_ECHO_FETCHER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/fetcher.h"
#include "core/fetcher_registry.h"
#include "core/timer_queue.h"

namespace singleflight {

// The embedded default fetcher: the value is the payload, or the key when the
// payload is empty. URI `echo:`, or `echo:?delay=DURATION` (for example
// `echo:?delay=250ms`) to answer after a delay, which waits on the shared
// TimerQueue, not on a thread, and ends early when the flight is cancelled.
//
// Thread-safe.
class EchoFetcher : public Fetcher {
 public:
  // The FetcherFactory for the `echo` scheme.
  static absl::StatusOr<std::unique_ptr<Fetcher>> Create(
      const FetcherUri& uri, const FetcherPolicy& policy,
      const FetcherEnvironment& environment);

  EchoFetcher(TimerQueue* timers, absl::Duration delay);

  void Fetch(FetchRequest request, FetchCallback done) override;

 private:
  TimerQueue* const timers_;
  const absl::Duration delay_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_FETCHERS_ECHO_FETCHER_H_
