// bare_server: singleflight.v1.SingleFlight answered at once, with no
// coalescing (see BareService): the baseline for overhead benchmarks, with
// the same start-up tuning as singleflightd.
//
//   bare_server --listen=127.0.0.1:50061
#include <malloc.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/mutex.h"
#include "bench/bare_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50061",
          "HOST:PORT to serve on; port 0 picks a free port");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "bare_server answers singleflight.v1.SingleFlight Do and DoStream at "
      "once, without coalescing: the baseline for overhead benchmarks.");
  absl::ParseCommandLine(argc, argv);

  // As singleflightd does (see server/main.cc).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);

  // Signals are taken by sigwait below; gRPC's threads inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::string listen = absl::GetFlag(FLAGS_listen);
  singleflight::bench::BareService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "bare_server: cannot listen on %s\n", listen.c_str());
    return 2;
  }
  std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("bare_server listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  return 0;
}
