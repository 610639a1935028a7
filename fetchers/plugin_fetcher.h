#ifndef SINGLEFLIGHT_FETCHERS_PLUGIN_FETCHER_H_
#define SINGLEFLIGHT_FETCHERS_PLUGIN_FETCHER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/fetcher.h"
#include "core/fetcher_registry.h"

namespace singleflight {

// A fetcher implemented by a shared library written against the C ABI of
// include/singleflight/fetcher_plugin.h. URI
// `plugin:/abs/path/libfoo.so?name=value&...`: the library is loaded when the
// fetcher is built, and the settings are passed to the plugin's create().
// A value larger than the policy's max_value_bytes fails its flight with
// RESOURCE_EXHAUSTED. When a flight is cancelled, its callback gets CANCELLED
// at once and the plugin is asked to stop; what it delivers later is
// ignored.
//
// Thread-safe.
class PluginFetcher : public Fetcher {
 public:
  // The FetcherFactory for the `plugin` scheme. Fails with INVALID_ARGUMENT
  // on a path that is not absolute or settings the plugin refuses, and with
  // FAILED_PRECONDITION on a library that cannot be loaded, lacks the entry
  // point, or speaks another ABI version; the message names the path and the
  // reason.
  static absl::StatusOr<std::unique_ptr<Fetcher>> Create(
      const FetcherUri& uri, const FetcherPolicy& policy,
      const FetcherEnvironment& environment);

  // Destroys the plugin instance, which completes the fetches in progress,
  // and unloads the library. REQUIRES: not called from a fetch's callback.
  ~PluginFetcher() override;
  PluginFetcher(const PluginFetcher&) = delete;
  PluginFetcher& operator=(const PluginFetcher&) = delete;

  void Fetch(FetchRequest request, FetchCallback done) override;

 private:
  class Instance;
  class Completion;

  PluginFetcher(std::shared_ptr<Instance> instance, size_t max_value_bytes);

  // Shared with the cancellation callbacks, which may outlive the fetcher.
  const std::shared_ptr<Instance> instance_;
  const size_t max_value_bytes_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_FETCHERS_PLUGIN_FETCHER_H_
