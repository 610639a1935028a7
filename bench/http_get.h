#ifndef SINGLEFLIGHT_BENCH_HTTP_GET_H_
#define SINGLEFLIGHT_BENCH_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace singleflight {
namespace bench {

// Fetches `url` (http:// or https://) with one GET, through libcurl, and
// returns the body of a 200 response: for a Prometheus /metrics endpoint.
// No redirects are followed. Fails with INVALID_ARGUMENT on a URL it cannot
// handle, UNAVAILABLE if the server cannot be reached, answers another
// status or breaks off, DEADLINE_EXCEEDED after `timeout`.
//
// Thread-safe.
absl::StatusOr<std::string> HttpGet(absl::string_view url,
                                    absl::Duration timeout);

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_HTTP_GET_H_
