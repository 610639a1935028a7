#include "server/proxy_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/fetcher_registry.h"
#include "fetchers/grpc_channel.h"
#include "server/coalesced_call.h"
#include "server/forwarded_call.h"
#include "server/grpc_status.h"
#include "server/logging.h"
#include "server/proxy_fetcher.h"
#include "server/refused_call.h"
#include "server/upstream_reflection.h"

namespace singleflight {
namespace {

absl::Status Located(const std::string& origin, const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat(origin, ": ", status.message()));
}

}  // namespace

ProxyService::ProxyService(Group* group, ServerMetrics* metrics,
                           const AccessControl* access)
    : group_(group), metrics_(metrics), access_(*access) {}

absl::StatusOr<std::unique_ptr<ProxyService>> ProxyService::Create(
    const ProxyConfig& config, Group* group, ServerMetrics* metrics,
    const AccessControl* access, size_t max_message_bytes,
    absl::Duration reflection_timeout) {
  std::unique_ptr<ProxyService> proxy(new ProxyService(group, metrics, access));
  for (const ProxyCoalesceConfig& entry : config.coalesce) {
    absl::StatusOr<MethodPattern> pattern = MethodPattern::Parse(entry.method);
    if (!pattern.ok()) return Located(entry.origin, pattern.status());
    FetcherPolicy policy = entry.policy;
    absl::Status valid = ValidatePolicy(policy);
    if (!valid.ok()) return Located(entry.origin, valid);
    if (policy.cache.enabled()) {
      return Located(entry.origin,
                     absl::InvalidArgumentError(
                         "cache: is not supported on proxy coalesce patterns "
                         "(only on fetchers)"));
    }
    for (const std::string& name : policy.forward_metadata) {
      if (!IsEndToEndMetadata(name)) {
        return Located(entry.origin,
                       absl::InvalidArgumentError(absl::StrCat(
                           "forward_metadata \"", name,
                           "\" is set by each hop (grpc-*, hop-by-hop "
                           "headers) and cannot be forwarded")));
      }
      if (name == "authorization" && access->enabled()) {
        return Located(
            entry.origin,
            absl::InvalidArgumentError(
                "forward_metadata \"authorization\" would send this tier's "
                "caller token upstream (caller tokens are configured)"));
      }
    }
    absl::StatusOr<Metadata> headers =
        LowerCaseAndCheck(policy.headers, "header");
    if (!headers.ok()) return Located(entry.origin, headers.status());
    policy.headers = *std::move(headers);
    std::shared_ptr<ConcurrencyLimiter> limiter;
    if (policy.max_concurrency > 0) {
      limiter = std::make_shared<ConcurrencyLimiter>(policy.max_concurrency,
                                                     policy.max_queue);
    }
    proxy->patterns_.push_back(
        Pattern{*std::move(pattern), std::move(policy), std::move(limiter)});
  }
  if (!config.tls && !config.tls_files.empty()) {
    return absl::InvalidArgumentError(
        "proxy: TLS files (ca_file, ...) need tls: true "
        "(--proxy_upstream_tls)");
  }
  // Coalesced responses may be as large as their pattern's max_value_bytes;
  // forwarded messages as large as requests may be (max_message_bytes), so
  // that a call held open by a caller that does not read holds at most that.
  size_t max_value = 0;
  for (const Pattern& pattern : proxy->patterns_) {
    max_value = std::max(max_value, pattern.policy.max_value_bytes);
  }
  for (auto [upstream, max_receive] :
       {std::pair{&proxy->upstream_, max_message_bytes},
        std::pair{&proxy->coalescing_upstream_,
                  std::max(max_value, max_message_bytes)}}) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeBackendChannel(
        config.upstream, config.tls, config.tls_files, max_receive);
    if (!channel.ok()) return Located("proxy", channel.status());
    *upstream = std::make_unique<ProxyUpstream>(*std::move(channel));
  }
  proxy->max_calls_ = config.max_calls;

  if (!config.descriptor_set.empty()) {
    absl::StatusOr<UpstreamMethods> methods =
        UpstreamMethods::FromDescriptorSetFile(config.descriptor_set);
    if (!methods.ok()) return Located("proxy descriptor_set", methods.status());
    proxy->methods_ = *std::move(methods);
    proxy->methods_source_ = config.descriptor_set;
  } else if (!proxy->patterns_.empty() &&
             reflection_timeout > absl::ZeroDuration()) {
    absl::StatusOr<UpstreamMethods> methods = DiscoverUpstreamMethods(
        proxy->coalescing_upstream_->channel(), reflection_timeout);
    if (methods.ok()) {
      proxy->methods_ = *std::move(methods);
      proxy->methods_source_ = "the upstream's reflection";
    } else {
      LogWarning(absl::StrCat(
          "proxy: the methods named by coalesce patterns are trusted to be "
          "unary (no descriptor set, and ",
          methods.status().message(), ")"));
    }
  }
  if (proxy->methods_.has_value()) {
    std::vector<std::string> paths = proxy->methods_->Paths();
    for (const Pattern& pattern : proxy->patterns_) {
      bool matches = std::any_of(paths.begin(), paths.end(),
                                 [&pattern](const std::string& path) {
                                   return pattern.pattern.Matches(path);
                                 });
      bool matches_unary =
          std::any_of(paths.begin(), paths.end(), [&](const std::string& path) {
            MethodKind kind;
            return pattern.pattern.Matches(path) &&
                   proxy->methods_->Find(path, kind) &&
                   kind == MethodKind::kUnary;
          });
      if (!matches) {
        LogWarning(absl::StrCat("proxy: coalesce pattern ",
                                pattern.pattern.text(),
                                " matches no method of the upstream (from ",
                                proxy->methods_source_, ")"));
      } else if (!matches_unary) {
        LogWarning(absl::StrCat(
            "proxy: coalesce pattern ", pattern.pattern.text(),
            " matches only streaming methods, which are forwarded one to one "
            "(from ",
            proxy->methods_source_, ")"));
      }
    }
    // Every coalescible method is known: make their fetchers (and metrics)
    // now, before serving.
    absl::MutexLock lock(&proxy->mu_);
    for (const std::string& path : paths) {
      if (const Pattern* pattern = proxy->CoalescingPattern(path)) {
        proxy->coalescers_[path] = proxy->MakeCoalescer(path, *pattern);
      }
    }
  }
  return proxy;
}

