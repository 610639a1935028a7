#ifndef SINGLEFLIGHT_BENCH_CALL_TRANSPORT_H_
#define SINGLEFLIGHT_BENCH_CALL_TRANSPORT_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/functional/any_invocable.h"

namespace singleflight {
namespace bench {

// How one Do call (or DoStream item) of a load run ended.
struct CallResult {
  grpc::StatusCode code = grpc::StatusCode::OK;
  bool shared = false;
};

using CallDone = absl::AnyInvocable<void(CallResult)>;

// Carries a load run's calls to the server over one channel: as unary Do
// calls, or as items of one DoStream.
//
// Thread-safe: Start may be called from any thread, concurrently.
class CallTransport {
 public:
  virtual ~CallTransport() = default;

  // Sends a request for `key`. `done` is called exactly once, from a gRPC
  // thread (or from within Start, on the calling thread), when the call ends.
  // REQUIRES: Close() has not been called.
  virtual void Start(const std::string& key, CallDone done) = 0;

  // No more Start calls will come: calls in progress go on to their end.
  virtual void Close() = 0;

  // Ends the calls still in progress early, where the transport can: their
  // `done` is called with CANCELLED (or however they ended first). Unary
  // calls are left to their deadline.
  // REQUIRES: Close() has been called.
  virtual void Cancel() = 0;
};

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_CALL_TRANSPORT_H_
