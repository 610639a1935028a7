#ifndef SINGLEFLIGHT_SERVER_REQUEST_VALIDATION_H_
#define SINGLEFLIGHT_SERVER_REQUEST_VALIDATION_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/fetcher_registry.h"

namespace singleflight {

inline constexpr size_t kMaxKeyBytes = 4096;

// The fetcher a request for (fetcher_name, key) runs on.
// Fails with INVALID_ARGUMENT for an empty or oversized key, and NOT_FOUND,
// naming the known fetchers, for an unknown fetcher.
absl::StatusOr<const NamedFetcher*> ResolveRequest(
    const FetcherRegistry& registry, absl::string_view fetcher_name,
    absl::string_view key);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_REQUEST_VALIDATION_H_
