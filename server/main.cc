// singleflightd: the singleflight gRPC server.
#include <malloc.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "HOST:PORT to serve on; port 0 picks a free port");
ABSL_FLAG(std::string, fetcher, "",
          "NAME=URI of a fetcher, for example slow=echo:?delay=1s; may be "
          "given several times. The embedded echo fetcher (echo:) is always "
          "there unless a fetcher takes the name echo");
ABSL_FLAG(std::string, default_fetcher, "echo",
          "fetcher for requests that name none");
ABSL_FLAG(absl::Duration, fetch_timeout, absl::Seconds(30),
          "time limit of one fetcher execution; on expiry every waiter gets "
          "DEADLINE_EXCEEDED");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "on SIGINT/SIGTERM, how long calls in progress may take to finish");

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

int Fail(const std::string& message) {
  std::cerr << "singleflightd: " << message << std::endl;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "singleflightd serves singleflight.v1.SingleFlight: concurrent requests "
      "for the same (fetcher, key) share one fetcher execution.");
  std::vector<std::string> fetcher_flags =
      TakeRepeatedFlag("fetcher", argc, argv);
  absl::ParseCommandLine(argc, argv);

  // Measured here: Abseil's deadlock detection and glibc's eager trimming
  // cost 20-30% of the CPU per call.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);

  singleflight::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.default_fetcher = absl::GetFlag(FLAGS_default_fetcher);
  options.policy.timeout = absl::GetFlag(FLAGS_fetch_timeout);
  for (const std::string& flag : fetcher_flags) {
    size_t equals = flag.find('=');
    if (equals == std::string::npos || equals == 0) {
      return Fail("--fetcher wants NAME=URI, got \"" + flag + "\"");
    }
    options.fetchers.emplace_back(flag.substr(0, equals),
                                  flag.substr(equals + 1));
  }

  // Signals are taken by sigwait below, so block them before gRPC starts
  // threads (which inherit the mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = singleflight::SingleFlightServer::Start(options);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  const singleflight::FetcherRegistry& registry = (*server)->registry();
  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::printf("singleflightd listening on %s:%d (fetchers: %s; default: %s)\n",
              host.c_str(), (*server)->port(),
              absl::StrJoin(registry.Names(), ", ").c_str(),
              registry.default_name().c_str());
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  absl::Duration drain = absl::GetFlag(FLAGS_drain_timeout);
  std::printf("singleflightd: %s, draining for up to %s\n",
              strsignal(signal_number), absl::FormatDuration(drain).c_str());
  std::fflush(stdout);
  (*server)->Shutdown(drain);
  std::printf("singleflightd: stopped\n");
  return 0;
}
