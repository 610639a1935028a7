#ifndef SINGLEFLIGHT_FETCHERS_BUILTIN_FETCHERS_H_
#define SINGLEFLIGHT_FETCHERS_BUILTIN_FETCHERS_H_

#include "core/fetcher_registry.h"

namespace singleflight {

// The name of the embedded default fetcher, and its URI.
inline constexpr char kDefaultFetcherName[] = "echo";
inline constexpr char kDefaultFetcherUri[] = "echo:";

// Makes every fetcher scheme this build offers available to `registry`.
void RegisterBuiltinSchemes(FetcherRegistry& registry);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_FETCHERS_BUILTIN_FETCHERS_H_
