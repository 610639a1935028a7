#ifndef SINGLEFLIGHT_FETCHERS_GRPC_CHANNEL_H_
#define SINGLEFLIGHT_FETCHERS_GRPC_CHANNEL_H_

#include <grpcpp/channel.h>

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/fetcher.h"

namespace singleflight {

// What the gRPC fetcher and the proxy share about talking to a backend gRPC
// server. Pure functions; thread-safe.

// A channel to `address` (HOST:PORT): plaintext, or TLS with `tls` (its
// files read now; empty fields take the defaults). Responses up to
// `max_receive_bytes` are accepted. Fails with INVALID_ARGUMENT or NOT_FOUND
// on unusable TLS settings (CheckBackendTls).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeBackendChannel(
    const std::string& address, bool use_tls, const BackendTls& tls,
    size_t max_receive_bytes);

// `metadata` with names in lower case, or INVALID_ARGUMENT, naming `what`,
// if gRPC could not send it (gRPC aborts the process on such metadata):
// names of 0-9 a-z - _ . and not grpc-*, values printable ASCII unless the
// name ends in -bin.
absl::StatusOr<Metadata> LowerCaseAndCheck(Metadata metadata,
                                           absl::string_view what);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_FETCHERS_GRPC_CHANNEL_H_
