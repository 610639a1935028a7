#include "server/proxy_upstream.h"

#include <grpc/grpc.h>
#include <grpc/slice.h>

#include <array>

#include "absl/strings/match.h"

namespace singleflight {

void ProxyUpstream::CallStarted() {
  absl::MutexLock lock(&mu_);
  ++calls_;
}

void ProxyUpstream::CallEnded() {
  absl::MutexLock lock(&mu_);
  --calls_;
}

void ProxyUpstream::WaitForCalls() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &ProxyUpstream::NoCalls));
}

bool IsEndToEndMetadata(absl::string_view name) {
  static constexpr std::array<absl::string_view, 12> kHopByHop = {
      "te",
      "content-type",
      "user-agent",
      "host",
      "connection",
      "keep-alive",
      "proxy-connection",
      "upgrade",
      "transfer-encoding",
      "content-length",
      "accept-encoding",
      "content-encoding"};
  if (name.empty() || name.front() == ':' || absl::StartsWith(name, "grpc-")) {
    return false;
  }
  for (absl::string_view hop : kHopByHop) {
    if (name == hop) return false;
  }
  return true;
}

bool IsSendableMetadata(absl::string_view name, absl::string_view value) {
  grpc_slice name_slice =
      grpc_slice_from_static_buffer(name.data(), name.size());
  if (!grpc_header_key_is_legal(name_slice)) return false;
  if (grpc_is_binary_header(name_slice)) return true;
  return grpc_header_nonbin_value_is_legal(
      grpc_slice_from_static_buffer(value.data(), value.size()));
}

Metadata EndToEndMetadata(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  Metadata result;
  for (const auto& [name, value] : metadata) {
    absl::string_view name_view(name.data(), name.size());
    absl::string_view value_view(value.data(), value.size());
    if (!IsEndToEndMetadata(name_view) ||
        !IsSendableMetadata(name_view, value_view)) {
      continue;
    }
    result.emplace_back(std::string(name_view), std::string(value_view));
  }
  return result;
}

}  // namespace singleflight
