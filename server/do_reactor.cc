#include "server/do_reactor.h"

#include <chrono>
#include <optional>
#include <utility>

#include "server/call_metadata.h"
#include "server/do_response_encoder.h"
#include "server/grpc_status.h"
#include "server/request_decoding.h"
#include "server/request_validation.h"
#include "singleflight/v1/singleflight.grpc.pb.h"

namespace singleflight {
namespace {

// The reply to a call with `outcome`.
grpc::Status Reply(const Outcome& outcome, grpc::ByteBuffer* response) {
  if (!outcome.status().ok()) return ToGrpcStatus(outcome.status());
  *response = EncodeDoResponse(outcome.result, outcome.shared, outcome.age,
                               outcome.stale);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace

// How early a cancellation may come and still be the caller's deadline.
constexpr std::chrono::milliseconds kDeadlineSlack(100);

class DoReactor::Mailbox {
 public:
  // From the Group's waiter: delivers, or keeps the outcome for Collect.
  void Post(Outcome outcome) {
    DoReactor* reactor;
    {
      absl::MutexLock lock(&mu_);
      reactor = reactor_;
      if (reactor == nullptr) {
        early_ = std::move(outcome);
        return;
      }
    }
    reactor->Deliver(outcome);
  }

  // The outcome posted so far, if any.
  std::optional<Outcome> Collect() {
    absl::MutexLock lock(&mu_);
    return std::move(early_);
  }

  // From now on, outcomes go to `reactor`; returns one posted meanwhile.
  std::optional<Outcome> Attach(DoReactor* reactor) {
    absl::MutexLock lock(&mu_);
    reactor_ = reactor;
    return std::move(early_);
  }

 private:
  absl::Mutex mu_;
  DoReactor* reactor_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::optional<Outcome> early_ ABSL_GUARDED_BY(mu_);
};

grpc::ServerUnaryReactor* StartDoCall(grpc::CallbackServerContext* context,
                                      Group* group,
                                      const FetcherRegistry& registry,
                                      ServerMetrics* metrics,
                                      std::atomic<int>* waiting_calls,
                                      const grpc::ByteBuffer& raw_request,
                                      grpc::ByteBuffer* response) {
  absl::Time started = absl::Now();
  v1::DoRequest request;
  absl::Status decoded = DecodeDoRequest(raw_request, &request);
  if (!decoded.ok()) {
    metrics->CallEnded(nullptr, decoded.code(), absl::ZeroDuration(),
                       /*stream_item=*/false);
    return FinishNow(context, ToGrpcStatus(decoded));
  }
  absl::StatusOr<const NamedFetcher*> fetcher =
      ResolveRequest(registry, request.fetcher(), request.key());
  if (!fetcher.ok()) {
    metrics->CallEnded(nullptr, fetcher.status().code(), absl::ZeroDuration(),
                       /*stream_item=*/false);
    return FinishNow(context, ToGrpcStatus(fetcher.status()));
  }
  CallMetadata metadata =
      ExtractCallMetadata((*fetcher)->policy, context->client_metadata());
  Call call{request.key(), request.payload(), metadata.scope,
            &metadata.forwarded};
  auto mailbox = std::make_shared<DoReactor::Mailbox>();
  Group::Ticket ticket = group->Do(**fetcher, call, [mailbox](Outcome outcome) {
    mailbox->Post(std::move(outcome));
  });
  if (std::optional<Outcome> outcome = mailbox->Collect()) {
    metrics->CallEnded(*fetcher, outcome->status().code(),
                       absl::Now() - started, /*stream_item=*/false);
    return FinishNow(context, Reply(*outcome, response));
  }
  // The call waits: its request's bytes are no longer needed (the fetch and
  // the flight keep their own copies), so they go now rather than when the
  // call ends. gRPC only destroys this buffer after the handler.
  const_cast<grpc::ByteBuffer&>(raw_request).Clear();
  // gRPC does not call OnDone before this handler returns, so the reactor
  // may finish (from Deliver, on another thread) before that.
  auto* reactor = new DoReactor(context, group, metrics, response, *fetcher,
                                started, std::move(ticket), waiting_calls);
  if (std::optional<Outcome> outcome = mailbox->Attach(reactor)) {
    reactor->Deliver(*outcome);
  }
  return reactor;
}

DoReactor::DoReactor(grpc::CallbackServerContext* context, Group* group,
                     ServerMetrics* metrics, grpc::ByteBuffer* response,
                     const NamedFetcher* fetcher, absl::Time started,
                     Group::Ticket ticket, std::atomic<int>* waiting_calls)
    : context_(context),
      group_(group),
      metrics_(metrics),
      response_(response),
      fetcher_(fetcher),
      started_(started),
      ticket_(std::move(ticket)),
      waiting_calls_(waiting_calls) {
  waiting_calls_->fetch_add(1, std::memory_order_relaxed);
}

void DoReactor::OnDone() {
  std::atomic<int>* waiting_calls = waiting_calls_;
  delete this;
  // Last: a drain that sees 0 may destroy the service that owns the count.
  waiting_calls->fetch_sub(1, std::memory_order_release);
}

void DoReactor::OnCancel() {
  // The client ends its call at its deadline, which this server computed
  // from the same timeout on arrival: the cancellation may come a moment
  // before it.
  bool deadline_passed =
      context_->deadline() <= std::chrono::system_clock::now() + kDeadlineSlack;
  group_->Leave(ticket_, deadline_passed
                             ? absl::DeadlineExceededError("deadline exceeded")
                             : absl::CancelledError("cancelled by the caller"));
}

void DoReactor::Deliver(const Outcome& outcome) {
  metrics_->CallEnded(fetcher_, outcome.status().code(), absl::Now() - started_,
                      /*stream_item=*/false);
  Finish(Reply(outcome, response_));
}

}  // namespace singleflight
