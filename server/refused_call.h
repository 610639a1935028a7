#ifndef SINGLEFLIGHT_SERVER_REFUSED_CALL_H_
#define SINGLEFLIGHT_SERVER_REFUSED_CALL_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

namespace singleflight {

// The reactor of a raw streaming call (a DoStream, or any proxied call)
// refused before it started: finishes at once with `status`, and deletes
// itself in OnDone.
class RefusedCall
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit RefusedCall(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_REFUSED_CALL_H_
