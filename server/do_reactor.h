#ifndef SINGLEFLIGHT_SERVER_DO_REACTOR_H_
#define SINGLEFLIGHT_SERVER_DO_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include "core/fetcher_registry.h"
#include "core/group.h"
#include "server/metrics.h"
#include "singleflight/v1/singleflight.grpc.pb.h"

namespace singleflight {

// One unary Do call: joins or starts the flight, and finishes when the flight
// completes, or at once when the caller cancels or its deadline passes. No
// thread waits in between. The call is raw (ByteBuffer in and out) so that
// the reply can carry the flight's shared value without a copy per waiter
// (see EncodeDoResponse). Deletes itself in OnDone.
class DoReactor : public grpc::ServerUnaryReactor {
 public:
  DoReactor(grpc::CallbackServerContext* context, Group* group,
            const FetcherRegistry& registry, ServerMetrics* metrics,
            const grpc::ByteBuffer& raw_request, grpc::ByteBuffer* response);

  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  void Deliver(const Outcome& outcome);

  grpc::CallbackServerContext* const context_;
  Group* const group_;
  ServerMetrics* const metrics_;
  grpc::ByteBuffer* const response_;
  const absl::Time started_ = absl::Now();
  // The request's fetcher; null if the request was refused.
  const NamedFetcher* fetcher_ = nullptr;
  // Written before the reactor is returned to gRPC, read only by OnCancel.
  Group::Ticket ticket_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_DO_REACTOR_H_
