// End-to-end tests of how calls and flights end early: deadlines,
// cancellation, fetch timeouts, and the drain on SIGTERM; and of how the
// server starts, stops and logs.
#include <grpcpp/generic/generic_stub.h>
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
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

constexpr char kServiceName[] = "singleflight.v1.SingleFlight";

// The health status of `service` ("" for the server), asked on a connection
// of its own; UNKNOWN if the call fails.
HealthCheckResponse::ServingStatus HealthOf(const std::string& target,
                                            const std::string& service) {
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(2));
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  if (!health->Check(&context, request, &response).ok()) {
    return HealthCheckResponse::UNKNOWN;
  }
  return response.status();
}

// Sends `body` as a unary Do call without encoding it: bytes a client's
// stub could not send. Returns the call's status.
grpc::Status RawDo(grpc::GenericStub& stub, const std::string& body) {
  grpc::Slice slice(body);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/singleflight.v1.SingleFlight/Do",
                 grpc::StubOptions(), &request, &response,
                 [&](grpc::Status result) {
                   status = std::move(result);
                   done.Notify();
                 });
  // The deadline ends the call; this bound only guards against a lost one.
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  return status;
}

// A DoRequest whose key (field 1, 2 bytes) is not UTF-8.
const std::string& UndecodableRequest() {
  static const std::string* body = new std::string("\x0a\x02\xff\xfe", 4);
  return *body;
}

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
  // The flight outlasts the polling below by far, even on a loaded machine.
  auto server = ServerProcess::Start(
      {"--drain_timeout=10s", "--fetcher=slow=echo:?delay=4s"});
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

// gRPC sets SO_REUSEPORT unless told not to: a second server would start on
// the port and take half of its connections.
TEST(LifecycleE2eTest, ASecondServerOnAPortInUseRefusesToStart) {
  auto first = ServerProcess::Start({});
  ASSERT_TRUE(first.ok()) << first.status();

  CommandResult second = RunBinary(
      "singleflightd", {"--listen=" + (*first)->target()}, absl::Seconds(10));

  EXPECT_NE(second.exit_code, 0);
  EXPECT_THAT(second.err, HasSubstr("cannot listen on " + (*first)->target() +
                                    ": the address is in use"));
  EXPECT_EQ(HealthOf((*first)->target(), ""), HealthCheckResponse::SERVING);
}

// With nothing in flight, neither an idle connection nor an idle DoStream
// holds the exit (they did for 4-5 s and for the whole drain_timeout plus a
// second).
TEST(LifecycleE2eTest, IdleConnectionsAndStreamsDoNotHoldTheExit) {
  auto server = ServerProcess::Start({"--drain_timeout=10s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());
  std::unique_ptr<Client> idle = Client::Connect((*server)->target());
  ASSERT_TRUE(idle->Do("warm-up").ok());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  auto stream = client->stub().DoStream(&context);
  ASSERT_TRUE(stream->Write(MakeRequest("s", "", 1)));
  v1::DoResponse reply;
  ASSERT_TRUE(stream->Read(&reply));

  absl::Time signalled = absl::Now();
  (*server)->Signal(SIGTERM);
  bool more = stream->Read(&reply);
  grpc::Status stream_status = stream->Finish();
  std::optional<int> exit_status = (*server)->WaitForExit(absl::Seconds(15));
  absl::Duration took = absl::Now() - signalled;

  EXPECT_FALSE(more) << "unexpected reply id " << reply.id();
  ASSERT_TRUE(exit_status.has_value());
  EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0)
      << "wait status " << *exit_status;
  EXPECT_LT(took, absl::Seconds(2)) << stream_status.error_message();
}

// --drain_grace: health checks see NOT_SERVING (under both names) while
// calls, on new connections too, are still served; then the server drains.
TEST(LifecycleE2eTest, DrainGraceReportsNotServingWhileStillServing) {
  auto server =
      ServerProcess::Start({"--drain_grace=2s", "--drain_timeout=5s"});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string& target = (*server)->target();
  ASSERT_EQ(HealthOf(target, ""), HealthCheckResponse::SERVING);
  ASSERT_EQ(HealthOf(target, kServiceName), HealthCheckResponse::SERVING);

  absl::Time signalled = absl::Now();
  (*server)->Signal(SIGTERM);
  bool not_serving = PollUntil(absl::Seconds(1), [&] {
    return HealthOf(target, "") == HealthCheckResponse::NOT_SERVING;
  });
  HealthCheckResponse::ServingStatus by_name = HealthOf(target, kServiceName);
  absl::StatusOr<DoResult> during_grace =
      Client::Connect(target)->Do("during-grace");
  bool in_grace = absl::Now() - signalled < absl::Milliseconds(1500);
  std::optional<int> exit_status = (*server)->WaitForExit(absl::Seconds(10));

  EXPECT_TRUE(not_serving);
  EXPECT_EQ(by_name, HealthCheckResponse::NOT_SERVING);
  ASSERT_TRUE(during_grace.ok()) << during_grace.status();
  EXPECT_EQ(during_grace->value, "during-grace");
  EXPECT_TRUE(in_grace) << "too slow to tell; the machine is overloaded";
  ASSERT_TRUE(exit_status.has_value());
  EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0);
}