ProxyService::~ProxyService() {
  // Null when Create failed before making them.
  if (upstream_ != nullptr) upstream_->WaitForCalls();
  if (coalescing_upstream_ != nullptr) coalescing_upstream_->WaitForCalls();
}

std::string ProxyService::Describe() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> coalesced;
  for (const auto& [path, fetcher] : coalescers_) coalesced.push_back(path);
  std::sort(coalesced.begin(), coalesced.end());
  if (!methods_.has_value()) {
    std::vector<std::string> trusted;
    for (const Pattern& pattern : patterns_) {
      trusted.push_back(pattern.pattern.text() +
                        (pattern.pattern.text().back() == '/' ? "*" : ""));
    }
    return absl::StrCat(
        "proxy: upstream methods unknown; coalescing, on trust that they are "
        "unary, the methods of [",
        absl::StrJoin(trusted, ", "), "]");
  }
  return absl::StrCat("proxy: ", methods_->size(),
                      " upstream methods known from ", methods_source_,
                      "; coalescing [", absl::StrJoin(coalesced, ", "), "]");
}

const ProxyService::Pattern* ProxyService::CoalescingPattern(
    absl::string_view method) const {
  for (const Pattern& pattern : patterns_) {
    if (!pattern.pattern.Matches(method)) continue;
    if (!methods_.has_value()) return &pattern;
    MethodKind kind;
    // Unknown to the descriptors, or streaming: one to one.
    if (!methods_->Find(method, kind) || kind != MethodKind::kUnary) {
      return nullptr;
    }
    return &pattern;
  }
  return nullptr;
}

