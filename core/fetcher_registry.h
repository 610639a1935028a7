#ifndef SINGLEFLIGHT_CORE_FETCHER_REGISTRY_H_
#define SINGLEFLIGHT_CORE_FETCHER_REGISTRY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/fetcher.h"
#include "core/fetcher_uri.h"
#include "core/timer_queue.h"

namespace singleflight {

// Checks `policy` (positive timeout, limits not negative, forward_metadata
// within key_metadata) and puts its metadata and header names in lower case.
// INVALID_ARGUMENT, saying what is wrong, otherwise.
absl::Status ValidatePolicy(FetcherPolicy& policy);

// Shared facilities a fetcher may use instead of threads of its own.
struct FetcherEnvironment {
  TimerQueue* timers = nullptr;
};

// Builds a fetcher from its URI and policy (headers, size limit, timeout);
// fails with INVALID_ARGUMENT on a bad URI, or another code (for example
// FAILED_PRECONDITION for a plugin that cannot be loaded) with a clear message.
using FetcherFactory = std::function<absl::StatusOr<std::unique_ptr<Fetcher>>(
    const FetcherUri&, const FetcherPolicy&, const FetcherEnvironment&)>;

// The fetchers a server offers, by name, built from URIs whose scheme selects
// the factory. The registry knows no scheme by itself: RegisterScheme adds
// them. The server's are registered by RegisterBuiltinSchemes
// (fetchers/builtin_fetchers.h): `echo:`, `http:`/`https:`, `grpc:`/`grpcs:`
// and `plugin:`.
//
// Thread-compatible: configure it (RegisterScheme, Add, SetDefault) before
// serving; after that, the const methods may be called from any thread.
class FetcherRegistry {
 public:
  explicit FetcherRegistry(FetcherEnvironment environment);
  FetcherRegistry(const FetcherRegistry&) = delete;
  FetcherRegistry& operator=(const FetcherRegistry&) = delete;

  // Makes URIs with `scheme` (lower case, without ':') buildable.
  void RegisterScheme(std::string scheme, FetcherFactory factory);

  // Builds a fetcher from `uri` and offers it as `name`. The first fetcher
  // added is the default until SetDefault says otherwise.
  // Fails with INVALID_ARGUMENT on a bad name or URI, an unknown scheme, or a
  // name already taken.
  absl::Status Add(absl::string_view name, absl::string_view uri,
                   FetcherPolicy policy = {});

  // Fails with NOT_FOUND if `name` was not added.
  absl::Status SetDefault(absl::string_view name);

  // The fetcher called `name`, or the default one for an empty name.
  // Fails with NOT_FOUND, naming the fetchers there are. The pointer stays
  // valid for the registry's lifetime.
  absl::StatusOr<const NamedFetcher*> Find(absl::string_view name) const;

  // Names of every fetcher, sorted.
  std::vector<std::string> Names() const;
  const std::string& default_name() const { return default_name_; }

 private:
  FetcherEnvironment environment_;
  absl::flat_hash_map<std::string, FetcherFactory> factories_;
  absl::flat_hash_map<std::string, std::unique_ptr<NamedFetcher>> fetchers_;
  std::string default_name_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_FETCHER_REGISTRY_H_
