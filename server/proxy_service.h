#ifndef SINGLEFLIGHT_SERVER_PROXY_SERVICE_H_
#define SINGLEFLIGHT_SERVER_PROXY_SERVICE_H_

#include <grpcpp/generic/async_generic_service.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/group.h"
#include "server/access_control.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/proxy_methods.h"
#include "server/proxy_upstream.h"

namespace singleflight {

// Proxy mode: every method the server does not serve itself is forwarded to
// one upstream gRPC server, through gRPC's generic callback API (no
// upstream protos needed). Calls of the unary methods that a coalesce
// pattern names share one upstream call per (method, key_metadata values,
// request bytes) while it runs (StartCoalescedCall); every other call is
// forwarded one to one (StartForwardedCall).
//
// Which methods are unary is learned from a descriptor set, or else from the
// upstream's reflection service; a pattern that matches a streaming method
// forwards it one to one. With neither, methods named by patterns are
// trusted to be unary (a second response message fails their callers with
// INTERNAL), up to kMaxTrustedMethods of them.
//
// Each coalesced method is a NamedFetcher of its own, named by its path, so
// that InFlight, Forget, metrics and logs cover proxied flights like any
// other; the methods of one pattern share its policy and its concurrency
// limiter. (Methods coalesced on trust are counted in metrics under their
// pattern.) At most ProxyConfig::max_calls calls are open at once; further
// ones get RESOURCE_EXHAUSTED.
//
// Thread-safe. REQUIRES: `group`, `metrics` and `access` outlive the
// service; the server that serves it is shut down, and the group's flights
// failed (Group::FailAll), before it is destroyed.
class ProxyService : public grpc::CallbackGenericService {
 public:
  // Methods coalesced on trust alone (no descriptors), at most: beyond them,
  // further method names are forwarded one to one, so that callers cannot
  // make the server hold state for any number of made-up names.
  static constexpr size_t kMaxTrustedMethods = 1000;
  // Longer method names are never coalesced on trust.
  static constexpr size_t kMaxTrustedMethodLength = 256;

  // Builds the proxy of `config` (config.upstream not empty): checks its
  // patterns and policies, makes the channel, and reads the descriptor set,
  // or asks the upstream's reflection (for at most `reflection_timeout`; an
  // upstream that cannot be reached or has no reflection leaves patterns
  // trusted, with a log line; a zero timeout does not ask). Fails with
  // INVALID_ARGUMENT (or NOT_FOUND for a file) on a bad configuration, the
  // message saying where it was given.
  static absl::StatusOr<std::unique_ptr<ProxyService>> Create(
      const ProxyConfig& config, Group* group, ServerMetrics* metrics,
      const AccessControl* access, size_t max_message_bytes,
      absl::Duration reflection_timeout);

  // Waits for every upstream call to end.
  ~ProxyService() override;

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override;

  // The fetcher of a coalesced method that has had calls (or is known from
  // descriptors), for Forget; NOT_FOUND otherwise.
  absl::StatusOr<const NamedFetcher*> FindCoalesced(
      absl::string_view method) const;

  // Whether nothing is in progress: no call open, no flight running.
  bool Idle() const;

  // What the proxy learned about the upstream's methods, for the log.
  std::string Describe() const;

 private:
  // A coalesce pattern, with the policy its methods share.
  struct Pattern {
    MethodPattern pattern;
    FetcherPolicy policy;
    std::shared_ptr<ConcurrencyLimiter> limiter;
  };

  ProxyService(Group* group, ServerMetrics* metrics,
               const AccessControl* access);

  // The fetcher that coalesces `method`, made on first use; null to forward
  // it one to one.
  const NamedFetcher* CoalescerOf(absl::string_view method);
  // The pattern that `method` falls under and that may coalesce it, if any.
  const Pattern* CoalescingPattern(absl::string_view method) const;
  // Makes the fetcher of `method` under `pattern`, and its metrics.
  std::unique_ptr<NamedFetcher> MakeCoalescer(absl::string_view method,
                                              const Pattern& pattern);

  Group* const group_;
  ServerMetrics* const metrics_;
  const AccessControl& access_;
  // Forwarded calls go through `upstream_`, coalesced ones through
  // `coalescing_upstream_`: the same server, with receive limits of their
  // own.
  std::unique_ptr<ProxyUpstream> upstream_;
  std::unique_ptr<ProxyUpstream> coalescing_upstream_;
  // Calls open at once, at most (0: no limit); beyond, RESOURCE_EXHAUSTED.
  int max_calls_ = 0;
  std::vector<Pattern> patterns_;
  // Kinds of the upstream's methods, when known.
  std::optional<UpstreamMethods> methods_;
  std::string methods_source_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<NamedFetcher>> coalescers_
      ABSL_GUARDED_BY(mu_);
  bool warned_trusted_limit_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<int> open_calls_{0};
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_PROXY_SERVICE_H_
