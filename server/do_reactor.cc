#include "server/do_reactor.h"

#include <chrono>

#include "server/call_metadata.h"
#include "server/do_response_encoder.h"
#include "server/grpc_status.h"
#include "server/request_validation.h"

namespace singleflight {

DoReactor::DoReactor(grpc::CallbackServerContext* context, Group* group,
                     const FetcherRegistry& registry, ServerMetrics* metrics,
                     const grpc::ByteBuffer& raw_request,
                     grpc::ByteBuffer* response)
    : context_(context), group_(group), metrics_(metrics), response_(response) {
  v1::DoRequest request;
  grpc::ByteBuffer buffer(raw_request);  // Shares the slices; no copy.
  if (!grpc::SerializationTraits<v1::DoRequest>::Deserialize(&buffer, &request)
           .ok()) {
    metrics_->CallEnded(nullptr, absl::StatusCode::kInvalidArgument,
                        absl::ZeroDuration(), /*stream_item=*/false);
    Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the request is not a DoRequest"));
    return;
  }
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
  *response_ = EncodeDoResponse(outcome.result, outcome.shared);
  Finish(grpc::Status::OK);
}

}  // namespace singleflight
