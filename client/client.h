#ifndef SINGLEFLIGHT_CLIENT_CLIENT_H_
#define SINGLEFLIGHT_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "singleflight/v1/singleflight.grpc.pb.h"

namespace singleflight {

// What a successful Do returns.
struct DoResult {
  std::string value;
  // True if the call shared its flight with another caller.
  bool shared = false;
  // For a value from the fetcher's cache: how long ago it was executed, and
  // whether it was served past its time to live.
  absl::Duration age = absl::ZeroDuration();
  bool stale = false;
};

// Retries of calls that fail with UNAVAILABLE (the server could not be
// reached, or is shutting down), carried out by gRPC's own retry support
// from the channel's service config. Do, DoStream (until its first reply
// arrives), InFlight and Health are retried; Forget never is, since a late
// second Forget could forget a flight that started after the first one.
// The n-th retry waits a random time between 0 and
// min(initial_backoff * multiplier^(n-1), max_backoff) (full jitter). Every
// attempt counts against the call's one deadline (ClientOptions::timeout).
struct RetryPolicy {
  // Attempts in all, the first included: 1 turns retries off. gRPC caps
  // this at 5.
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  double multiplier = 2.0;
};

// The largest reply a client accepts by default: the server's largest value
// (a fetcher's max_value_bytes, 64 MiB by default) and the reply's framing.
// gRPC's own default, 4 MiB, would refuse the values the server sends.
inline constexpr int kDefaultMaxReceiveMessageBytes = (64 << 20) + (64 << 10);

struct ClientOptions {
  // Deadline of each call, retries included; absl::InfiniteDuration() for
  // none.
  absl::Duration timeout = absl::Seconds(30);
  // Used by Connect, which builds the channel.
  RetryPolicy retry;
  // Used by Connect; null: plaintext. See TlsCredentialsFromFiles.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Sent as `authorization: Bearer TOKEN` on every call; empty for none.
  std::string bearer_token;
  // Used by Connect: the largest reply accepted; -1 for no limit. A larger
  // one fails its call with RESOURCE_EXHAUSTED.
  int max_receive_message_bytes = kDefaultMaxReceiveMessageBytes;
};

// A thin C++ client for singleflight.v1.SingleFlight and the server's
// grpc.health.v1.Health: blocking calls that return absl::Status (gRPC codes
// carried over unchanged). Every call that names a key sends the routing
// header kFlightKeyHeader (client/flight_key.h); a DoStream sends the one of
// its first request.
//
// Thread-safe: one Client may be shared by any number of threads.
class Client {
 public:
  // A client on `channel`, whose service config decides retries (Connect
  // builds one from ClientOptions::retry).
  Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options = {});

  // A client on a channel to `target` (HOST:PORT) with
  // `options.credentials`, `options.retry` and
  // `options.max_receive_message_bytes`.
  static std::unique_ptr<Client> Connect(const std::string& target,
                                         ClientOptions options = {});

  // Joins or starts the flight for (fetcher, key); an empty fetcher selects
  // the server's default. A failed flight's status is returned as is.
  absl::StatusOr<DoResult> Do(const std::string& key,
                              const std::string& fetcher = "",
                              const std::string& payload = "");

  // Sends every request at once on one DoStream, then half-closes, and calls
  // `on_reply` for each reply as it arrives (completion order). Returns the
  // stream's final status.
  absl::Status DoStream(
      const std::vector<v1::DoRequest>& requests,
      const std::function<void(const v1::DoResponse&)>& on_reply);

  // Drops the fetcher's cached values whose key starts with `key_prefix`,
  // for every tenant (an admin call). Returns how many were dropped.
  absl::StatusOr<uint64_t> Purge(const std::string& key_prefix,
                                 const std::string& fetcher = "");

  // Go's Forget. Returns whether a flight for the key was in progress.
  absl::StatusOr<bool> Forget(const std::string& key,
                              const std::string& fetcher = "");

  // The flights in progress on the server.
  absl::StatusOr<v1::InFlightResponse> InFlight();

  // grpc.health.v1.Health/Check of `service` ("": the server as a whole).
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Health(
      const std::string& service = "");

  v1::SingleFlight::Stub& stub() { return *stub_; }

 private:
  // Sets the deadline, and the routing header unless `flight_key` is empty.
  void Prepare(grpc::ClientContext& context,
               const std::string& flight_key) const;

  const ClientOptions options_;
  std::unique_ptr<v1::SingleFlight::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub_;
};

// google.rpc status of a grpc::Status, as an absl::Status.
absl::Status FromGrpcStatus(const grpc::Status& status);

// The service config (JSON) that makes a channel retry as `policy` says.
std::string RetryServiceConfig(const RetryPolicy& policy);

// TLS channel credentials from PEM files: `ca_cert` holds the roots that the
// server's certificate must chain to (empty: the system's roots);
// `client_cert` and `client_key`, both or neither, are the client's
// certificate chain and private key for mutual TLS. INVALID_ARGUMENT if only
// one of those is given, NOT_FOUND if a file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
TlsCredentialsFromFiles(const std::string& ca_cert,
                        const std::string& client_cert,
                        const std::string& client_key);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CLIENT_CLIENT_H_
