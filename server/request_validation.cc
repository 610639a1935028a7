#include "server/request_validation.h"

#include "absl/strings/str_cat.h"

namespace singleflight {

absl::StatusOr<const NamedFetcher*> ResolveRequest(
    const FetcherRegistry& registry, absl::string_view fetcher_name,
    absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("key is required");
  if (key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key is ", key.size(), " bytes; the limit is ", kMaxKeyBytes));
  }
  return registry.Find(fetcher_name);
}

}  // namespace singleflight
