#ifndef SINGLEFLIGHT_SERVER_DO_REACTOR_H_
#define SINGLEFLIGHT_SERVER_DO_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/fetcher_registry.h"
#include "core/group.h"
#include "server/metrics.h"

namespace singleflight {

// One unary Do call. StartDoCall joins or starts the flight; a call whose
// outcome is known at once (an immediate fetcher, a lingering value, bad
// input) finishes on gRPC's default reactor, and any other gets a DoReactor,
// which finishes when the flight completes, or at once when the caller
// cancels or its deadline passes. No thread waits in between. The call is raw
// (ByteBuffer in and out) so that the reply carries the flight's shared value
// without a copy per waiter (see EncodeDoResponse). `waiting_calls` counts
// the calls with a DoReactor until their OnDone (a drain waits for them).
grpc::ServerUnaryReactor* StartDoCall(grpc::CallbackServerContext* context,
                                      Group* group,
                                      const FetcherRegistry& registry,
                                      ServerMetrics* metrics,
                                      std::atomic<int>* waiting_calls,
                                      const grpc::ByteBuffer& raw_request,
                                      grpc::ByteBuffer* response);

// The reactor of a Do call that waits on its flight. Counts itself in
// `waiting_calls` from its construction until OnDone, where it deletes
// itself.
class DoReactor : public grpc::ServerUnaryReactor {
 public:
  // Hands outcomes from the Group to the call: to the DoReactor once there
  // is one, or kept until StartDoCall sees it. Thread-safe.
  class Mailbox;

  DoReactor(grpc::CallbackServerContext* context, Group* group,
            ServerMetrics* metrics, grpc::ByteBuffer* response,
            const NamedFetcher* fetcher, absl::Time started,
            Group::Ticket ticket, std::atomic<int>* waiting_calls);

  void OnCancel() override;
  void OnDone() override;

  // Finishes the call with `outcome`.
  void Deliver(const Outcome& outcome);

 private:
  grpc::CallbackServerContext* const context_;
  Group* const group_;
  ServerMetrics* const metrics_;
  grpc::ByteBuffer* const response_;
  const NamedFetcher* const fetcher_;
  const absl::Time started_;
  const Group::Ticket ticket_;
  std::atomic<int>* const waiting_calls_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_DO_REACTOR_H_
