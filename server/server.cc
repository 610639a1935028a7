#include "server/server.h"

#include <errno.h>
#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "fetchers/builtin_fetchers.h"
#include "grpc/health/v1/health.pb.h"
#include "server/pem_files.h"

namespace singleflight {

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError("cannot read " + path);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// How often the TLS certificate files are checked for changes.
constexpr absl::Duration kCertificateRefresh = absl::Seconds(1);

// Plaintext, TLS, or mutual TLS, as configured. The certificate files are
// watched: when they change, new connections get the new certificates
// (within kCertificateRefresh), and connections already open go on.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const ServerConfig& config) {
  if (config.tls_cert.empty() && config.tls_key.empty()) {
    if (!config.tls_client_ca.empty()) {
      return absl::InvalidArgumentError(
          "a client CA (mutual TLS) needs a server certificate and key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (config.tls_cert.empty() || config.tls_key.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate and a key");
  }
  // Checked once here, so that a bad file stops start-up; the watcher
  // re-reads them.
  absl::Status usable = CheckCertificateAndKey(config.tls_cert, config.tls_key);
  if (!usable.ok()) return usable;
  if (!config.tls_client_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(config.tls_client_ca);
    if (!ca.ok()) return ca.status();
  }
  const unsigned int refresh_seconds =
      static_cast<unsigned int>(absl::ToInt64Seconds(kCertificateRefresh));
  auto watcher = config.tls_client_ca.empty()
                     ? std::make_shared<
                           grpc::experimental::FileWatcherCertificateProvider>(
                           config.tls_key, config.tls_cert, refresh_seconds)
                     : std::make_shared<
                           grpc::experimental::FileWatcherCertificateProvider>(
                           config.tls_key, config.tls_cert,
                           config.tls_client_ca, refresh_seconds);
  grpc::experimental::TlsServerCredentialsOptions options(watcher);
  options.watch_identity_key_cert_pairs();
  if (!config.tls_client_ca.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

// Builds every configured fetcher, and the embedded one, into `registry`,
// and sets the default. A bad fetcher's message starts with where it was
// configured.
// How long start-up waits for the upstream's reflection service.
constexpr absl::Duration kReflectionTimeout = absl::Seconds(5);

// The proxy of `config`, or null without an upstream. `reflection_timeout`
// zero: the upstream is not asked.
absl::StatusOr<std::unique_ptr<ProxyService>> MakeProxy(
    const ServerConfig& config, Group* group, ServerMetrics* metrics,
    const AccessControl* access, absl::Duration reflection_timeout) {
  if (config.proxy.upstream.empty()) {
    if (!config.proxy.coalesce.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          config.proxy.coalesce.front().origin,
          ": coalesce patterns need a proxy upstream (--proxy_upstream)"));
    }
    return nullptr;
  }
  return ProxyService::Create(
      config.proxy, group, metrics, access,
      static_cast<size_t>(std::max(config.max_message_bytes, 4 << 20)),
      reflection_timeout);
}

absl::Status AddFetchers(const ServerConfig& config,
                         FetcherRegistry& registry) {
  RegisterBuiltinSchemes(registry);
  ServerConfig with_echo = config;
  AddEmbeddedFetcher(with_echo);
  for (const FetcherConfig& fetcher : with_echo.fetchers) {
    absl::Status added =
        registry.Add(fetcher.name, fetcher.uri, fetcher.policy);
    if (!added.ok()) {
      return absl::Status(added.code(),
                          absl::StrCat(fetcher.origin, ": ", added.message()));
    }
  }
  return registry.SetDefault(config.default_fetcher.empty()
                                 ? kDefaultFetcherName
                                 : config.default_fetcher);
}

// Whether binding `listen` (HOST:PORT, as gRPC takes it) fails because
// another socket listens there. Asked after gRPC failed to listen, which
// does not say why.
bool AddressInUse(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || absl::StartsWith(listen, "unix:")) {
    return false;
  }
  absl::string_view host = absl::string_view(listen).substr(0, colon);
  absl::ConsumePrefix(&host, "[");
  absl::ConsumeSuffix(&host, "]");
  std::string host_name(host);
  std::string port = listen.substr(colon + 1);
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* addresses = nullptr;
  if (getaddrinfo(host_name.empty() ? nullptr : host_name.c_str(), port.c_str(),
                  &hints, &addresses) != 0) {
    return false;
  }
  bool in_use = false;
  for (addrinfo* address = addresses; address != nullptr && !in_use;
       address = address->ai_next) {
    int fd = socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC,
                    address->ai_protocol);
    if (fd < 0) continue;
    // As gRPC does, so that connections in TIME_WAIT do not count.
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    in_use = bind(fd, address->ai_addr, address->ai_addrlen) != 0 &&
             errno == EADDRINUSE;
    close(fd);
  }
  freeaddrinfo(addresses);
  return in_use;
}

}  // namespace

