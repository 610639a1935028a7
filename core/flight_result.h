#ifndef SINGLEFLIGHT_CORE_FLIGHT_RESULT_H_
#define SINGLEFLIGHT_CORE_FLIGHT_RESULT_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace singleflight {

// What a backend said about how long its answer stays good (HTTP's
// Cache-Control), for a fetcher whose cache policy respects it. Unset
// fields leave the policy's own.
struct CacheDirectives {
  std::optional<absl::Duration> max_age;
  std::optional<absl::Duration> stale_while_revalidate;
  std::optional<absl::Duration> stale_if_error;
  // no-store or private: a shared cache must not keep it.
  bool no_store = false;
};

// The result of one flight, shared by all of its waiters without copying.
struct FlightResult {
  absl::Status status;
  std::string value;  // Empty unless status is OK.
  // What the backend said about caching the value, if it said anything.
  std::optional<CacheDirectives> directives = std::nullopt;
  // True for what a fetcher answered (a value or its error); false for the
  // tier's own outcomes (a timeout, a refusal by a limit, a caller who left,
  // a server stopping), which a cache never keeps.
  bool from_fetcher = false;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_FLIGHT_RESULT_H_
