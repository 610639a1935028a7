#ifndef SINGLEFLIGHT_SERVER_PROXY_REPLY_H_
#define SINGLEFLIGHT_SERVER_PROXY_REPLY_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/fetcher.h"

namespace singleflight {

// An upstream's answer to one proxied unary call, as a flight carries it to
// every waiter: a flight's value is a string, and a failed flight an
// absl::Status, so the metadata travels inside them.
//
// An OK answer is the flight's value: EncodeProxyReply(initial, trailing,
// "", message). A failed one is an absl::Status with the upstream's code
// and message, whose payload kProxyReplyPayload holds
// EncodeProxyReply(initial, trailing, details, "").
//
// The encoding: for each of the initial and trailing metadata a varint count,
// then each name and value as a varint length and the bytes; then the status
// details (grpc-status-details-bin) as a varint length and the bytes; then the
// response message, to the end, so that it can be sent from the shared value
// without a copy. Pure functions; thread-safe.
inline constexpr absl::string_view kProxyReplyPayload =
    "type.singleflight.dev/proxy-reply";

std::string EncodeProxyReply(const Metadata& initial, const Metadata& trailing,
                             absl::string_view details,
                             absl::string_view message);

// Views into an encoded reply: valid while its bytes are.
struct ProxyReplyView {
  std::vector<std::pair<absl::string_view, absl::string_view>> initial;
  std::vector<std::pair<absl::string_view, absl::string_view>> trailing;
  absl::string_view details;
  absl::string_view message;
};

// Fails with INTERNAL on bytes EncodeProxyReply did not write.
absl::StatusOr<ProxyReplyView> DecodeProxyReply(absl::string_view encoded);

// The failed flight of an upstream error: `code` and `message`, carrying the
// rest of the reply.
absl::Status ProxyErrorStatus(absl::StatusCode code, absl::string_view message,
                              const Metadata& initial, const Metadata& trailing,
                              absl::string_view details);

// The encoded reply a failed flight carries, if it came from the upstream
// (errors of the tier itself, such as a timeout, carry none).
std::optional<std::string> ProxyReplyOf(const absl::Status& status);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_PROXY_REPLY_H_
