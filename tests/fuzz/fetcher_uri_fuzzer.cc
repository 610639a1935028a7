// Fuzzes fetcher URIs: FetcherUri::Parse and ParseSettings, then
// FetcherRegistry::Add with every built-in scheme (echo, http, https, grpc,
// grpcs, plugin) and a fuzzed policy.
//
// Input: the whole input is parsed as a URI; then, taken as a first line
// with the fetcher's name, a second with its URI, and, if there is more, the
// bytes of a few policy fields (read by FuzzedDataProvider), it is added. Every
// registry and fetcher is destroyed before the next input, which stops the
// threads an http fetcher starts. So that the fuzzer never dlopen()s a library
// it named, an absolute plugin path always stands for the example plugin of
// this build.
//
// Checked: parsing never crashes; a parsed URI puts back together into its
// text; settings parse only from name=value pairs without NUL bytes; Add fails
// only with INVALID_ARGUMENT or FAILED_PRECONDITION, and fails whenever the URI
// does not parse; an added fetcher is found under its name, with its URI, and
// the name cannot be added twice.
#include <dlfcn.h>
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/fetcher_registry.h"
#include "core/fetcher_uri.h"
#include "core/timer_queue.h"
#include "fetchers/builtin_fetchers.h"
#include "fetchers/plugin_fetcher.h"
#include "tests/fuzz/example_plugin.h"
#include "tests/fuzz/fuzz_check.h"

namespace singleflight {
namespace {

constexpr char kExamplePlugin[] = SF_PLUGIN_DIR "/libsf_example_plugin.so";

void CheckParse(const std::string& text) {
  absl::StatusOr<FetcherUri> uri = FetcherUri::Parse(text);
  if (!uri.ok()) {
    FuzzCheck(uri.status().code() == absl::StatusCode::kInvalidArgument,
              "Parse fails with INVALID_ARGUMENT only");
    return;
  }
  FuzzCheck(uri->text == text, "text is the input");
  FuzzCheck(!uri->scheme.empty(), "a parsed URI has a scheme");
  FuzzCheck(uri->scheme == absl::AsciiStrToLower(uri->scheme),
            "scheme is lower case");
  FuzzCheck(uri->target.find('?') == std::string::npos, "target has no '?'");
  std::string rebuilt = absl::StrCat(uri->scheme, ":", uri->target);
  if (text.find('?') != std::string::npos)
    absl::StrAppend(&rebuilt, "?", uri->query);
  FuzzCheck(absl::AsciiStrToLower(rebuilt) == absl::AsciiStrToLower(text),
            "scheme:target?query is the text");

  absl::StatusOr<FetcherUri::Settings> settings = uri->ParseSettings();
  if (!settings.ok()) {
    FuzzCheck(settings.status().code() == absl::StatusCode::kInvalidArgument,
              "ParseSettings fails with INVALID_ARGUMENT only");
    return;
  }
  for (const auto& [name, value] : *settings) {
    FuzzCheck(!name.empty(), "setting names are not empty");
    FuzzCheck(name.find('\0') == std::string::npos &&
                  value.find('\0') == std::string::npos,
              "settings hold no NUL");
    FuzzCheck(name.find('&') == std::string::npos &&
                  name.find('=') == std::string::npos &&
                  value.find('&') == std::string::npos,
              "settings split at '&' and the first '='");
  }
}

FetcherPolicy ConsumePolicy(FuzzedDataProvider& data) {
  FetcherPolicy policy;
  policy.timeout = absl::Milliseconds(data.ConsumeIntegralInRange(-1, 60000));
  policy.max_concurrency = data.ConsumeIntegralInRange(-1, 4);
  policy.max_queue = data.ConsumeIntegralInRange(-1, 4);
  policy.linger = absl::Milliseconds(data.ConsumeIntegralInRange(-1, 1000));
  policy.max_value_bytes = data.ConsumeIntegralInRange<size_t>(0, 1 << 20);
  if (data.ConsumeBool()) {
    policy.headers.emplace_back(data.ConsumeRandomLengthString(32),
                                data.ConsumeRandomLengthString(32));
  }
  if (data.ConsumeBool()) {
    std::string name = data.ConsumeRandomLengthString(16);
    policy.key_metadata.push_back(name);
    if (data.ConsumeBool()) policy.forward_metadata.push_back(name);
    if (data.ConsumeBool()) {
      policy.forward_metadata.push_back(data.ConsumeRandomLengthString(16));
    }
  }
  return policy;
}

}  // namespace
}  // namespace singleflight

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  singleflight::KeepExamplePluginLoaded();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace singleflight;  // NOLINT(build/namespaces)
  static TimerQueue* const timers = new TimerQueue();

  // NAME '\n' URI ['\n' POLICY]: without POLICY bytes, the default policy.
  std::string input(reinterpret_cast<const char*>(bytes), size);
  CheckParse(input);
  size_t name_end = std::min(input.find('\n'), input.size());
  size_t uri_end = std::min(input.find('\n', name_end + 1), input.size());
  std::string name = input.substr(0, name_end);
  std::string text = input.substr(std::min(name_end + 1, input.size()),
                                  uri_end - std::min(name_end + 1, uri_end));
  FetcherPolicy policy;
  if (uri_end < input.size()) {
    FuzzedDataProvider data(bytes + uri_end + 1, size - uri_end - 1);
    policy = ConsumePolicy(data);
  }
  CheckParse(text);

  FetcherRegistry registry(FetcherEnvironment{timers});
  RegisterBuiltinSchemes(registry);
  registry.RegisterScheme(
      "plugin", [](const FetcherUri& uri, const FetcherPolicy& policy,
                   const FetcherEnvironment& environment) {
        FetcherUri safe = uri;
        if (!safe.target.empty() && safe.target[0] == '/') {
          safe.target = kExamplePlugin;
        }
        return PluginFetcher::Create(safe, policy, environment);
      });
  absl::Status added = registry.Add(name, text, policy);
  if (!added.ok()) {
    FuzzCheck(added.code() == absl::StatusCode::kInvalidArgument ||
                  added.code() == absl::StatusCode::kFailedPrecondition,
              "Add fails with INVALID_ARGUMENT or FAILED_PRECONDITION");
    return 0;
  }
  FuzzCheck(FetcherUri::Parse(text).ok(), "Add succeeds only on a parsed URI");
  absl::StatusOr<const NamedFetcher*> found = registry.Find(name);
  FuzzCheck(found.ok() && (*found)->name == name && (*found)->uri == text,
            "an added fetcher is found under its name, with its URI");
  FuzzCheck(
      registry.Add(name, "echo:").code() == absl::StatusCode::kInvalidArgument,
      "a name cannot be added twice");
  return 0;
}
