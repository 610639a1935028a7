// singleflightd: the singleflight gRPC server.
#include <malloc.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/internal/parse.h"
#include "absl/flags/internal/private_handle_accessor.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/build_info.h"
#include "server/config.h"
#include "server/logging.h"
#include "server/server.h"

ABSL_FLAG(std::string, config, "",
          "YAML config file (docs/CONFIG.md); the flags below override it");
ABSL_FLAG(std::string, check_config, "",
          "check this YAML config file (with the flags below) as start-up "
          "would, short of listening: exit 0 if it is valid, 2 with the "
          "reason (FILE:LINE) if not");
ABSL_FLAG(std::optional<std::string>, listen, std::nullopt,
          "HOST:PORT to serve on; port 0 picks a free port "
          "(default 127.0.0.1:50051)");
ABSL_FLAG(std::string, fetcher, "",
          "NAME=URI of a fetcher, for example slow=echo:?delay=1s or "
          "web=http://origin/items/{key}; may be given several times; "
          "replaces the URI of a config file fetcher of that name. The "
          "embedded echo fetcher (echo:) is always there unless a fetcher "
          "takes the name echo");
ABSL_FLAG(std::optional<std::string>, metrics_listen, std::nullopt,
          "HOST:PORT to serve Prometheus metrics on, at /metrics (default: "
          "none); port 0 picks a free port");
ABSL_FLAG(std::optional<std::string>, default_fetcher, std::nullopt,
          "fetcher for requests that name none (default echo)");
ABSL_FLAG(std::optional<absl::Duration>, fetch_timeout, std::nullopt,
          "time limit of one execution of every fetcher (default 30s, or "
          "each fetcher's timeout in the config file); on expiry every "
          "waiter gets DEADLINE_EXCEEDED");
ABSL_FLAG(std::optional<absl::Duration>, drain_timeout, std::nullopt,
          "on SIGINT/SIGTERM, how long calls in progress may take to finish "
          "(default 10s)");

ABSL_FLAG(std::optional<std::string>, tls_cert, std::nullopt,
          "PEM certificate chain: serve TLS (with --tls_key)");
ABSL_FLAG(std::optional<std::string>, tls_key, std::nullopt,
          "PEM private key of --tls_cert");
ABSL_FLAG(std::optional<std::string>, tls_client_ca, std::nullopt,
          "PEM CA: require client certificates it signed (mutual TLS)");
ABSL_FLAG(std::optional<std::string>, caller_token_file, std::nullopt,
          "file holding the bearer token that may call Do and DoStream "
          "(default: $SINGLEFLIGHT_CALLER_TOKEN, if set)");
ABSL_FLAG(std::optional<std::string>, admin_token_file, std::nullopt,
          "file holding the bearer token that may call every RPC "
          "(default: $SINGLEFLIGHT_ADMIN_TOKEN, if set)");
ABSL_FLAG(std::optional<int>, max_message_bytes, std::nullopt,
          "largest request message accepted (default 4 MiB)");
ABSL_FLAG(std::optional<int>, max_concurrent_streams, std::nullopt,
          "calls at once on one client connection (default: no limit)");
ABSL_FLAG(std::optional<int>, max_stream_pending, std::nullopt,
          "items of one DoStream not yet written (waiting on a flight or on "
          "the client); at the limit the stream stops reading (default 10000)");
ABSL_FLAG(std::optional<int64_t>, max_stream_buffer_bytes, std::nullopt,
          "bytes of one DoStream's unwritten replies and of its requests still "
          "waiting on a flight; over it the stream stops reading (default 16 "
          "MiB)");
ABSL_FLAG(std::optional<absl::Duration>, drain_grace, std::nullopt,
          "on SIGTERM, how long health says NOT_SERVING while calls are still "
          "served, before the drain (default 0)");
ABSL_FLAG(std::optional<int>, max_flights, std::nullopt,
          "flights in progress at once, for every fetcher (default: none)");
ABSL_FLAG(std::optional<int>, max_waiters, std::nullopt,
          "waiters on one flight, for every fetcher (default: none)");

ABSL_FLAG(std::optional<std::string>, proxy_upstream, std::nullopt,
          "HOST:PORT of a gRPC server to proxy: every method this server does "
          "not serve itself is forwarded there (docs/GRPC_PROXY.md)");
ABSL_FLAG(bool, proxy_upstream_tls, false, "speak TLS to --proxy_upstream");
ABSL_FLAG(std::optional<std::string>, proxy_ca_file, std::nullopt,
          "PEM roots that --proxy_upstream's certificate must chain to "
          "(default: the system's)");
ABSL_FLAG(std::optional<std::string>, proxy_descriptor_set, std::nullopt,
          "FileDescriptorSet of the upstream's services (protoc -o, buf build "
          "-o), to know its unary methods (default: ask its reflection)");
