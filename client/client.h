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
#include "singleflight/v1/singleflight.grpc.pb.h"

namespace singleflight {

// What a successful Do returns.
struct DoResult {
  std::string value;
  // True if the call shared its flight with another caller.
  bool shared = false;
};

struct ClientOptions {
  // Deadline of each call; absl::InfiniteDuration() for none.
  absl::Duration timeout = absl::Seconds(30);
};

// A thin C++ client for singleflight.v1.SingleFlight: blocking calls that
// return absl::Status (gRPC codes carried over unchanged).
//
// Thread-safe: one Client may be shared by any number of threads.
class Client {
 public:
  Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options = {});

  // A client on a plaintext channel to `target` (HOST:PORT).
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

  // Go's Forget. Returns whether a flight for the key was in progress.
  absl::StatusOr<bool> Forget(const std::string& key,
                              const std::string& fetcher = "");

  // The flights in progress on the server.
  absl::StatusOr<v1::InFlightResponse> InFlight();

  v1::SingleFlight::Stub& stub() { return *stub_; }

 private:
  void Prepare(grpc::ClientContext& context) const;

  const ClientOptions options_;
  std::unique_ptr<v1::SingleFlight::Stub> stub_;
};

// google.rpc status of a grpc::Status, as an absl::Status.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CLIENT_CLIENT_H_
