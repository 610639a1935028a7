#include "client/client.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/flight_key.h"

namespace singleflight {
namespace {

// gRPC service config durations: seconds with a fraction, e.g. "0.100s".
std::string ServiceConfigDuration(absl::Duration duration) {
  return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(duration));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(
        absl::StrFormat("cannot read %s: %s", path, std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

std::string RetryServiceConfig(const RetryPolicy& policy) {
  if (policy.max_attempts <= 1) return "{}";
  std::vector<std::string> names;
  for (const char* method : {"Do", "DoStream", "InFlight"}) {
    names.push_back(absl::StrFormat(
        R"({"service": "singleflight.v1.SingleFlight", "method": "%s"})",
        method));
  }
  names.push_back(R"({"service": "grpc.health.v1.Health", "method": "Check"})");
  return absl::StrFormat(
      R"({"methodConfig": [{"name": [%s], "retryPolicy": {)"
      R"("maxAttempts": %d, "initialBackoff": "%s", "maxBackoff": "%s", )"
      R"("backoffMultiplier": %g, "retryableStatusCodes": ["UNAVAILABLE"]}}]})",
      absl::StrJoin(names, ", "), policy.max_attempts,
      ServiceConfigDuration(policy.initial_backoff),
      ServiceConfigDuration(policy.max_backoff), policy.multiplier);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
TlsCredentialsFromFiles(const std::string& ca_cert,
                        const std::string& client_cert,
                        const std::string& client_key) {
  if (client_cert.empty() != client_key.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate and its key go together: give both or neither");
  }
  grpc::SslCredentialsOptions options;
  if (!ca_cert.empty()) {
    absl::StatusOr<std::string> roots = ReadFile(ca_cert);
    if (!roots.ok()) return roots.status();
    options.pem_root_certs = *std::move(roots);
  }
  if (!client_cert.empty()) {
    absl::StatusOr<std::string> chain = ReadFile(client_cert);
    if (!chain.ok()) return chain.status();
    absl::StatusOr<std::string> key = ReadFile(client_key);
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *std::move(chain);
    options.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(options);
}

Client::Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : options_(std::move(options)),
      stub_(v1::SingleFlight::NewStub(channel)),
      health_stub_(grpc::health::v1::Health::NewStub(channel)) {}

std::unique_ptr<Client> Client::Connect(const std::string& target,
                                        ClientOptions options) {
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      options.credentials != nullptr ? options.credentials
                                     : grpc::InsecureChannelCredentials();
  grpc::ChannelArguments arguments;
  arguments.SetServiceConfigJSON(RetryServiceConfig(options.retry));
  arguments.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  return std::make_unique<Client>(
      grpc::CreateCustomChannel(target, credentials, arguments),
      std::move(options));
}

void Client::Prepare(grpc::ClientContext& context,
                     const std::string& flight_key) const {
  if (options_.timeout != absl::InfiniteDuration()) {
    context.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoMicroseconds(options_.timeout));
  }
  if (!flight_key.empty()) context.AddMetadata(kFlightKeyHeader, flight_key);
  if (!options_.bearer_token.empty()) {
    context.AddMetadata("authorization", "Bearer " + options_.bearer_token);
  }
}

absl::StatusOr<DoResult> Client::Do(const std::string& key,
                                    const std::string& fetcher,
                                    const std::string& payload) {
  grpc::ClientContext context;
  Prepare(context, FlightKey(fetcher, key));
  v1::DoRequest request;
  request.set_key(key);
  request.set_fetcher(fetcher);
  request.set_payload(payload);
  v1::DoResponse response;
  grpc::Status status = stub_->Do(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return DoResult{std::move(*response.mutable_value()), response.shared(),
                  absl::Seconds(response.age().seconds()) +
                      absl::Nanoseconds(response.age().nanos()),
                  response.stale()};
}

absl::Status Client::DoStream(
    const std::vector<v1::DoRequest>& requests,
    const std::function<void(const v1::DoResponse&)>& on_reply) {
  grpc::ClientContext context;
  Prepare(context, requests.empty() ? ""
                                    : FlightKey(requests.front().fetcher(),
                                                requests.front().key()));
  auto stream = stub_->DoStream(&context);
  for (const v1::DoRequest& request : requests) {
    if (!stream->Write(request)) break;  // Finish() below says why.
  }
  stream->WritesDone();
  v1::DoResponse response;
  while (stream->Read(&response)) on_reply(response);
  return FromGrpcStatus(stream->Finish());
}

absl::StatusOr<bool> Client::Forget(const std::string& key,
                                    const std::string& fetcher) {
  grpc::ClientContext context;
  Prepare(context, FlightKey(fetcher, key));
  v1::ForgetRequest request;
  request.set_key(key);
  request.set_fetcher(fetcher);
  v1::ForgetResponse response;
  grpc::Status status = stub_->Forget(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.forgotten();
}

absl::StatusOr<uint64_t> Client::Purge(const std::string& key_prefix,
                                       const std::string& fetcher) {
  grpc::ClientContext context;
  Prepare(context, "");
  v1::PurgeRequest request;
  request.set_key_prefix(key_prefix);
  request.set_fetcher(fetcher);
  v1::PurgeResponse response;
  grpc::Status status = stub_->Purge(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.dropped();
}

absl::StatusOr<v1::InFlightResponse> Client::InFlight() {
  grpc::ClientContext context;
  Prepare(context, "");
  v1::InFlightResponse response;
  grpc::Status status =
      stub_->InFlight(&context, v1::InFlightRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
Client::Health(const std::string& service) {
  grpc::ClientContext context;
  Prepare(context, "");
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health_stub_->Check(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.status();
}

}  // namespace singleflight
