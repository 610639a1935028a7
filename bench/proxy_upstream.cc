// proxy_upstream: the upstream of the proxy benchmarks
// (scripts/grpc_proxy_bench.py). A gRPC server on the generic callback API
// (no protos) that answers every unary call by echoing its request message:
//
//   any method          echoed at once;
//   a method whose name ends in "Slow" (e.g. /bench.Upstream/EchoSlow)
//                       echoed after --slow_ms, from a timer (no gRPC thread
//                       sleeps);
//   /bench.Upstream/Count
//                       answers the decimal number of calls received so far
//                       (every method but Count itself) as its message bytes,
//                       at once; its request message is ignored;
//   /grpc.*             UNIMPLEMENTED (no reflection, no health service), as
//                       a server without them answers; not counted.
//
// On SIGINT or SIGTERM it prints the calls received per method on stdout
// ("calls METHOD N", then "calls total N") and exits.
//
//   proxy_upstream --port=0 --slow_ms=20
//   -> proxy_upstream listening on 127.0.0.1:PORT
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/timer_queue.h"

ABSL_FLAG(int, port, 0, "port to serve on, on 127.0.0.1; 0 picks a free port");
ABSL_FLAG(int, slow_ms, 20,
          "milliseconds before a method whose name ends in Slow answers");

namespace {

constexpr char kCountMethod[] = "/bench.Upstream/Count";

// Calls received, per method. Thread-safe.
class CallCounts {
 public:
  void Add(const std::string& method) {
    total_.fetch_add(1, std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    ++per_method_[method];
  }

  int64_t Total() const { return total_.load(std::memory_order_relaxed); }

  // "calls METHOD N" lines, sorted by method, then "calls total N".
  std::string Report() const {
    std::vector<std::pair<std::string, int64_t>> sorted;
    {
      absl::MutexLock lock(&mu_);
      sorted.assign(per_method_.begin(), per_method_.end());
    }
    std::sort(sorted.begin(), sorted.end());
    std::string report;
    for (const auto& [method, count] : sorted) {
      absl::StrAppend(&report, "calls ", method, " ", count, "\n");
    }
    absl::StrAppend(&report, "calls total ", Total(), "\n");
    return report;
  }

 private:
  std::atomic<int64_t> total_{0};
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int64_t> per_method_ ABSL_GUARDED_BY(mu_);
};

// One unary call: reads the request message, then answers it (at once, or
// from the timer thread for a Slow method). Deletes itself in OnDone.
class EchoCall : public grpc::ServerGenericBidiReactor {
 public:
  EchoCall(const std::string& method, CallCounts* counts,
           singleflight::TimerQueue* timers, absl::Duration slow)
      : method_(method), counts_(counts), timers_(timers), slow_(slow) {
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "no request message"));
      return;
    }
    if (absl::StartsWith(method_, "/grpc.")) {
      Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no such method"));
      return;
    }
    if (method_ == kCountMethod) {
      std::string count = absl::StrCat(counts_->Total());
      grpc::Slice slice(count);
      message_ = grpc::ByteBuffer(&slice, 1);
      StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
      return;
    }
    counts_->Add(method_);
    if (absl::EndsWith(method_, "Slow")) {
      // The reactor lives until Finish: the timer may use it.
      timers_->Schedule(slow_, [this] { Answer(); });
      return;
    }
    Answer();
  }

  void OnDone() override { delete this; }

 private:
  void Answer() {
    StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
  }

  const std::string& method_;  // The server context's, alive until OnDone.
  CallCounts* const counts_;
  singleflight::TimerQueue* const timers_;
  const absl::Duration slow_;
  grpc::ByteBuffer message_;
};

class UpstreamService : public grpc::CallbackGenericService {
 public:
  UpstreamService(CallCounts* counts, singleflight::TimerQueue* timers,
                  absl::Duration slow)
      : counts_(counts), timers_(timers), slow_(slow) {}

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    return new EchoCall(context->method(), counts_, timers_, slow_);
  }

 private:
  CallCounts* const counts_;
  singleflight::TimerQueue* const timers_;
  const absl::Duration slow_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "proxy_upstream echoes every unary gRPC call (generic API, no protos); "
      "methods ending in Slow answer after --slow_ms; /bench.Upstream/Count "
      "answers the number of calls received; counts per method are printed "
      "on SIGTERM.");
  absl::ParseCommandLine(argc, argv);

  // As singleflightd does (see server/main.cc), so that the upstream costs
  // alike in every benchmark.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);

  // Signals are taken by sigwait below; gRPC's threads inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CallCounts counts;
  // Declared before the server: the server's Wait below waits for the Slow
  // calls that the timers still hold.
  singleflight::TimerQueue timers;
  UpstreamService service(&counts, &timers,
                          absl::Milliseconds(absl::GetFlag(FLAGS_slow_ms)));
  grpc::ServerBuilder builder;
  // Alone on its port: no other process may share it (SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  builder.AddListeningPort(
      absl::StrCat("127.0.0.1:", absl::GetFlag(FLAGS_port)),
      grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "proxy_upstream: cannot listen on 127.0.0.1:%d\n",
                 absl::GetFlag(FLAGS_port));
    return 2;
  }
  std::printf("proxy_upstream listening on 127.0.0.1:%d\n", port);
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  std::printf("%s", counts.Report().c_str());
  std::fflush(stdout);
  return 0;
}