// Protobuf logs every request it cannot decode; with --log_level=off none of
// it reaches stderr (it used to be one line per call).
TEST(LifecycleE2eTest, UndecodableRequestsLogNothingWithLoggingOff) {
  auto server = ServerProcess::StartCapturingStderr({"--log_level=off"});
  ASSERT_TRUE(server.ok()) << server.status();
  grpc::GenericStub stub(grpc::CreateChannel(
      (*server)->target(), grpc::InsecureChannelCredentials()));

  for (int i = 0; i < 200; ++i) {
    grpc::Status status = RawDo(stub, UndecodableRequest());
    ASSERT_FALSE(status.ok()) << "call " << i;
  }
  (*server)->Signal(SIGTERM);
  ASSERT_TRUE((*server)->WaitForExit(absl::Seconds(10)).has_value());

  std::string err = (*server)->Stderr();
  EXPECT_EQ(err.size(), 0u) << "stderr begins: " << err.substr(0, 500);
}

// Logged, the same flood stays a few lines a second, and with --log_json all
// of stderr is JSON lines.
TEST(LifecycleE2eTest, UndecodableRequestsAreLoggedRateLimitedAsJson) {
  auto server = ServerProcess::StartCapturingStderr({"--log_json"});
  ASSERT_TRUE(server.ok()) << server.status();
  grpc::GenericStub stub(grpc::CreateChannel(
      (*server)->target(), grpc::InsecureChannelCredentials()));

  absl::Time start = absl::Now();
  for (int i = 0; i < 200; ++i) {
    ASSERT_FALSE(RawDo(stub, UndecodableRequest()).ok()) << "call " << i;
  }
  absl::Duration took = absl::Now() - start;
  (*server)->Signal(SIGTERM);
  ASSERT_TRUE((*server)->WaitForExit(absl::Seconds(10)).has_value());

  std::vector<std::string> lines =
      absl::StrSplit((*server)->Stderr(), '\n', absl::SkipEmpty());
  // Start, signal and stop lines, and at most 10 lines a second (plus a
  // note of the lines dropped) from each library.
  size_t most = 3 + 2 * 11 * (absl::ToInt64Seconds(took) + 1);
  EXPECT_LE(lines.size(), most);
  int not_json = 0;
  for (const std::string& line : lines) {
    if (!absl::StartsWith(line, "{\"time\":") || !absl::EndsWith(line, "}")) {
      if (++not_json == 1) ADD_FAILURE() << "not a JSON line: " << line;
    }
  }
  EXPECT_EQ(not_json, 0);
}

TEST(LifecycleE2eTest, HelpIsASuccessAndUnknownFlagsAreNot) {
  CommandResult help = RunBinary("singleflightd", {"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--fetcher"), std::string::npos) << help.out;
  CommandResult unknown = RunBinary("singleflightd", {"--no_such_flag"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("no_such_flag"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
