#ifndef SINGLEFLIGHT_CORE_FETCHER_H_
#define SINGLEFLIGHT_CORE_FETCHER_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/cancellation.h"
#include "core/concurrency_limiter.h"
#include "core/flight_result.h"
#include "core/result_cache.h"

namespace singleflight {

// Name/value pairs: gRPC metadata or HTTP headers. Names are lower case.
using Metadata = std::vector<std::pair<std::string, std::string>>;

// What one execution of a fetcher is given.
struct FetchRequest {
  std::string key;
  // The payload of the caller that started the flight.
  std::string payload;
  // The caller metadata named by the policy's forward_metadata, as the caller
  // that started the flight sent it: the fetcher passes it to the backend
  // (as HTTP headers, gRPC metadata, ...).
  Metadata metadata;
  // Raised when nobody wants the result any more (the last waiter left, the
  // execution timed out, or the server is stopping: Group::FailAll). Never
  // null.
  std::shared_ptr<CancellationSignal> cancellation;
  // Where a fetcher that knows how long its value stays good (HTTP's
  // Cache-Control) says so, before it calls `done`; null when the fetcher's
  // cache policy does not respect such directives.
  std::optional<CacheDirectives>* directives = nullptr;
};

// Receives the result of one execution. May be called from any thread.
using FetchCallback = absl::AnyInvocable<void(absl::StatusOr<std::string>)>;

// A backend that produces the value for a key: the expensive call the tier
// exists to run once.
//
// Fetch() must not block: it starts the work and returns, and the result is
// delivered later through `done`, from any thread (or at once, from inside
// Fetch, if it is already known). Blocking work belongs on a bounded pool; see
// BlockingFetcher.
//
// Implementations must be thread-safe: Fetch() is called concurrently for
// different flights.
class Fetcher {
 public:
  virtual ~Fetcher() = default;

  // Starts one execution for `request`.
  // `done` must be called exactly once, unless the cancellation signal is
  // raised first, in which case the fetcher may drop it without calling it.
  // A C++ exception thrown from Fetch() fails the flight with INTERNAL.
  virtual void Fetch(FetchRequest request, FetchCallback done) = 0;
};

// How a fetcher is run, and what it adds to every backend request.
// TLS to a backend (https:, grpcs:), from PEM files. Empty fields take the
// defaults: the system's trusted roots, no client certificate, and the
// certificate checked against the URI's host.
struct BackendTls {
  std::string ca_file;    // Roots the backend's certificate must chain to.
  std::string cert_file;  // A client certificate chain (with key_file).
  std::string key_file;
  // The name the backend's certificate is checked against (and that is
  // sent as SNI and Host), when it is not the URI's host.
  std::string server_name;

  bool empty() const {
    return ca_file.empty() && cert_file.empty() && key_file.empty() &&
           server_name.empty();
  }
};

// Checks that `tls` can be used: a certificate and its key go together, and
// every file named can be read. INVALID_ARGUMENT or NOT_FOUND otherwise.
absl::Status CheckBackendTls(const BackendTls& tls);

struct FetcherPolicy {
  // One execution is failed with DEADLINE_EXCEEDED, and cancelled, after this.
  absl::Duration timeout = absl::Seconds(30);
  // Executions of this fetcher at once; 0 for no limit. Further flights wait
  // (still coalescing) in a queue of at most `max_queue`; beyond that, new
  // flights fail with RESOURCE_EXHAUSTED.
  int max_concurrency = 0;
  int max_queue = 1000;
  // Limits against abuse, 0 for none: flights of this fetcher in progress at
  // once, and waiters on one flight. Beyond them, RESOURCE_EXHAUSTED.
  int max_flights = 0;
  int max_waiters = 0;
  // Keep a finished value this long, so that callers arriving just after
  // completion share it without a new execution. Errors are kept only with
  // `linger_errors`.
  absl::Duration linger = absl::ZeroDuration();
  bool linger_errors = false;
  // Request metadata whose values become part of the flight's identity.
  std::vector<std::string> key_metadata;
  // Request metadata passed on to the backend (FetchRequest::metadata).
  // REQUIRES: each is also in key_metadata.
  std::vector<std::string> forward_metadata;
  // Static headers (or gRPC metadata) added to every backend request.
  Metadata headers;
  // A larger value fails its flight with RESOURCE_EXHAUSTED.
  size_t max_value_bytes = size_t{64} << 20;
  // TLS to the backend, for the fetchers that speak it (https:, grpcs:).
  BackendTls tls;
  // Freshness: keep values (and chosen errors) beyond their flight. Off by
  // default: then a finished flight is gone, as in Go.
  CachePolicy cache;
};

// A fetcher under the name callers select it by, with its policy.
// Flights are keyed by (name, scope, key).
struct NamedFetcher {
  NamedFetcher(std::string name, std::string uri, FetcherPolicy policy,
               std::unique_ptr<Fetcher> fetcher)
      : name(std::move(name)),
        uri(std::move(uri)),
        policy(std::move(policy)),
        fetcher(std::move(fetcher)) {
    if (this->policy.max_concurrency > 0) {
      limiter = std::make_shared<ConcurrencyLimiter>(
          this->policy.max_concurrency, this->policy.max_queue);
    }
    if (this->policy.cache.enabled()) {
      cache = std::make_shared<ResultCache>(this->policy.cache);
    }
  }

  const std::string name;
  const std::string uri;
  const FetcherPolicy policy;
  const std::unique_ptr<Fetcher> fetcher;
  // Enforces policy.max_concurrency; null when there is no limit. Shared, so
  // that a flight can hand its slot on after its waiters are told (when the
  // fetcher itself may already be gone).
  std::shared_ptr<ConcurrencyLimiter> limiter;
  // Flights of this fetcher in progress, for policy.max_flights.
  mutable std::atomic<int> flights{0};
  // Its values beyond their flights (policy.cache); null when off. Shared,
  // so that a refresh's waiter can outlive the fetcher.
  std::shared_ptr<ResultCache> cache;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_FETCHER_H_
