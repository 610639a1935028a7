#include "server/service.h"

#include "absl/time/time.h"
#include "server/call_metadata.h"
#include "server/do_reactor.h"
#include "server/do_stream_reactor.h"
#include "server/grpc_status.h"
#include "server/request_validation.h"

namespace singleflight {

SingleFlightService::SingleFlightService(Group* group,
                                         const FetcherRegistry* registry,
                                         ServerMetrics* metrics)
    : group_(group), registry_(*registry), metrics_(metrics) {}

grpc::ServerUnaryReactor* SingleFlightService::Do(
    grpc::CallbackServerContext* context, const v1::DoRequest* request,
    v1::DoResponse* response) {
  return new DoReactor(context, group_, registry_, metrics_, *request,
                       response);
}

grpc::ServerBidiReactor<v1::DoRequest, v1::DoResponse>*
SingleFlightService::DoStream(grpc::CallbackServerContext* context) {
  return new DoStreamReactor(context, group_, registry_, metrics_);
}

grpc::ServerUnaryReactor* SingleFlightService::Forget(
    grpc::CallbackServerContext* context, const v1::ForgetRequest* request,
    v1::ForgetResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<const NamedFetcher*> fetcher =
      ResolveRequest(registry_, request->fetcher(), request->key());
  if (!fetcher.ok()) {
    reactor->Finish(ToGrpcStatus(fetcher.status()));
    return reactor;
  }
  CallMetadata metadata =
      ExtractCallMetadata((*fetcher)->policy, context->client_metadata());
  bool forgotten =
      group_->Forget((*fetcher)->name, request->key(), metadata.scope);
  metrics_->Forgot(**fetcher, forgotten);
  response->set_forgotten(forgotten);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* SingleFlightService::InFlight(
    grpc::CallbackServerContext* context, const v1::InFlightRequest* request,
    v1::InFlightResponse* response) {
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
