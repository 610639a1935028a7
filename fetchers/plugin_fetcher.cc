#include "fetchers/plugin_fetcher.h"

#include <dlfcn.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "singleflight/fetcher_plugin.h"

namespace singleflight {
namespace {

struct LibraryCloser {
  void operator()(void* library) const { dlclose(library); }
};
// A library opened with dlopen(), closed when this goes.
using Library = std::unique_ptr<void, LibraryCloser>;

// The text of the last dlopen/dlsym failure on this thread.
std::string DlError() {
  const char* error = dlerror();
  return error == nullptr ? "unknown error" : error;
}

// What a plugin's completion means for the flight.
absl::StatusOr<std::string> ToResult(int code, absl::string_view data,
                                     size_t max_value_bytes) {
  if (code < SF_CODE_OK || code > SF_CODE_UNAUTHENTICATED) {
    return absl::UnknownError(
        absl::StrCat("plugin completed with code ", code,
                     ", which is no google.rpc code: ", data));
  }
  if (code != SF_CODE_OK) {
    return absl::Status(static_cast<absl::StatusCode>(code), data);
  }
  if (data.size() > max_value_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("plugin value of ", data.size(),
                     " bytes exceeds max_value_bytes (", max_value_bytes, ")"));
  }
  return std::string(data);
}

}  // namespace

// The sf_completion of one fetch: delivers the plugin's result, or CANCELLED
// if the flight is cancelled first, to the flight's callback, once. Keeps
// itself alive until the plugin has completed it.
//
// Thread-safe.
class PluginFetcher::Completion {
 public:
  static std::shared_ptr<Completion> Start(FetchCallback done,
                                           size_t max_value_bytes) {
    auto completion = std::shared_ptr<Completion>(
        new Completion(std::move(done), max_value_bytes));
    absl::MutexLock lock(&completion->mu_);  // Not shared yet; for the checker.
    completion->held_by_plugin_ = completion;
    return completion;
  }

  sf_completion* handle() { return reinterpret_cast<sf_completion*>(this); }

  // The plugin's sf_complete_fn.
  static void Complete(sf_completion* handle, int code, const char* data,
                       size_t size) {
    auto* completion = reinterpret_cast<Completion*>(handle);
    // Keeps the completion alive until this returns.
    std::shared_ptr<Completion> self;
    FetchCallback done;
    {
      absl::MutexLock lock(&completion->mu_);
      self = std::move(completion->held_by_plugin_);
      done = std::exchange(completion->done_, nullptr);
    }
    if (done != nullptr) {
      done(ToResult(code, absl::string_view(data, size),
                    completion->max_value_bytes_));
    }
  }

  // Fails the flight with CANCELLED unless the plugin has completed already.
  // Returns whether it had not, and so should be asked to stop.
  bool Cancel() {
    FetchCallback done;
    {
      absl::MutexLock lock(&mu_);
      if (held_by_plugin_ == nullptr) return false;
      done = std::exchange(done_, nullptr);
    }
    if (done != nullptr) done(absl::CancelledError("plugin fetch cancelled"));
    return true;
  }

 private:
  Completion(FetchCallback done, size_t max_value_bytes)
      : max_value_bytes_(max_value_bytes), done_(std::move(done)) {}

  const size_t max_value_bytes_;
  absl::Mutex mu_;
  FetchCallback done_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Completion> held_by_plugin_ ABSL_GUARDED_BY(mu_);
};

// One plugin instance and the library it lives in.
//
// Thread-safe. Fetch() must not be called after Destroy(); Cancel() may be,
// and then does nothing.
class PluginFetcher::Instance {
 public:
  Instance(Library library, const sf_plugin_v1* plugin, void* instance)
      : library_(std::move(library)), plugin_(plugin), instance_(instance) {}

  void Fetch(const FetchRequest& request, sf_completion* completion) {
    plugin_->fetch(instance_, request.key.data(), request.key.size(),
                   request.payload.data(), request.payload.size(), completion,
                   &Completion::Complete);
  }

  // Asks the plugin to stop the fetch of `completion`, unless Destroy() has
  // begun. REQUIRES: `completion` is alive.
  void Cancel(sf_completion* completion) {
    {
      absl::MutexLock lock(&mu_);
      if (destroyed_) return;
      ++cancels_running_;
    }
    plugin_->cancel(instance_, completion);
    absl::MutexLock lock(&mu_);
    --cancels_running_;
  }

