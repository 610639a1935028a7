#include "server/log_rate_limiter.h"

namespace singleflight {

LogRateLimiter::LogRateLimiter(int lines_per_window, absl::Duration window)
    : lines_per_window_(lines_per_window), window_(window) {}

LogRateLimiter::Decision LogRateLimiter::Admit(absl::string_view source,
                                               absl::Time now) {
  absl::MutexLock lock(&mu_);
  Window& window = windows_[source];
  // A clock stepped back starts a new window too, rather than none again.
  if (now - window.start >= window_ || now < window.start) {
    window.start = now;
    window.lines = 0;
  }
  Decision decision;
  if (window.lines >= lines_per_window_) {
    ++window.suppressed;
    return decision;
  }
  ++window.lines;
  decision.log = true;
  decision.suppressed = window.suppressed;
  window.suppressed = 0;
  return decision;
}

}  // namespace singleflight
