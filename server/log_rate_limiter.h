#ifndef SINGLEFLIGHT_SERVER_LOG_RATE_LIMITER_H_
#define SINGLEFLIGHT_SERVER_LOG_RATE_LIMITER_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace singleflight {

// Bounds how many lines each source (for example "protobuf" or "grpc") may
// log: at most `lines_per_window` lines in each window of `window`, counted
// from the first line of the window. The lines over the limit are dropped
// and counted, and the next line let through reports how many were, so that
// a client sending a flood of bad requests cannot flood the log.
//
// Thread-safe.
class LogRateLimiter {
 public:
  // What to do with one line.
  struct Decision {
    // Whether to log the line.
    bool log = false;
    // Lines of this source dropped since the last one logged; to be
    // reported (before the line) when `log` is true, 0 otherwise.
    int64_t suppressed = 0;
  };

  LogRateLimiter(int lines_per_window, absl::Duration window);

  LogRateLimiter(const LogRateLimiter&) = delete;
  LogRateLimiter& operator=(const LogRateLimiter&) = delete;

  // Counts one line of `source` at `now` and says whether to log it. A
  // `now` before the current window's start (a clock stepped back) starts a
  // new window.
  Decision Admit(absl::string_view source, absl::Time now);

 private:
  struct Window {
    absl::Time start = absl::InfinitePast();
    int lines = 0;
    int64_t suppressed = 0;
  };

  const int lines_per_window_;
  const absl::Duration window_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Window> windows_ ABSL_GUARDED_BY(mu_);
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_LOG_RATE_LIMITER_H_