std::unique_ptr<NamedFetcher> ProxyService::MakeCoalescer(
    absl::string_view method, const Pattern& pattern) {
  auto fetcher = std::make_unique<NamedFetcher>(
      std::string(method), absl::StrCat("proxy:", method), pattern.policy,
      std::make_unique<ProxyFetcher>(coalescing_upstream_.get(),
                                     std::string(method), pattern.policy));
  // The methods of a pattern share its limit.
  fetcher->limiter = pattern.limiter;
  // Methods coalesced on trust are counted under their pattern, so that
  // made-up method names cannot multiply the series.
  metrics_->AddFetcherWhileServing(
      *fetcher, methods_.has_value() ? std::string(method)
                                     : pattern.pattern.text() + "*");
  return fetcher;
}

const NamedFetcher* ProxyService::CoalescerOf(absl::string_view method) {
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = coalescers_.find(method);
    if (it != coalescers_.end()) return it->second.get();
    // Known descriptors made every coalescer at start.
    if (methods_.has_value()) return nullptr;
  }
  const Pattern* pattern = CoalescingPattern(method);
  if (pattern == nullptr || !IsMethodPath(method) ||
      method.size() > kMaxTrustedMethodLength) {
    return nullptr;
  }
  absl::MutexLock lock(&mu_);
  auto it = coalescers_.find(method);
  if (it != coalescers_.end()) return it->second.get();
  if (coalescers_.size() >= kMaxTrustedMethods) {
    if (!warned_trusted_limit_) {
      warned_trusted_limit_ = true;
      LogWarning(absl::StrCat(
          "proxy: ", kMaxTrustedMethods,
          " methods are coalesced on trust; further ones are forwarded one to "
          "one (give the proxy the upstream's descriptors)"));
    }
    return nullptr;
  }
  auto& slot = coalescers_[method];
  slot = MakeCoalescer(method, *pattern);
  return slot.get();
}

grpc::ServerGenericBidiReactor* ProxyService::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  if (access_.enabled()) {
    absl::Status allowed =
        access_.Check(context->client_metadata(), Role::kCaller);
    if (!allowed.ok()) {
      metrics_->Refused(nullptr,
                        allowed.code() == absl::StatusCode::kPermissionDenied
                            ? "permission_denied"
                            : "unauthenticated");
      return new RefusedCall(ToGrpcStatus(allowed));
    }
  }
  if (max_calls_ > 0 &&
      open_calls_.load(std::memory_order_relaxed) >= max_calls_) {
    metrics_->Refused(nullptr, "proxy_max_calls");
    return new RefusedCall(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("the proxy has ", max_calls_,
                     " calls open (proxy max_calls); try again later")));
  }
  if (const NamedFetcher* fetcher = CoalescerOf(context->method())) {
    return StartCoalescedCall(context, group_, fetcher, metrics_, &open_calls_);
  }
  MethodKind kind;
  bool known_unary = methods_.has_value() &&
                     methods_->Find(context->method(), kind) &&
                     kind == MethodKind::kUnary;
  return StartForwardedCall(context, upstream_.get(), known_unary,
                            /*strip_authorization=*/access_.enabled(),
                            &open_calls_);
}

absl::StatusOr<const NamedFetcher*> ProxyService::FindCoalesced(
    absl::string_view method) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = coalescers_.find(method);
  if (it == coalescers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no coalesced proxy method ", method));
  }
  return it->second.get();
}

bool ProxyService::Idle() const {
  if (open_calls_.load(std::memory_order_acquire) > 0) return false;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [path, fetcher] : coalescers_) {
    if (fetcher->flights.load() > 0) return false;
  }
  return true;
}

}  // namespace singleflight
