#include "server/service.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/call_metadata.h"
#include "server/do_reactor.h"
#include "server/do_stream_reactor.h"
#include "server/grpc_status.h"
#include "server/refused_call.h"
#include "server/request_validation.h"

namespace singleflight {

namespace {

const char* RefusalReason(const absl::Status& status) {
  return status.code() == absl::StatusCode::kPermissionDenied
             ? "permission_denied"
             : "unauthenticated";
}

}  // namespace

SingleFlightService::SingleFlightService(Group* group,
                                         const FetcherRegistry* registry,
                                         const ProxyService* proxy,
                                         ServerMetrics* metrics,
                                         const AccessControl* access,
                                         StreamLimits stream_limits)
    : group_(group),
      registry_(*registry),
      proxy_(proxy),
      metrics_(metrics),
      access_(*access),
      stream_limits_(stream_limits) {}

absl::Status SingleFlightService::Admit(grpc::CallbackServerContext* context,
                                        Role role) {
  absl::Status allowed = access_.Check(context->client_metadata(), role);
  if (!allowed.ok()) metrics_->Refused(nullptr, RefusalReason(allowed));
  return allowed;
}

grpc::ServerUnaryReactor* SingleFlightService::Do(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  absl::Status allowed = Admit(context, Role::kCaller);
  if (!allowed.ok()) return Refuse(context, allowed);
  return StartDoCall(context, group_, registry_, metrics_, &waiting_calls_,
                     *request, response);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
SingleFlightService::DoStream(grpc::CallbackServerContext* context) {
  absl::Status allowed = Admit(context, Role::kCaller);
  if (!allowed.ok()) return new RefusedCall(ToGrpcStatus(allowed));
  // A drain that begins after this check is seen by the reactor itself.
  if (streams_.draining()) {
    return new RefusedCall(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDownMessage));
  }
  return new DoStreamReactor(context, group_, registry_, metrics_,
                             stream_limits_, &streams_);
}

grpc::ServerUnaryReactor* SingleFlightService::Refuse(
    grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* SingleFlightService::Forget(
    grpc::CallbackServerContext* context, const v1::ForgetRequest* request,
    v1::ForgetResponse* response) {
  absl::Status allowed = Admit(context, Role::kAdmin);
  if (!allowed.ok()) return Refuse(context, allowed);
  absl::StatusOr<const NamedFetcher*> fetcher = ResolveForget(*request);
  if (!fetcher.ok()) return Refuse(context, fetcher.status());
  CallMetadata metadata =
      ExtractCallMetadata((*fetcher)->policy, context->client_metadata());
  bool forgotten = group_->Forget(**fetcher, request->key(), metadata.scope);
  metrics_->Forgot(**fetcher, forgotten);
  response->set_forgotten(forgotten);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* SingleFlightService::Purge(
    grpc::CallbackServerContext* context, const v1::PurgeRequest* request,
    v1::PurgeResponse* response) {
  absl::Status allowed = Admit(context, Role::kAdmin);
  if (!allowed.ok()) return Refuse(context, allowed);
  absl::StatusOr<const NamedFetcher*> fetcher =
      proxy_ != nullptr && absl::StartsWith(request->fetcher(), "/")
          ? proxy_->FindCoalesced(request->fetcher())
          : registry_.Find(request->fetcher());
  if (!fetcher.ok()) return Refuse(context, fetcher.status());
  if ((*fetcher)->cache == nullptr) {
    return Refuse(context, absl::FailedPreconditionError(
                               absl::StrCat("fetcher \"", (*fetcher)->name,
                                            "\" has no cache policy")));
  }
  response->set_dropped((*fetcher)->cache->DropPrefix(request->key_prefix()));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

absl::StatusOr<const NamedFetcher*> SingleFlightService::ResolveForget(
    const v1::ForgetRequest& request) const {
  if (proxy_ != nullptr && absl::StartsWith(request.fetcher(), "/")) {
    if (request.key().empty()) {
      return absl::InvalidArgumentError("key must not be empty");
    }
    return proxy_->FindCoalesced(request.fetcher());
  }
  return ResolveRequest(registry_, request.fetcher(), request.key());
}

grpc::ServerUnaryReactor* SingleFlightService::InFlight(
    grpc::CallbackServerContext* context, const v1::InFlightRequest* request,
    v1::InFlightResponse* response) {
  absl::Status allowed = Admit(context, Role::kAdmin);
  if (!allowed.ok()) return Refuse(context, allowed);
  for (const FlightInfo& info : group_->InFlight()) {
    v1::Flight* flight = response->add_flights();
    flight->set_fetcher(info.fetcher);
    flight->set_key(info.key);
    flight->set_waiters(info.waiters);
    flight->set_forgotten(info.forgotten);
    int64_t nanos = absl::ToInt64Nanoseconds(info.age);
    flight->mutable_age()->set_seconds(nanos / 1000000000);
    flight->mutable_age()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace singleflight
