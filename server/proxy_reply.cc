#include "server/proxy_reply.h"

#include <cstdint>

#include "absl/strings/cord.h"

namespace singleflight {
namespace {

void AppendVarint(uint64_t value, std::string& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void AppendBytes(absl::string_view bytes, std::string& out) {
  AppendVarint(bytes.size(), out);
  out.append(bytes.data(), bytes.size());
}

void AppendMetadata(const Metadata& metadata, std::string& out) {
  AppendVarint(metadata.size(), out);
  for (const auto& [name, value] : metadata) {
    AppendBytes(name, out);
    AppendBytes(value, out);
  }
}

// Reads from the front of `in`; false when it ends early or overflows.
bool ReadVarint(absl::string_view& in, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    uint8_t byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    value |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

bool ReadBytes(absl::string_view& in, absl::string_view& bytes) {
  uint64_t size = 0;
  if (!ReadVarint(in, size) || size > in.size()) return false;
  bytes = in.substr(0, size);
  in.remove_prefix(size);
  return true;
}

bool ReadMetadata(
    absl::string_view& in,
    std::vector<std::pair<absl::string_view, absl::string_view>>& metadata) {
  uint64_t count = 0;
  // Each entry takes at least two bytes: a bound before reserving.
  if (!ReadVarint(in, count) || count > in.size() / 2) return false;
  metadata.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    absl::string_view name, value;
    if (!ReadBytes(in, name) || !ReadBytes(in, value)) return false;
    metadata.emplace_back(name, value);
  }
  return true;
}

}  // namespace

std::string EncodeProxyReply(const Metadata& initial, const Metadata& trailing,
                             absl::string_view details,
                             absl::string_view message) {
  std::string out;
  AppendMetadata(initial, out);
  AppendMetadata(trailing, out);
  AppendBytes(details, out);
  out.append(message.data(), message.size());
  return out;
}

absl::StatusOr<ProxyReplyView> DecodeProxyReply(absl::string_view encoded) {
  ProxyReplyView view;
  if (!ReadMetadata(encoded, view.initial) ||
      !ReadMetadata(encoded, view.trailing) ||
      !ReadBytes(encoded, view.details)) {
    return absl::InternalError("malformed proxied reply");
  }
  view.message = encoded;
  return view;
}

absl::Status ProxyErrorStatus(absl::StatusCode code, absl::string_view message,
                              const Metadata& initial, const Metadata& trailing,
                              absl::string_view details) {
  absl::Status status(code, message);
  status.SetPayload(kProxyReplyPayload,
                    absl::Cord(EncodeProxyReply(initial, trailing, details,
                                                /*message=*/"")));
  return status;
}

std::optional<std::string> ProxyReplyOf(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kProxyReplyPayload);
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
}

}  // namespace singleflight
