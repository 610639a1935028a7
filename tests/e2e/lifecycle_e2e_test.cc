// End-to-end tests of how calls and flights end early: deadlines,
// cancellation, fetch timeouts, and the drain on SIGTERM.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

TEST(LifecycleE2eTest, DeadlineEndsOnlyThatCaller) {
  auto server = ServerProcess::Start({"--fetcher=slow=echo:?delay=2s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  absl::StatusOr<DoResult> patient;
  std::thread patient_caller([&] { patient = client->Do("d", "slow"); });
  bool started = WaitForWaiters(*client, "d", 1);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(200));
  v1::DoResponse response;
  absl::Time start = absl::Now();
  grpc::Status hasty =
      client->stub().Do(&context, MakeRequest("d", "slow"), &response);
  absl::Duration hasty_took = absl::Now() - start;
  bool left = WaitForWaiters(*client, "d", 1);
  patient_caller.join();

  EXPECT_TRUE(started);
  EXPECT_EQ(hasty.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << hasty.error_message();
  EXPECT_LT(hasty_took, absl::Milliseconds(1500));
  EXPECT_TRUE(left) << "the flight kept the expired waiter";
  ASSERT_TRUE(patient.ok()) << patient.status();
  EXPECT_EQ(patient->value, "d");
}

TEST(LifecycleE2eTest, CancellationEndsOnlyThatCaller) {
  auto server = ServerProcess::Start({"--fetcher=slow=echo:?delay=1s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  absl::StatusOr<DoResult> patient;
  std::thread patient_caller([&] { patient = client->Do("c", "slow"); });
  bool started = WaitForWaiters(*client, "c", 1);
  grpc::ClientContext context;
  grpc::Status cancelled;
  std::thread cancelled_caller([&] {
    v1::DoResponse response;
    cancelled =
        client->stub().Do(&context, MakeRequest("c", "slow"), &response);
  });
  bool joined = WaitForWaiters(*client, "c", 2);
  context.TryCancel();
  cancelled_caller.join();
  bool left = WaitForWaiters(*client, "c", 1);
  patient_caller.join();

  EXPECT_TRUE(started);
  EXPECT_TRUE(joined);
  EXPECT_EQ(cancelled.error_code(), grpc::StatusCode::CANCELLED)
      << cancelled.error_message();
  EXPECT_TRUE(left) << "the flight kept the cancelled waiter";
  ASSERT_TRUE(patient.ok()) << patient.status();
  EXPECT_EQ(patient->value, "c");
}

TEST(LifecycleE2eTest, LastWaiterLeavingCancelsTheFlight) {
  auto server = ServerProcess::Start({"--fetcher=slow=echo:?delay=2s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(200));
  v1::DoResponse response;
  absl::Time start = absl::Now();
  grpc::Status expired =
      client->stub().Do(&context, MakeRequest("alone", "slow"), &response);
  EXPECT_EQ(expired.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << expired.error_message();
  // Well before the fetcher would have answered.
  EXPECT_TRUE(PollUntil(absl::Seconds(1),
                        [&] { return FlightsFor(*client, "alone").empty(); }));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));

  absl::StatusOr<DoResult> fresh;
  std::thread fresh_caller([&] { fresh = client->Do("alone", "slow"); });
  std::vector<v1::Flight> flights;
  bool started = PollUntil(absl::Seconds(10), [&] {
    flights = FlightsFor(*client, "alone");
    return !flights.empty();
  });
  fresh_caller.join();

  ASSERT_TRUE(started);
  ASSERT_EQ(flights.size(), 1u);
  EXPECT_EQ(flights[0].waiters(), 1u);
  EXPECT_LT(flights[0].age().seconds(), 1);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->value, "alone");
  EXPECT_FALSE(fresh->shared);
}

TEST(LifecycleE2eTest, FetchTimeoutFailsEveryWaiter) {
  auto server = ServerProcess::Start(
      {"--fetch_timeout=300ms", "--fetcher=slow=echo:?delay=5s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  absl::Notification go;
  absl::Status results[2];
  std::vector<std::thread> callers;
  for (absl::Status& result : results) {
    callers.emplace_back([&] {
      go.WaitForNotification();
      result = client->Do("t", "slow").status();
    });
  }
  absl::Time start = absl::Now();
  go.Notify();
  for (std::thread& caller : callers) caller.join();

  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  for (const absl::Status& result : results) {
    EXPECT_EQ(result.code(), absl::StatusCode::kDeadlineExceeded) << result;
    EXPECT_TRUE(absl::StrContains(result.message(), "timed out")) << result;
  }
}

TEST(LifecycleE2eTest, SigtermDrainsCallsInProgress) {
  auto server = ServerProcess::Start(
      {"--drain_timeout=5s", "--fetcher=slow=echo:?delay=1s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  constexpr int kCallers = 20;
  std::vector<absl::StatusOr<DoResult>> results(kCallers);
  std::atomic<int> finished{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      results[i] = client->Do("drain", "slow");
      ++finished;
    });
  }
  bool all_waiting = WaitForWaiters(*client, "drain", kCallers);
  (*server)->Signal(SIGTERM);
  // Calls that arrive before the server handles the signal still succeed,
  // and one that reaches an open connection as the drain begins is CANCELLED
  // by gRPC; from then on, new calls are refused while the old ones go on.
  absl::Status refused;
  bool was_refused = PollUntil(absl::Seconds(5), [&] {
    ClientOptions options;
    options.timeout = absl::Seconds(2);
    refused = Client::Connect((*server)->target(), options)
                  ->Do("after-sigterm")
                  .status();
    EXPECT_TRUE(refused.ok() || absl::IsCancelled(refused) ||
                absl::IsUnavailable(refused))
        << refused;
    return absl::IsUnavailable(refused);
  });
  int finished_when_refused = finished;
  absl::Status refused_on_old_channel = client->Do("after-sigterm").status();
  for (std::thread& caller : callers) caller.join();
  std::optional<int> exit_status = (*server)->WaitForExit(absl::Seconds(10));

  EXPECT_TRUE(all_waiting);
  EXPECT_TRUE(was_refused) << refused;
  EXPECT_EQ(refused_on_old_channel.code(), absl::StatusCode::kUnavailable)
      << refused_on_old_channel;
  EXPECT_EQ(finished_when_refused, 0);
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(results[i].ok())
        << "caller " << i << ": " << results[i].status();
    EXPECT_EQ(results[i]->value, "drain");
  }
  ASSERT_TRUE(exit_status.has_value()) << "still running 10s after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0)
      << "wait status " << *exit_status;
}

TEST(LifecycleE2eTest, WaitersLeftAfterTheDrainGetUnavailable) {
  auto server = ServerProcess::Start(
      {"--drain_timeout=300ms", "--fetcher=slow=echo:?delay=20s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());
  std::vector<absl::Status> results(5);
  std::vector<std::thread> callers;
  for (size_t i = 0; i < results.size(); ++i) {
    callers.emplace_back(
        [&, i] { results[i] = client->Do("stuck", "slow").status(); });
  }
  ASSERT_TRUE(WaitForWaiters(*client, "stuck", results.size()));
  absl::Time signalled = absl::Now();
  (*server)->Signal(SIGTERM);
  for (std::thread& caller : callers) caller.join();
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(5));
  for (const absl::Status& result : results) {
    EXPECT_EQ(result.code(), absl::StatusCode::kUnavailable) << result;
  }
  std::optional<int> exit_status = (*server)->WaitForExit(absl::Seconds(10));
  ASSERT_TRUE(exit_status.has_value());
  EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0);
}

// Load through a SIGTERM: every call ends with exactly one answer (a value,
// or UNAVAILABLE once the server stops taking calls), and nothing hangs.
TEST(LifecycleE2eTest, EveryCallThroughASigtermGetsOneAnswer) {
  auto server = ServerProcess::Start(
      {"--drain_timeout=2s", "--fetcher=slow=echo:?delay=50ms"});
  ASSERT_TRUE(server.ok()) << server.status();
  ClientOptions options;
  options.timeout = absl::Seconds(10);
  options.retry.max_attempts = 1;  // Count every answer, retry none.
  std::unique_ptr<Client> client =
      Client::Connect((*server)->target(), options);
  constexpr int kThreads = 8;
  constexpr int kCallsPerThread = 60;
  std::vector<std::vector<absl::StatusCode>> answers(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        answers[t].push_back(
            client->Do("key" + std::to_string(i % 5), "slow").status().code());
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(300));
  (*server)->Signal(SIGTERM);
  for (std::thread& thread : threads) thread.join();
  int ok = 0, refused = 0;
  for (const auto& thread_answers : answers) {
    ASSERT_EQ(thread_answers.size(), static_cast<size_t>(kCallsPerThread));
    for (absl::StatusCode code : thread_answers) {
      if (code == absl::StatusCode::kOk) {
        ++ok;
      } else {
        // Refused once the server stopped taking calls; gRPC may cancel one
        // that reached the connection just as the drain began.
        EXPECT_TRUE(code == absl::StatusCode::kUnavailable ||
                    code == absl::StatusCode::kCancelled)
            << absl::StatusCodeToString(code);
        ++refused;
      }
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(refused, 0);
  std::optional<int> exit_status = (*server)->WaitForExit(absl::Seconds(10));
  ASSERT_TRUE(exit_status.has_value());
  EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0);
}

TEST(LifecycleE2eTest, StreamCancellationLeavesOtherWaitersAlone) {
  auto server = ServerProcess::Start({"--fetcher=slow=echo:?delay=2s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  absl::StatusOr<DoResult> unary;
  std::thread unary_caller([&] { unary = client->Do("s", "slow"); });
  bool started = WaitForWaiters(*client, "s", 1);
  grpc::ClientContext context;
  auto stream = client->stub().DoStream(&context);
  EXPECT_TRUE(stream->Write(MakeRequest("s", "slow", 1)));
  EXPECT_TRUE(stream->Write(MakeRequest("stream-only", "slow", 2)));
  bool stream_joined = WaitForWaiters(*client, "s", 2) &&
                       WaitForWaiters(*client, "stream-only", 1);
  context.TryCancel();
  v1::DoResponse reply;
  bool read = stream->Read(&reply);
  grpc::Status stream_status = stream->Finish();
  bool left = PollUntil(absl::Seconds(1), [&] {
    return FlightsFor(*client, "stream-only").empty() &&
           FlightsFor(*client, "s").size() == 1 &&
           FlightsFor(*client, "s")[0].waiters() == 1;
  });
  unary_caller.join();

  EXPECT_TRUE(started);
  EXPECT_TRUE(stream_joined);
  EXPECT_FALSE(read) << "unexpected reply id " << reply.id();
  EXPECT_EQ(stream_status.error_code(), grpc::StatusCode::CANCELLED)
      << stream_status.error_message();
  EXPECT_TRUE(left) << "the stream's items did not leave their flights";
  ASSERT_TRUE(unary.ok()) << unary.status();
  EXPECT_EQ(unary->value, "s");
  EXPECT_TRUE(unary->shared);
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