SingleFlightServer::SingleFlightServer()
    : group_(&timers_, &observers_), registry_(FetcherEnvironment{&timers_}) {}

absl::StatusOr<std::unique_ptr<SingleFlightServer>> SingleFlightServer::Start(
    const ServerConfig& config) {
  std::unique_ptr<SingleFlightServer> server(new SingleFlightServer());
  FetcherRegistry& registry = server->registry_;
  absl::Status fetchers = AddFetchers(config, registry);
  if (!fetchers.ok()) return fetchers;

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
  absl::StatusOr<AccessControl> access =
      AccessControl::Load(config.caller_token_file, config.admin_token_file);
  if (!access.ok()) return access.status();
  server->access_ = *std::move(access);
  server->caller_token_file_ = config.caller_token_file;
  server->admin_token_file_ = config.admin_token_file;
  absl::StatusOr<std::unique_ptr<ProxyService>> proxy =
      MakeProxy(config, &server->group_, &server->metrics_, &server->access_,
                kReflectionTimeout);
  if (!proxy.ok()) return proxy.status();
  server->proxy_ = *std::move(proxy);
  if (server->proxy_ != nullptr) LogInfo(server->proxy_->Describe());
  server->service_ = std::make_unique<SingleFlightService>(
      &server->group_, &registry, server->proxy_.get(), &server->metrics_,
      &server->access_,
      StreamLimits{static_cast<size_t>(std::max(0, config.max_stream_pending)),
                   static_cast<size_t>(
                       std::max<int64_t>(0, config.max_stream_buffer_bytes))});
  grpc::EnableDefaultHealthCheckService(true);
  // Reflection describes what is in the binary's descriptor pool; naming a
  // health message links health.proto in, so that grpc.health.v1.Health can
  // be described (gRPC's own health service does not use these messages).
  grpc::health::v1::HealthCheckResponse::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentials(config);
  if (!credentials.ok()) return credentials.status();
  builder.AddListeningPort(config.listen, *credentials, &server->port_);
  builder.RegisterService(server->service_.get());
  if (server->proxy_ != nullptr) {
    builder.RegisterCallbackGenericService(server->proxy_.get());
  }
  if (config.max_message_bytes > 0) {
    builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  }
  // Without this gRPC sets SO_REUSEPORT, and a second server on the port
  // would start and take half of its connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // A waiting call does not need a server-side timer for its deadline: the
  // client ends the call at its deadline (RST_STREAM), which reaches the
  // reactor as OnCancel, and context->deadline() is still read. Measured at
  // 100,000 waiting calls, gRPC's per-call deadline timers cost 30-40 us of
  // CPU per call (docs/PERFORMANCE.md). Keepalive pings instead find the
  // peers that vanish without ending their calls.
  builder.AddChannelArgument(GRPC_ARG_ENABLE_DEADLINE_CHECKS, 0);
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIME_MS,
      static_cast<int>(kKeepaliveTime / absl::Milliseconds(1)));
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      static_cast<int>(kKeepaliveTimeout / absl::Milliseconds(1)));
  if (config.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               config.max_concurrent_streams);
  }
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", config.listen,
        AddressInUse(config.listen)
            ? ": the address is in use (is another singleflightd running?)"
            : ""));
  }
  grpc::HealthCheckServiceInterface* health =
      server->server_->GetHealthCheckService();
  health->SetServingStatus(v1::SingleFlight::service_full_name(), true);
  health->SetServingStatus(true);
  return server;
}

