#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "fetchers/builtin_fetchers.h"
#include "grpc/health/v1/health.pb.h"

namespace singleflight {

SingleFlightServer::SingleFlightServer()
    : group_(&timers_, &metrics_), registry_(FetcherEnvironment{&timers_}) {}

absl::StatusOr<std::unique_ptr<SingleFlightServer>> SingleFlightServer::Start(
    const ServerConfig& config) {
  std::unique_ptr<SingleFlightServer> server(new SingleFlightServer());
  FetcherRegistry& registry = server->registry_;
  RegisterBuiltinSchemes(registry);
  bool echo_taken = false;
  for (const FetcherConfig& fetcher : config.fetchers) {
    if (fetcher.name == kDefaultFetcherName) echo_taken = true;
  }
  if (!echo_taken) {
    absl::Status added = registry.Add(kDefaultFetcherName, kDefaultFetcherUri);
    if (!added.ok()) return added;
  }
  for (const FetcherConfig& fetcher : config.fetchers) {
    absl::Status added =
        registry.Add(fetcher.name, fetcher.uri, fetcher.policy);
    if (!added.ok()) {
      return absl::Status(added.code(),
                          absl::StrCat(fetcher.origin, ": ", added.message()));
    }
  }
  absl::Status defaulted = registry.SetDefault(config.default_fetcher.empty()
                                                   ? kDefaultFetcherName
                                                   : config.default_fetcher);
  if (!defaulted.ok()) return defaulted;

  for (const std::string& name : registry.Names()) {
    server->metrics_.AddFetcher(**registry.Find(name));
  }
  server->metrics_.WatchFlights(&server->group_, &registry);
  if (!config.metrics_listen.empty()) {
    try {
      server->exposer_ =
          std::make_unique<prometheus::Exposer>(config.metrics_listen);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(
          "cannot serve metrics on ", config.metrics_listen, ": ", e.what()));
    }
    for (const auto& collectable : server->metrics_.collectables()) {
      server->exposer_->RegisterCollectable(collectable);
    }
    server->metrics_port_ = server->exposer_->GetListeningPorts().front();
  }
  server->service_ = std::make_unique<SingleFlightService>(
      &server->group_, &registry, &server->metrics_);
  grpc::EnableDefaultHealthCheckService(true);
  // Reflection describes what is in the binary's descriptor pool; naming a
  // health message links health.proto in, so that grpc.health.v1.Health can
  // be described (gRPC's own health service does not use these messages).
  grpc::health::v1::HealthCheckResponse::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.listen));
  }
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  return server;
}

SingleFlightServer::~SingleFlightServer() { Shutdown(absl::ZeroDuration()); }

void SingleFlightServer::Shutdown(absl::Duration drain) {
  if (server_ == nullptr) return;
  server_->GetHealthCheckService()->SetServingStatus(false);
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMicroseconds(drain));
  server_->Wait();
  server_.reset();
}

}  // namespace singleflight
