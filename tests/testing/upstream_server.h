#ifndef SINGLEFLIGHT_TESTS_TESTING_UPSTREAM_SERVER_H_
#define SINGLEFLIGHT_TESTS_TESTING_UPSTREAM_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/timer_queue.h"
#include "upstream.grpc.pb.h"

namespace singleflight {

// A real gRPC server in the test's process, serving
// singleflight.testing.Upstream on 127.0.0.1 at a port of its own: the
// upstream that gRPC fetcher and proxy tests call. Each GetRequest says what
// its call does (answer, answer late, fail with details, hang until
// cancelled); the server counts calls per key (of every method) and records
// the metadata and cancellations it saw.
//
// Thread-safe. The Wait* methods wait at most the time they are given.
class UpstreamServer {
 public:
  using Metadata = std::vector<std::pair<std::string, std::string>>;

  // Starts serving, in plaintext or with `credentials`, with a server
  // reflection service (grpc.reflection.v1alpha, describing Upstream) if
  // `reflection`; returns nullptr if the server cannot start.
  static std::unique_ptr<UpstreamServer> Start(
      std::shared_ptr<grpc::ServerCredentials> credentials = nullptr,
      bool reflection = false);

  // Stops serving at once, cancelling the calls in progress.
  ~UpstreamServer();
  UpstreamServer(const UpstreamServer&) = delete;
  UpstreamServer& operator=(const UpstreamServer&) = delete;

  int port() const { return port_; }
  // The URI of a gRPC fetcher for Upstream/Get on this server (grpcs:// if
  // it was started with credentials).
  std::string GetUri() const;

  // Calls received for `key`, and for every key.
  int Calls(absl::string_view key) const;
  int TotalCalls() const;
  // Waits until `calls` calls for `key` have been received.
  bool WaitForCalls(absl::string_view key, int calls,
                    absl::Duration timeout) const;

  // The client metadata of the last call received for `key`.
  Metadata LastMetadata(absl::string_view key) const;

  // Waits until a call for `key` has seen its client cancel it (or its
  // deadline pass).
  bool WaitForCancelled(absl::string_view key, absl::Duration timeout) const;

 private:
  class Service;
  class Handler;
  class Reflection;
  class WatchHandler;
  class ExchangeHandler;
  class CollectHandler;

  UpstreamServer();
  // Records a call for `key`; returns its number among the calls for `key`.
  int RecordCall(const std::string& key, Metadata metadata);
  // As RecordCall, with the call's client metadata, and marks the call's
  // metadata (see upstream.proto).
  int RecordCall(grpc::CallbackServerContext* context, const std::string& key);
  void RecordCancelled(const std::string& key);

  // Before the server, which uses it until it is destroyed.
  TimerQueue timers_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<Reflection> reflection_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool tls_ = false;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  int total_calls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, Metadata> metadata_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> cancelled_ ABSL_GUARDED_BY(mu_);
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_TESTS_TESTING_UPSTREAM_SERVER_H_
