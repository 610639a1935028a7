#ifndef SINGLEFLIGHT_BENCH_UNARY_TRANSPORT_H_
#define SINGLEFLIGHT_BENCH_UNARY_TRANSPORT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "bench/call_transport.h"
#include "singleflight/v1/singleflight.grpc.pb.h"

namespace singleflight {
namespace bench {

// Each call is one unary Do on the callback API, with its own deadline.
//
// Thread-safe.
class UnaryTransport final : public CallTransport {
 public:
  // `payload` is sent with every request.
  UnaryTransport(const std::shared_ptr<grpc::Channel>& channel,
                 std::string fetcher,
                 std::shared_ptr<const std::string> payload,
                 absl::Duration deadline);

  void Start(const std::string& key, CallDone done) override;
  // Unary calls need no half-close, and end by their deadline.
  void Close() override {}
  void Cancel() override {}

 private:
  const std::unique_ptr<v1::SingleFlight::Stub> stub_;
  const std::string fetcher_;
  const std::shared_ptr<const std::string> payload_;
  const absl::Duration deadline_;
};

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_UNARY_TRANSPORT_H_