absl::Status SingleFlightServer::Check(const ServerConfig& config) {
  TimerQueue timers;
  FetcherRegistry registry(FetcherEnvironment{&timers});
  absl::Status fetchers = AddFetchers(config, registry);
  if (!fetchers.ok()) return fetchers;
  absl::StatusOr<AccessControl> access =
      AccessControl::Load(config.caller_token_file, config.admin_token_file);
  if (!access.ok()) return access.status();
  Group group(&timers);
  ServerMetrics metrics;
  absl::StatusOr<std::unique_ptr<ProxyService>> proxy =
      MakeProxy(config, &group, &metrics, &*access,
                /*reflection_timeout=*/absl::ZeroDuration());
  if (!proxy.ok()) return proxy.status();
  return ServerCredentials(config).status();
}

SingleFlightServer::~SingleFlightServer() { Shutdown(absl::ZeroDuration()); }

absl::Status SingleFlightServer::ReloadTokens() {
  absl::StatusOr<AccessControl> access =
      AccessControl::Load(caller_token_file_, admin_token_file_);
  if (!access.ok()) return access.status();
  access_.Replace(*access);
  return absl::OkStatus();
}

void SingleFlightServer::ReportNotServing() {
  if (server_ == nullptr) return;
  // Every service name the health service knows.
  server_->GetHealthCheckService()->SetServingStatus(false);
}

bool SingleFlightServer::Idle() const {
  if (service_->open_streams() > 0 || service_->waiting_calls() > 0) {
    return false;
  }
  if (proxy_ != nullptr && !proxy_->Idle()) return false;
  // Cheaper than Group::InFlight, which copies every flight's key.
  for (const std::string& name : registry_.Names()) {
    absl::StatusOr<const NamedFetcher*> fetcher = registry_.Find(name);
    if (fetcher.ok() && (*fetcher)->flights.load() > 0) return false;
  }
  return true;
}

void SingleFlightServer::Shutdown(absl::Duration drain) {
  if (server_ == nullptr) return;
  ReportNotServing();
  service_->BeginDrain();
  // gRPC stops accepting calls at once, sends every connection a GOAWAY and
  // returns once every connection has closed. It closes one only after its
  // client acknowledged a ping sent with the GOAWAY, which an idle client
  // (no call in progress, nothing polling its connection) may never do: the
  // connections left are closed below instead.
  absl::Time drained = absl::Now() + drain;
  absl::Notification stopped;
  std::thread stopper([this, &stopped] {
    server_->Shutdown();
    stopped.Notify();
  });
  while (absl::Now() < drained && !Idle()) {
    if (stopped.WaitForNotificationWithTimeout(absl::Milliseconds(10))) break;
  }
  bool idle = Idle();
  group_.FailAll(absl::UnavailableError(
      "the server is shutting down; try another replica"));
  // Replies given to gRPC (and UNAVAILABLE to the waiters just failed) are
  // written, and their streams end, while connections may still close by
  // themselves.
  stopped.WaitForNotificationWithTimeout(idle ? kSettle : kStreamGrace);
  // Cancels what is left and closes every connection; repeated in case the
  // stopper had not begun gRPC's shutdown yet (a connection accepted before
  // it would be left open).
  while (!stopped.HasBeenNotified()) {
    grpc_server_cancel_all_calls(server_->c_server());
    stopped.WaitForNotificationWithTimeout(absl::Milliseconds(100));
  }
  stopper.join();
  server_->Wait();
  server_.reset();
}

}  // namespace singleflight
