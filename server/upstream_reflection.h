#ifndef SINGLEFLIGHT_SERVER_UPSTREAM_REFLECTION_H_
#define SINGLEFLIGHT_SERVER_UPSTREAM_REFLECTION_H_

#include <grpcpp/channel.h>

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/proxy_methods.h"

namespace singleflight {

// Asks the upstream's server reflection service
// (grpc.reflection.v1alpha.ServerReflection) for every service it serves and
// the kinds of their methods. Blocks the calling thread for at most
// `timeout`: for start-up. Fails with the upstream's status: UNIMPLEMENTED
// when it has no reflection service, UNAVAILABLE when it cannot be reached.
// Thread-safe.
absl::StatusOr<UpstreamMethods> DiscoverUpstreamMethods(
    const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_UPSTREAM_REFLECTION_H_
