#ifndef SINGLEFLIGHT_FETCHERS_CACHE_CONTROL_H_
#define SINGLEFLIGHT_FETCHERS_CACHE_CONTROL_H_

#include "absl/strings/string_view.h"
#include "core/flight_result.h"

namespace singleflight {

// The directives of an HTTP Cache-Control header (RFC 9111, with RFC 5861's
// stale-while-revalidate and stale-if-error) that a shared cache obeys:
// s-maxage (over max-age), max-age, stale-while-revalidate, stale-if-error;
// no-store and private (not kept); no-cache (kept, but never fresh).
// Unknown or malformed directives are ignored. Pure function; thread-safe.
CacheDirectives ParseCacheControl(absl::string_view header);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_FETCHERS_CACHE_CONTROL_H_
