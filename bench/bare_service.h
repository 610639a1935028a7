#ifndef SINGLEFLIGHT_BENCH_BARE_SERVICE_H_
#define SINGLEFLIGHT_BENCH_BARE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "singleflight/v1/singleflight.grpc.pb.h"

namespace singleflight {
namespace bench {

// singleflight.v1.SingleFlight without singleflight: Do and DoStream answer
// every request at once, like the echo fetcher (the value is the payload,
// or the key if the payload is empty), never shared; no Group, no
// validation. The baseline that overhead benchmarks compare singleflightd
// with. Forget and InFlight are UNIMPLEMENTED.
//
// Thread-safe.
class BareService final : public v1::SingleFlight::CallbackService {
 public:
  grpc::ServerUnaryReactor* Do(grpc::CallbackServerContext* context,
                               const v1::DoRequest* request,
                               v1::DoResponse* response) override;
  grpc::ServerBidiReactor<v1::DoRequest, v1::DoResponse>* DoStream(
      grpc::CallbackServerContext* context) override;
};

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_BARE_SERVICE_H_
