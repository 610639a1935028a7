#ifndef SINGLEFLIGHT_SERVER_GRPC_STATUS_H_
#define SINGLEFLIGHT_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace singleflight {

// absl::Status and grpc::Status share google.rpc.Code numbering.
inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_GRPC_STATUS_H_