  // Destroys the plugin instance, once no Cancel() is running, and unloads
  // the library.
  void Destroy() {
    {
      absl::MutexLock lock(&mu_);
      destroyed_ = true;
      mu_.Await(absl::Condition(this, &Instance::NoCancelRunning));
    }
    plugin_->destroy(instance_);
    library_.reset();
  }

 private:
  bool NoCancelRunning() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancels_running_ == 0;
  }

  Library library_;
  const sf_plugin_v1* const plugin_;
  void* const instance_;
  absl::Mutex mu_;
  bool destroyed_ ABSL_GUARDED_BY(mu_) = false;
  int cancels_running_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::StatusOr<std::unique_ptr<Fetcher>> PluginFetcher::Create(
    const FetcherUri& uri, const FetcherPolicy& policy,
    const FetcherEnvironment& environment) {
  const std::string& path = uri.target;
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("plugin URI \"", uri.text,
                     "\" wants an absolute library path, like "
                     "plugin:/usr/lib/libfoo.so?name=value"));
  }
  Library library(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (library == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load plugin ", path, ": ", DlError()));
  }
  dlerror();
  void* entry = dlsym(library.get(), SF_PLUGIN_ENTRY_SYMBOL);
  if (entry == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("plugin ", path, " has no entry point ",
                     SF_PLUGIN_ENTRY_SYMBOL, ": ", DlError()));
  }
  const sf_plugin_v1* plugin = reinterpret_cast<sf_plugin_entry_fn>(entry)();
  if (plugin == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "plugin ", path, ": ", SF_PLUGIN_ENTRY_SYMBOL, "() returned NULL"));
  }
  if (plugin->abi_version != SF_PLUGIN_ABI_VERSION) {
    return absl::FailedPreconditionError(
        absl::StrCat("plugin ", path, " has ABI version ", plugin->abi_version,
                     "; this server supports version ", SF_PLUGIN_ABI_VERSION));
  }
  if (plugin->create == nullptr || plugin->fetch == nullptr ||
      plugin->cancel == nullptr || plugin->destroy == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "plugin ", path,
        ": its sf_plugin_v1 table lacks create, fetch, cancel or destroy"));
  }

  absl::StatusOr<FetcherUri::Settings> parsed = uri.ParseSettings();
  if (!parsed.ok()) return parsed.status();
  std::vector<std::pair<std::string, std::string>> settings(parsed->begin(),
                                                            parsed->end());
  std::sort(settings.begin(), settings.end());
  std::vector<const char*> names;
  std::vector<const char*> values;
  for (const auto& [name, value] : settings) {
    names.push_back(name.c_str());
    values.push_back(value.c_str());
  }
  char error[512] = "";
  void* instance = plugin->create(names.data(), values.data(), settings.size(),
                                  error, sizeof(error));
  if (instance == nullptr) {
    error[sizeof(error) - 1] = '\0';
    return absl::InvalidArgumentError(
        absl::StrCat("plugin ", path, " refused its settings: ",
                     error[0] == '\0' ? "no reason given" : error));
  }
  return std::unique_ptr<Fetcher>(new PluginFetcher(
      std::make_shared<Instance>(std::move(library), plugin, instance),
      policy.max_value_bytes));
}

PluginFetcher::PluginFetcher(std::shared_ptr<Instance> instance,
                             size_t max_value_bytes)
    : instance_(std::move(instance)), max_value_bytes_(max_value_bytes) {}

PluginFetcher::~PluginFetcher() { instance_->Destroy(); }

void PluginFetcher::Fetch(FetchRequest request, FetchCallback done) {
  std::shared_ptr<Completion> completion =
      Completion::Start(std::move(done), max_value_bytes_);
  instance_->Fetch(request, completion->handle());
  // Registered after fetch() returned, so that the plugin never sees cancel()
  // before fetch().
  request.cancellation->OnCancel(
      [weak_completion = std::weak_ptr<Completion>(completion),
       weak_instance = std::weak_ptr<Instance>(instance_)] {
        std::shared_ptr<Completion> completion = weak_completion.lock();
        if (completion == nullptr || !completion->Cancel()) return;
        if (std::shared_ptr<Instance> instance = weak_instance.lock()) {
          instance->Cancel(completion->handle());
        }
      });
}

}  // namespace singleflight
