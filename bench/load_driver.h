#ifndef SINGLEFLIGHT_BENCH_LOAD_DRIVER_H_
#define SINGLEFLIGHT_BENCH_LOAD_DRIVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/key_space.h"
#include "bench/load_report.h"

namespace singleflight {
namespace bench {

// How to load a singleflight server.
struct LoadOptions {
  std::string target;
  // Client channels, each its own connection; calls are spread over them.
  int channels = 4;
  // Each call a unary Do, or an item of a DoStream (one stream a channel).
  bool stream = false;
  // Empty: the server's default fetcher.
  std::string fetcher;
  // REQUIRES: not null.
  std::shared_ptr<const KeySpace> keys;
  // Sent with every request ('x' repeated); 0 sends none.
  size_t payload_bytes = 0;
  // Closed loop (rate == 0): this many callers, each starting its next call
  // when its last one ends. Open loop: the most calls outstanding at once.
  int concurrency = 16;
  // Open loop: calls per second, started on schedule whatever the replies
  // do; latency counts from each call's scheduled time, so a server that
  // falls behind shows as latency. 0 for a closed loop.
  double rate = 0;
  // Calls started in the warm-up are neither counted nor timed.
  absl::Duration warmup = absl::ZeroDuration();
  // The measured part ends after `duration` or `calls` started calls,
  // whichever comes first. Either may be unbounded (infinite; 0), not both.
  absl::Duration duration = absl::Seconds(10);
  uint64_t calls = 0;
  // Deadline of each unary call. Once the last call has started, the run
  // waits this long (plus a second) for the calls in progress, then cancels
  // streams.
  absl::Duration deadline = absl::Seconds(10);
  // Every channel must connect within this before the run begins.
  absl::Duration connect_timeout = absl::Seconds(10);
  // Seeds the key choice: the same seed draws the same keys.
  uint64_t seed = 1;
  // If set, called once just before the measured part begins (after the
  // warm-up, while its calls run), on the thread of RunLoad.
  std::function<void()> on_measure_start;
};

// Runs a load and reports on its measured part (`server` left unset).
// Fails with INVALID_ARGUMENT on bad options, UNAVAILABLE if a channel does
// not connect in time, DEADLINE_EXCEEDED if calls are still running 10 s
// after they were cancelled. Blocks the calling thread for the run.
absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options);

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_LOAD_DRIVER_H_