ABSL_FLAG(std::string, proxy_coalesce, "",
          "/package.Service/Method or /package.Service/*: identical "
          "concurrent calls of these unary methods share one upstream call; "
          "may be given several times");

ABSL_FLAG(std::string, log_level, "info",
          "trace, debug, info, warning, error or off");
ABSL_FLAG(bool, log_json, false, "log JSON lines instead of plain text");

namespace {

// absl flags keep the last of repeated flags; --fetcher accumulates, so its
// occurrences are taken out of argv before absl parses the rest.
std::vector<std::string> TakeRepeatedFlag(const char* name, int& argc,
                                          char** argv) {
  std::vector<std::string> values;
  std::string single = std::string("--") + name;
  std::string prefix = single + "=";
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      while (i < argc) argv[kept++] = argv[i++];
      break;
    }
    if (arg.rfind(prefix, 0) == 0) {
      values.push_back(arg.substr(prefix.size()));
    } else if (arg == single && i + 1 < argc) {
      values.push_back(argv[++i]);
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return values;
}

// Whether flag `name` was given (Abseil 20220623 keeps this internal).
bool SpecifiedOnCommandLine(absl::string_view name) {
  return absl::flags_internal::PrivateHandleAccessor::IsSpecifiedOnCommandLine(
      *absl::FindCommandLineFlag(name));
}

// The flags given, as overrides of the config file.
singleflight::ConfigOverrides OverridesFromFlags(
    std::vector<std::string> fetcher_flags,
    std::vector<std::string> coalesce_flags) {
  singleflight::ConfigOverrides overrides;
  overrides.listen = absl::GetFlag(FLAGS_listen);
  overrides.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  overrides.default_fetcher = absl::GetFlag(FLAGS_default_fetcher);
  overrides.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  overrides.drain_grace = absl::GetFlag(FLAGS_drain_grace);
  overrides.fetchers = std::move(fetcher_flags);
  overrides.proxy_upstream = absl::GetFlag(FLAGS_proxy_upstream);
  if (SpecifiedOnCommandLine("proxy_upstream_tls")) {
    overrides.proxy_upstream_tls = absl::GetFlag(FLAGS_proxy_upstream_tls);
  }
  overrides.proxy_ca_file = absl::GetFlag(FLAGS_proxy_ca_file);
  overrides.proxy_descriptor_set = absl::GetFlag(FLAGS_proxy_descriptor_set);
  overrides.proxy_coalesce = std::move(coalesce_flags);
  overrides.fetch_timeout = absl::GetFlag(FLAGS_fetch_timeout);
  overrides.max_flights = absl::GetFlag(FLAGS_max_flights);
  overrides.max_waiters = absl::GetFlag(FLAGS_max_waiters);
  overrides.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  overrides.tls_key = absl::GetFlag(FLAGS_tls_key);
  overrides.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  overrides.caller_token_file = absl::GetFlag(FLAGS_caller_token_file);
  overrides.admin_token_file = absl::GetFlag(FLAGS_admin_token_file);
  // Plain flags (--log_json takes no value): they override the config file
  // only when given.
  if (SpecifiedOnCommandLine("log_level")) {
    overrides.log_level = absl::GetFlag(FLAGS_log_level);
  }
  if (SpecifiedOnCommandLine("log_json")) {
    overrides.log_json = absl::GetFlag(FLAGS_log_json);
  }
  overrides.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  overrides.max_concurrent_streams =
      absl::GetFlag(FLAGS_max_concurrent_streams);
  overrides.max_stream_pending = absl::GetFlag(FLAGS_max_stream_pending);
  overrides.max_stream_buffer_bytes =
      absl::GetFlag(FLAGS_max_stream_buffer_bytes);
  return overrides;
}

int Fail(const std::string& message) {
  singleflight::PrintFatalError(message);
  return 2;
}

// Says where the server listens, on stdout (scripts read the first line).
void PrintListening(const singleflight::ServerConfig& config,
                    const singleflight::SingleFlightServer& server) {
  const singleflight::FetcherRegistry& registry = server.registry();
  std::string host = config.listen.substr(0, config.listen.rfind(':'));
  std::printf("singleflightd listening on %s:%d (fetchers: %s; default: %s)\n",
              host.c_str(), server.port(),
              absl::StrJoin(registry.Names(), ", ").c_str(),
              registry.default_name().c_str());
  if (!config.proxy.upstream.empty()) {
    std::printf("singleflightd proxying other methods to %s\n",
                config.proxy.upstream.c_str());
  }
  if (server.metrics_port() != 0) {
    std::string metrics_host =
        config.metrics_listen.substr(0, config.metrics_listen.rfind(':'));
    std::printf("singleflightd metrics on http://%s:%d/metrics\n",
                metrics_host.c_str(), server.metrics_port());
  }
  std::fflush(stdout);
}

// Waits for SIGINT or SIGTERM (blocked in `signals`), reloading the token
// files on each SIGHUP meanwhile; then reports NOT_SERVING for the drain
// grace (a second signal cuts it short), and drains.
void AwaitSignalAndDrain(const singleflight::ServerConfig& config,
                         singleflight::SingleFlightServer& server,
                         const sigset_t& signals) {
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    absl::Status reloaded = server.ReloadTokens();
    if (reloaded.ok()) {
      singleflight::LogInfo("SIGHUP: token files reloaded");
    } else {
      singleflight::LogWarning(
          absl::StrCat("SIGHUP: tokens not reloaded, the old ones stay: ",
                       reloaded.message()));
    }
  }
  if (config.drain_grace > absl::ZeroDuration()) {
    // Load balancers see NOT_SERVING and move away while calls are still
    // served.
    singleflight::LogInfo(absl::StrCat(
        strsignal(signal_number), ": reporting NOT_SERVING for ",
        absl::FormatDuration(config.drain_grace), " before draining"));
    server.ReportNotServing();
    timespec grace = absl::ToTimespec(config.drain_grace);
    sigset_t stop = signals;  // A SIGHUP now does not cut the grace short.
    sigdelset(&stop, SIGHUP);
    if (sigtimedwait(&stop, nullptr, &grace) > 0) {
      singleflight::LogInfo("second signal: draining now");
    }
  }
  singleflight::LogInfo(
      absl::StrCat(strsignal(signal_number), ": draining for up to ",
                   absl::FormatDuration(config.drain_timeout)));
  server.Shutdown(config.drain_timeout);
}

}  // namespace

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "server/main.cc");
  };
  usage.version_string = [] {
    return absl::StrCat("singleflightd ", singleflight::BuildVersion(),
                        " (commit ", singleflight::BuildCommit(), ")\n");
  };
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "singleflightd serves singleflight.v1.SingleFlight: concurrent requests "
      "for the same (fetcher, key) share one fetcher execution.");
  std::vector<std::string> fetcher_flags =
      TakeRepeatedFlag("fetcher", argc, argv);
  std::vector<std::string> coalesce_flags =
      TakeRepeatedFlag("proxy_coalesce", argc, argv);
  // As absl::ParseCommandLine, except that help asked for is a success:
  // Abseil exits 1 after --help.
  absl::flags_internal::ParseCommandLineImpl(
      argc, argv, absl::flags_internal::ArgvListAction::kRemoveParsedArgs,
      absl::flags_internal::UsageFlagsAction::kIgnoreUsage,
      absl::flags_internal::OnUndefinedFlag::kAbortIfUndefined);
  int usage_exit = absl::flags_internal::HandleUsageFlags(
      std::cout, absl::ProgramUsageMessage());
  if (usage_exit != -1) return usage_exit == 1 ? 0 : usage_exit;

  // From the flags first, so that errors in the config file are logged as
  // asked; again below, once the file has had its say.
  absl::Status early_logging = singleflight::SetUpLogging(
      absl::GetFlag(FLAGS_log_level), absl::GetFlag(FLAGS_log_json));
  if (!early_logging.ok()) return Fail(std::string(early_logging.message()));

  // Measured here: Abseil's deadlock detection and glibc's eager trimming
  // cost 20-30% of the CPU per call.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);

  const std::string checked = absl::GetFlag(FLAGS_check_config);
  const std::string file =
      checked.empty() ? absl::GetFlag(FLAGS_config) : checked;
  singleflight::ServerConfig config;
  if (!file.empty()) {
    auto loaded = singleflight::LoadConfigFile(file);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    config = *std::move(loaded);
  }
  absl::Status applied = ApplyOverrides(
      OverridesFromFlags(std::move(fetcher_flags), std::move(coalesce_flags)),
      config);
  if (!applied.ok()) return Fail(std::string(applied.message()));
  absl::Status logging =
      singleflight::SetUpLogging(config.log_level, config.log_json);
  if (!logging.ok()) return Fail(std::string(logging.message()));
  if (!checked.empty()) {
    absl::Status valid = singleflight::SingleFlightServer::Check(config);
    if (!valid.ok()) return Fail(std::string(valid.message()));
    std::printf("%s: valid\n", checked.c_str());
    return 0;
  }

  // Signals are taken by sigwait below, so block them before gRPC starts
  // threads (which inherit the mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  singleflight::LogInfo("starting: " + singleflight::DescribeConfig(config));
  auto server = singleflight::SingleFlightServer::Start(config);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  PrintListening(config, **server);
  AwaitSignalAndDrain(config, **server, signals);
  singleflight::LogInfo("stopped");
  return 0;
}
