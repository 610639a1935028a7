#ifndef SINGLEFLIGHT_FETCHERS_GRPC_FETCHER_H_
#define SINGLEFLIGHT_FETCHERS_GRPC_FETCHER_H_

#include <grpcpp/generic/generic_stub.h>

#include <cstddef>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/fetcher.h"
#include "core/fetcher_registry.h"

namespace singleflight {

// A fetcher that calls one unary method of an upstream gRPC service. URI
// `grpc://HOST:PORT/package.Service/Method` (plaintext) or
// `grpcs://HOST:PORT/package.Service/Method` (TLS, checked against the
// default root certificates).
//
// The payload is sent as the serialized request message, and the serialized
// response message is the value; the upstream status (code and message)
// fails the flight unchanged. Each call has the policy's timeout as its
// deadline and carries the policy's headers and the forwarded metadata as
// gRPC metadata; it is cancelled, so that the upstream sees the cancellation,
// when the flight is. A response larger than the policy's max_value_bytes
// fails its flight with RESOURCE_EXHAUSTED.
//
// Thread-safe. All calls share one channel. Destroying the fetcher cancels
// the calls in progress and waits for their callbacks to return.
class GrpcFetcher : public Fetcher {
 public:
  // The FetcherFactory for the `grpc` and `grpcs` schemes. Fails with
  // INVALID_ARGUMENT on a URI without HOST:PORT or /Service/Method, with
  // settings, or on a header gRPC cannot send.
  static absl::StatusOr<std::unique_ptr<Fetcher>> Create(
      const FetcherUri& uri, const FetcherPolicy& policy,
      const FetcherEnvironment& environment);

  // Calls `method` ("/package.Service/Method") on `channel`.
  // REQUIRES: the headers of `policy` are valid gRPC metadata, names in
  // lower case.
  GrpcFetcher(std::shared_ptr<grpc::Channel> channel, std::string method,
              const FetcherPolicy& policy);
  // Cancels the calls in progress and waits for their callbacks to return.
  // REQUIRES: not called from one of those callbacks.
  ~GrpcFetcher() override;
  GrpcFetcher(const GrpcFetcher&) = delete;
  GrpcFetcher& operator=(const GrpcFetcher&) = delete;

  void Fetch(FetchRequest request, FetchCallback done) override;

 private:
  struct Call;

  void CallEnded(Call* call);
  bool NoCalls() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return calls_.empty();
  }

  grpc::GenericStub stub_;
  const std::string method_;
  const absl::Duration timeout_;
  const Metadata headers_;
  const size_t max_value_bytes_;

  // The calls in progress. Each holds a reference to the channel (in its
  // ClientContext) until it is destroyed, which may happen on a thread of
  // gRPC's; the destructor waits for them all, so that the last reference is
  // always dropped by the fetcher, on its own thread: gRPC 1.51 breaks if a
  // channel dies on one of its callback threads (grpc/grpc#32584).
  absl::Mutex mu_;
  absl::flat_hash_map<Call*, std::weak_ptr<Call>> calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_FETCHERS_GRPC_FETCHER_H_
