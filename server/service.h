#ifndef SINGLEFLIGHT_SERVER_SERVICE_H_
#define SINGLEFLIGHT_SERVER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>

#include "core/fetcher_registry.h"
#include "core/group.h"
#include "server/access_control.h"
#include "server/do_stream_reactor.h"
#include "server/metrics.h"
#include "server/proxy_service.h"
#include "singleflight/v1/singleflight.grpc.pb.h"

namespace singleflight {

// singleflight.v1.SingleFlight on gRPC's callback API: adapts each RPC to the
// Group. No handler blocks a gRPC thread.
//
// Access control (bearer tokens) is checked first in every RPC.
//
// Thread-safe (BeginDrain included). REQUIRES: `group`, `registry`, `metrics`
// and `access` outlive the service.
class SingleFlightService final
    : public v1::SingleFlight::WithRawCallbackMethod_Do<
          v1::SingleFlight::WithRawCallbackMethod_DoStream<
              v1::SingleFlight::WithCallbackMethod_Forget<
                  v1::SingleFlight::WithCallbackMethod_InFlight<
                      v1::SingleFlight::WithCallbackMethod_Purge<
                          v1::SingleFlight::Service>>>>> {
 public:
  // `stream_limits` bound what each DoStream buffers. `proxy`, if not
  // null, resolves the fetcher names of proxied flights (method paths) for
  // Forget.
  SingleFlightService(Group* group, const FetcherRegistry* registry,
                      const ProxyService* proxy, ServerMetrics* metrics,
                      const AccessControl* access, StreamLimits stream_limits);

  // Raw: see DoReactor.
  grpc::ServerUnaryReactor* Do(grpc::CallbackServerContext* context,
                               const grpc::ByteBuffer* request,
                               grpc::ByteBuffer* response) override;
  // Raw: see DoStreamReactor.
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* DoStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Forget(grpc::CallbackServerContext* context,
                                   const v1::ForgetRequest* request,
                                   v1::ForgetResponse* response) override;
  grpc::ServerUnaryReactor* InFlight(grpc::CallbackServerContext* context,
                                     const v1::InFlightRequest* request,
                                     v1::InFlightResponse* response) override;
  // Drops a fetcher's cached values by key prefix, for every tenant.
  grpc::ServerUnaryReactor* Purge(grpc::CallbackServerContext* context,
                                  const v1::PurgeRequest* request,
                                  v1::PurgeResponse* response) override;

  // For a shutdown: from now on new DoStreams fail at once with UNAVAILABLE,
  // and every open one stops reading and ends once its pending replies are
  // written, with OK if the client had half-closed, else UNAVAILABLE (at
  // once if nothing is pending). Unary calls are not affected.
  void BeginDrain() { streams_.BeginDrain(); }
  // DoStreams not yet over (OnDone not yet run).
  int open_streams() const { return streams_.size(); }
  // Unary Do calls that waited on a flight and are not yet over (their
  // reply may still be being written).
  int waiting_calls() const {
    return waiting_calls_.load(std::memory_order_acquire);
  }

 private:
  // OK if the caller may call an RPC needing `role`; counts refusals.
  absl::Status Admit(grpc::CallbackServerContext* context, Role role);
  // The fetcher Forget names: a registered one, or a proxied method's.
  absl::StatusOr<const NamedFetcher*> ResolveForget(
      const v1::ForgetRequest& request) const;
  // Finishes a unary call at once with `status`.
  static grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context,
                                          const absl::Status& status);

  Group* const group_;
  const FetcherRegistry& registry_;
  const ProxyService* const proxy_;
  ServerMetrics* const metrics_;
  const AccessControl& access_;
  const StreamLimits stream_limits_;
  DoStreamRegistry streams_;
  std::atomic<int> waiting_calls_{0};
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_SERVICE_H_
