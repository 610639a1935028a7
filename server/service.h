#ifndef SINGLEFLIGHT_SERVER_SERVICE_H_
#define SINGLEFLIGHT_SERVER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "core/fetcher_registry.h"
#include "core/group.h"
#include "server/metrics.h"
#include "singleflight/v1/singleflight.grpc.pb.h"

namespace singleflight {

// singleflight.v1.SingleFlight on gRPC's callback API: adapts each RPC to the
// Group. No handler blocks a gRPC thread.
//
// Thread-safe. REQUIRES: `group`, `registry` and `metrics` outlive the
// service.
class SingleFlightService final : public v1::SingleFlight::CallbackService {
 public:
  SingleFlightService(Group* group, const FetcherRegistry* registry,
                      ServerMetrics* metrics);

  grpc::ServerUnaryReactor* Do(grpc::CallbackServerContext* context,
                               const v1::DoRequest* request,
                               v1::DoResponse* response) override;
  grpc::ServerBidiReactor<v1::DoRequest, v1::DoResponse>* DoStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Forget(grpc::CallbackServerContext* context,
                                   const v1::ForgetRequest* request,
                                   v1::ForgetResponse* response) override;
  grpc::ServerUnaryReactor* InFlight(grpc::CallbackServerContext* context,
                                     const v1::InFlightRequest* request,
                                     v1::InFlightResponse* response) override;

 private:
  Group* const group_;
  const FetcherRegistry& registry_;
  ServerMetrics* const metrics_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_SERVICE_H_
