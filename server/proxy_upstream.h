#ifndef SINGLEFLIGHT_SERVER_PROXY_UPSTREAM_H_
#define SINGLEFLIGHT_SERVER_PROXY_UPSTREAM_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/string_ref.h>

#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/fetcher.h"

namespace singleflight {

// The upstream a proxy forwards to: one channel that every proxied call
// shares, and a count of the calls on it.
//
// gRPC 1.51 breaks if a channel's last reference is dropped on one of its
// own callback threads (grpc/grpc#32584): every call's ClientContext holds a
// reference, so calls count themselves (CallStarted before their context is
// made, CallEnded once it is destroyed), and the owner waits for them all
// (WaitForCalls) before it lets the channel go.
//
// Thread-safe.
class ProxyUpstream {
 public:
  explicit ProxyUpstream(std::shared_ptr<grpc::Channel> channel)
      : channel_(std::move(channel)), stub_(channel_) {}
  // REQUIRES: WaitForCalls has returned and no call has started since.
  ~ProxyUpstream() = default;
  ProxyUpstream(const ProxyUpstream&) = delete;
  ProxyUpstream& operator=(const ProxyUpstream&) = delete;

  grpc::GenericStub& stub() { return stub_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  void CallStarted();
  void CallEnded();
  // Waits until every call started has ended.
  void WaitForCalls();

 private:
  bool NoCalls() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return calls_ == 0;
  }

  const std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// Whether metadata `name` (lower case) passes through the proxy, in either
// direction: everything but HTTP/2 pseudo-headers, hop-by-hop and transport
// headers (te, content-type, user-agent, ...) and gRPC's reserved grpc-*
// names, which each hop sets for itself.
bool IsEndToEndMetadata(absl::string_view name);

// Whether gRPC can send metadata `name: value`: gRPC 1.51 accepts on receipt
// names and values it refuses to send (upper case, bytes outside printable
// ASCII in a value whose name does not end in -bin), and aborts the process
// when asked to send them.
bool IsSendableMetadata(absl::string_view name, absl::string_view value);

// The end-to-end entries of `metadata`, as received from a peer, that gRPC
// can send on; others are dropped.
Metadata EndToEndMetadata(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_PROXY_UPSTREAM_H_
