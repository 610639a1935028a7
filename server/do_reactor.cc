#include "server/do_reactor.h"

#include <chrono>

#include "server/call_metadata.h"
#include "server/grpc_status.h"
#include "server/request_validation.h"

namespace singleflight {

DoReactor::DoReactor(grpc::CallbackServerContext* context, Group* group,
                     const FetcherRegistry& registry, ServerMetrics* metrics,
                     const v1::DoRequest& request, v1::DoResponse* response)
    : context_(context), group_(group), metrics_(metrics), response_(response) {
  absl::StatusOr<const NamedFetcher*> fetcher =
      ResolveRequest(registry, request.fetcher(), request.key());
  if (!fetcher.ok()) {
    metrics_->CallEnded(nullptr, fetcher.status().code(), absl::ZeroDuration(),
                        /*stream_item=*/false);
    Finish(ToGrpcStatus(fetcher.status()));
    return;
  }
  fetcher_ = *fetcher;
  // The waiter may run before Do returns (an immediate result); gRPC does not
  // call OnDone before this constructor has returned, so that is safe.
  CallMetadata metadata =
      ExtractCallMetadata((*fetcher)->policy, context->client_metadata());
  Call call{request.key(), request.payload(), metadata.scope,
            &metadata.forwarded};
  ticket_ = group_->Do(**fetcher, call,
                       [this](Outcome outcome) { Deliver(outcome); });
}

void DoReactor::OnCancel() {
  bool deadline_passed =
      context_->deadline() <= std::chrono::system_clock::now();
  group_->Leave(ticket_, deadline_passed
                             ? absl::DeadlineExceededError("deadline exceeded")
                             : absl::CancelledError("cancelled by the caller"));
}

void DoReactor::Deliver(const Outcome& outcome) {
  metrics_->CallEnded(fetcher_, outcome.status().code(), absl::Now() - started_,
                      /*stream_item=*/false);
  if (!outcome.status().ok()) {
    Finish(ToGrpcStatus(outcome.status()));
    return;
  }
  response_->set_value(outcome.value());
  response_->set_shared(outcome.shared);
  Finish(grpc::Status::OK);
}

}  // namespace singleflight
