// many_waiters: holds N concurrent Do calls on one key of a running
// singleflightd and reports what waiting costs the server (RSS and threads,
// read from /proc) and how long the fan-out to every waiter takes.
//
//   many_waiters --target=127.0.0.1:50051 --server_pid=PID --waiters=10000
//       --fetcher=slow
// where `slow` is a fetcher with a delay longer than the ramp-up.
#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "singleflight/v1/singleflight.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "singleflightd address");
ABSL_FLAG(int, server_pid, 0, "pid of singleflightd, to read its RSS/threads");
ABSL_FLAG(int, waiters, 10000, "concurrent Do calls to hold on one key");
ABSL_FLAG(int, channels, 8, "client channels (connections) to spread them on");
ABSL_FLAG(std::string, fetcher, "slow", "a fetcher with a delay");
ABSL_FLAG(std::string, key, "many-waiters", "the key");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(120), "deadline per call");

namespace {

using singleflight::v1::DoRequest;
using singleflight::v1::DoResponse;
using singleflight::v1::SingleFlight;

// /proc/PID/status fields, in kB (VmRSS) or a count (Threads); -1 if absent.
long ProcStatus(int pid, const std::string& field) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::stol(line.substr(field.size() + 1));
    }
  }
  return -1;
}

struct Call {
  grpc::ClientContext context;
  DoRequest request;
  DoResponse response;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Holds N concurrent Do calls on one key and reports the server's cost.");
  absl::ParseCommandLine(argc, argv);
  const int waiters = absl::GetFlag(FLAGS_waiters);
  const int pid = absl::GetFlag(FLAGS_server_pid);

  std::vector<std::unique_ptr<SingleFlight::Stub>> stubs;
  for (int i = 0; i < absl::GetFlag(FLAGS_channels); ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // One connection each.
    stubs.push_back(SingleFlight::NewStub(
        grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target),
                                  grpc::InsecureChannelCredentials(), args)));
  }
  long idle_rss = pid ? ProcStatus(pid, "VmRSS") : -1;
  long idle_threads = pid ? ProcStatus(pid, "Threads") : -1;

  absl::Mutex mu;
  int done = 0, ok = 0;
  absl::Time first_reply = absl::InfiniteFuture(), last_reply;
  std::vector<Call> calls(waiters);
  absl::Time start = absl::Now();
  for (int i = 0; i < waiters; ++i) {
    Call& call = calls[i];
    call.context.set_deadline(
        std::chrono::system_clock::now() +
        absl::ToChronoSeconds(absl::GetFlag(FLAGS_timeout)));
    call.request.set_key(absl::GetFlag(FLAGS_key));
    call.request.set_fetcher(absl::GetFlag(FLAGS_fetcher));
    stubs[i % stubs.size()]->async()->Do(
        &call.context, &call.request, &call.response, [&](grpc::Status status) {
          absl::MutexLock lock(&mu);
          absl::Time now = absl::Now();
          if (first_reply == absl::InfiniteFuture()) first_reply = now;
          last_reply = now;
          ++done;
          if (status.ok() && call.response.shared()) ++ok;
        });
  }

  // Read the server while every call waits: InFlight says when all are in.
  auto admin = SingleFlight::NewStub(grpc::CreateChannel(
      absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials()));
  long held_rss = -1, held_threads = -1;
  uint32_t seen = 0;
  absl::Time ramp_deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < ramp_deadline) {
    grpc::ClientContext context;
    singleflight::v1::InFlightResponse flights;
    if (admin->InFlight(&context, {}, &flights).ok()) {
      seen = 0;
      for (const auto& flight : flights.flights()) {
        if (flight.key() == absl::GetFlag(FLAGS_key)) seen = flight.waiters();
      }
      if (seen >= static_cast<uint32_t>(waiters)) break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  absl::Duration ramp = absl::Now() - start;
  if (pid) {
    held_rss = ProcStatus(pid, "VmRSS");
    held_threads = ProcStatus(pid, "Threads");
  }

  auto all_done = [&]() { return done == waiters; };
  // Each call ends by its deadline; should one not, cancelling it ends it,
  // and no callback may outlive `calls`.
  bool ended;
  {
    absl::MutexLock lock(&mu);
    ended =
        mu.AwaitWithTimeout(absl::Condition(&all_done),
                            absl::GetFlag(FLAGS_timeout) + absl::Seconds(30));
  }
  if (!ended) {
    for (Call& call : calls) call.context.TryCancel();
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&all_done));
  std::printf(
      "waiters=%d seen_waiting=%u ramp=%s replies=%d ok_shared=%d "
      "fanout(first->last reply)=%s\n",
      waiters, seen, absl::FormatDuration(ramp).c_str(), done, ok,
      absl::FormatDuration(last_reply - first_reply).c_str());
  if (pid) {
    std::printf(
        "server: idle rss=%ld kB threads=%ld; holding rss=%ld kB threads=%ld; "
        "%.1f kB per waiter\n",
        idle_rss, idle_threads, held_rss, held_threads,
        waiters ? double(held_rss - idle_rss) / waiters : 0.0);
  }
  return done == waiters && ok == waiters ? 0 : 1;
}
