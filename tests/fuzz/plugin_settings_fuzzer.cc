// Fuzzes the settings of a plugin fetcher: the input is the query of
// `plugin:EXAMPLE?QUERY`, with EXAMPLE the example plugin of this build
// (plugins/example). The query is parsed by FetcherUri::ParseSettings, and
// the settings go through PluginFetcher::Create to the plugin's create(),
// which parses prefix, delay_ms and fail; a fetcher built that way fetches
// one key (cancelled if it does not answer within a few milliseconds) and is
// destroyed.
//
// Checked: Create fails with INVALID_ARGUMENT whenever the settings do not
// parse, and never with another code; a fetcher's callback is called exactly
// once, with the prefixed reversed key, the configured failure, or (when
// cancelled) CANCELLED; no setting that reaches the plugin holds a NUL byte.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/cancellation.h"
#include "core/fetcher_uri.h"
#include "fetchers/plugin_fetcher.h"
#include "tests/fetchers/fetch_outcome.h"
#include "tests/fuzz/example_plugin.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  singleflight::KeepExamplePluginLoaded();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace singleflight;  // NOLINT(build/namespaces)
  std::string query(reinterpret_cast<const char*>(bytes), size);
  absl::StatusOr<FetcherUri> uri = FetcherUri::Parse(absl::StrCat(
      "plugin:", SF_PLUGIN_DIR, "/libsf_example_plugin.so?", query));
  FuzzCheck(uri.ok() && uri->query == query, "the query is the input");
  absl::StatusOr<FetcherUri::Settings> settings = uri->ParseSettings();

  absl::StatusOr<std::unique_ptr<Fetcher>> fetcher =
      PluginFetcher::Create(*uri, FetcherPolicy(), FetcherEnvironment());
  if (!fetcher.ok()) {
    FuzzCheck(fetcher.status().code() == absl::StatusCode::kInvalidArgument,
              "Create fails with INVALID_ARGUMENT on bad settings");
    return 0;
  }
  FuzzCheck(settings.ok(), "Create succeeds only on settings that parse");

  FetchRequest request;
  request.key = "key";
  request.cancellation = std::make_shared<CancellationSignal>();
  std::shared_ptr<CancellationSignal> cancellation = request.cancellation;
  auto outcome = std::make_shared<FetchOutcome>();
  (*fetcher)->Fetch(std::move(request), outcome->Callback());
  outcome->Wait(absl::Milliseconds(5)).IgnoreError();
  bool cancelled = false;
  if (outcome->calls() == 0) {
    cancellation->Cancel();
    cancelled = true;
  }
  absl::StatusOr<std::string> result = outcome->Wait(absl::Seconds(5));
  // Settings reach the plugin as C strings: none may hold a NUL.
  std::string prefix;
  std::string fail;
  for (const auto& [name, value] : *settings) {
    FuzzCheck(name.find('\0') == std::string::npos &&
                  value.find('\0') == std::string::npos,
              "no setting that reaches a plugin holds a NUL");
    if (name == "prefix") prefix = value;
    if (name == "fail") fail = value;
  }
  if (cancelled && result.status().code() == absl::StatusCode::kCancelled) {
    // Answered by the cancellation (or the plugin saw it first).
  } else if (!fail.empty()) {
    FuzzCheck(!result.ok() &&
                  static_cast<int>(result.status().code()) == std::stoi(fail),
              "fail=CODE fails with CODE");
  } else {
    FuzzCheck(result.ok() && *result == prefix + "yek",
              "the value is the prefix and the reversed key");
  }
  fetcher->reset();
  FuzzCheck(outcome->calls() == 1, "the callback is called exactly once");
  return 0;
}
