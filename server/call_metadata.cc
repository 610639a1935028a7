#include "server/call_metadata.h"

#include "absl/strings/str_cat.h"

namespace singleflight {

CallMetadata ExtractCallMetadata(
    const FetcherPolicy& policy,
    const std::multimap<grpc::string_ref, grpc::string_ref>& client_metadata) {
  CallMetadata result;
  // Length-prefixed, so that no choice of names and values can make two
  // different sets of metadata encode alike.
  for (const std::string& name : policy.key_metadata) {
    auto [begin, end] = client_metadata.equal_range(name);
    absl::StrAppend(&result.scope, name.size(), ":", name);
    for (auto it = begin; it != end; ++it) {
      absl::StrAppend(&result.scope, "=", it->second.size(), ":",
                      absl::string_view(it->second.data(), it->second.size()));
    }
    result.scope += ';';
  }
  for (const std::string& name : policy.forward_metadata) {
    auto [begin, end] = client_metadata.equal_range(name);
    for (auto it = begin; it != end; ++it) {
      result.forwarded.emplace_back(
          name, std::string(it->second.data(), it->second.size()));
    }
  }
  return result;
}

}  // namespace singleflight
