// End-to-end tests of the sfctl binary against a real singleflightd.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

class SfctlE2eTest : public testing::Test {
 protected:
  void SetUp() override {
    auto server = ServerProcess::Start({"--fetcher=slow=echo:?delay=1s"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = Client::Connect(server_->target());
  }

  // Runs sfctl against the test's server.
  CommandResult Sfctl(std::vector<std::string> args) {
    args.insert(args.begin(), "--target=" + server_->target());
    return RunSfctl(args);
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(SfctlE2eTest, DoPrintsTheValue) {
  CommandResult result = Sfctl({"do", "hello"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "hello\n");
  EXPECT_EQ(result.err, "");

  result = Sfctl({"do", "key", "--payload", "value"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "value\n");
}

TEST_F(SfctlE2eTest, ConcurrentDoPrintsASummary) {
  CommandResult result =
      Sfctl({"do", "-n", "100", "hello", "--fetcher", "slow"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "replies=100 shared=100 errors=0 distinct_values=1\n");
  EXPECT_EQ(result.err, "");
}

TEST_F(SfctlE2eTest, StreamPrintsOneLinePerReply) {
  CommandResult result = Sfctl({"stream", "a", "b", "a"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::map<std::string, std::string> key_by_id;
  for (absl::string_view line :
       absl::StrSplit(result.out, '\n', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    ASSERT_EQ(fields.size(), 4u) << line;
    EXPECT_TRUE(absl::StartsWith(fields[2], "shared=")) << line;
    EXPECT_EQ(fields[3], absl::StrCat("value=", fields[1].substr(4))) << line;
    key_by_id[fields[0]] = fields[1];
  }
  EXPECT_EQ(key_by_id,
            (std::map<std::string, std::string>{
                {"id=1", "key=a"}, {"id=2", "key=b"}, {"id=3", "key=a"}}));
}

TEST_F(SfctlE2eTest, ForgetReportsARunningFlight) {
  CommandResult background;
  std::thread caller([&] {
    background = Sfctl({"do", "busy", "--fetcher", "slow"});
  });
  bool started = WaitForWaiters(*client_, "busy", 1);
  CommandResult first = Sfctl({"forget", "busy", "--fetcher", "slow"});
  CommandResult second = Sfctl({"forget", "busy", "--fetcher=slow"});
  caller.join();

  EXPECT_TRUE(started);
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, "forgotten=true\n");
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out, "forgotten=false\n");
  EXPECT_EQ(background.exit_code, 0) << background.err;
  EXPECT_EQ(background.out, "busy\n");
}

TEST_F(SfctlE2eTest, InflightListsRunningFlights) {
  CommandResult background;
  std::thread caller([&] {
    background = Sfctl({"do", "busy", "--fetcher", "slow"});
  });
  bool started = WaitForWaiters(*client_, "busy", 1);
  CommandResult busy = Sfctl({"inflight"});
  caller.join();
  CommandResult idle = Sfctl({"inflight"});

  EXPECT_TRUE(started);
  EXPECT_EQ(busy.exit_code, 0) << busy.err;
  std::vector<std::string> lines =
      absl::StrSplit(busy.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << busy.out;
  EXPECT_TRUE(
      absl::StartsWith(lines[0], "fetcher=slow key=busy waiters=1 age="))
      << lines[0];
  EXPECT_TRUE(absl::EndsWith(lines[0], "s forgotten=false")) << lines[0];
  EXPECT_EQ(idle.exit_code, 0) << idle.err;
  EXPECT_EQ(idle.out, "");
}

TEST_F(SfctlE2eTest, FailedCallsExitNonZeroNamingTheCode) {
  CommandResult empty_key = Sfctl({"do", ""});
  EXPECT_EQ(empty_key.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(empty_key.err, "sfctl: INVALID_ARGUMENT: "))
      << empty_key.err;

  CommandResult unknown = Sfctl({"do", "x", "--fetcher", "nope"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(unknown.err, "sfctl: NOT_FOUND: "))
      << unknown.err;

  CommandResult many = Sfctl({"do", "x", "-n", "3", "--fetcher", "nope"});
  EXPECT_EQ(many.exit_code, 1);
  EXPECT_EQ(many.out, "replies=0 shared=0 errors=3 distinct_values=0\n");
  EXPECT_TRUE(absl::StartsWith(many.err, "error: NOT_FOUND: ")) << many.err;
  EXPECT_TRUE(absl::EndsWith(many.err, " (x3)\n")) << many.err;

  CommandResult stream = Sfctl({"stream", "a", ""});
  EXPECT_EQ(stream.exit_code, 1);
  EXPECT_TRUE(
      absl::StrContains(stream.out, "id=1 key=a shared=false value=a\n"))
      << stream.out;
  EXPECT_TRUE(
      absl::StrContains(stream.out, "id=2 key= error=INVALID_ARGUMENT: "))
      << stream.out;
}

TEST_F(SfctlE2eTest, UsageErrorsExitWithTwo) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{},
                                             {"bogus"},
                                             {"do"},
                                             {"do", "a", "b"},
                                             {"do", "a", "-n", "0"},
                                             {"stream"},
                                             {"stream", "a", "-n", "2"},
                                             {"forget"},
                                             {"inflight", "a"},
                                             {"inflight", "--watch_count=2"},
                                             {"do", "a", "--watch"},
                                             {"health", "a", "b"},
                                             {"health", "--fetcher=slow"}}) {
    CommandResult result = Sfctl(args);
    EXPECT_EQ(result.exit_code, 2) << absl::StrJoin(args, " ");
    EXPECT_TRUE(absl::StartsWith(result.err, "sfctl: ")) << result.err;
  }
  EXPECT_TRUE(absl::StrContains(Sfctl({"bogus"}).err, "unknown command"));
}

TEST_F(SfctlE2eTest, HelpDescribesEveryCommand) {
  CommandResult help = RunSfctl({"--help"});
  for (const char* text :
       {"do KEY", "stream KEY...", "forget KEY", "inflight", "health [SERVICE]",
        "--target", "--timeout", "--fetcher", "--payload", "--json", "--tls",
        "--ca_cert", "--client_cert", "--client_key", "--watch",
        "--watch_interval", "--watch_count", "Exit status"}) {
    EXPECT_TRUE(absl::StrContains(help.out, text)) << text;
  }
}

// Parses one line of sfctl's JSON output into `message`.
template <typename Message>
Message ParseJson(absl::string_view line) {
  Message message;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), &message);
  EXPECT_TRUE(status.ok()) << status << ": " << line;
  return message;
}

TEST_F(SfctlE2eTest, JsonOutputOfEveryCommand) {
  CommandResult done = Sfctl({"--json", "do", "hello"});
  EXPECT_EQ(done.exit_code, 0) << done.err;
  auto reply = ParseJson<google::protobuf::Struct>(done.out);
  EXPECT_EQ(reply.fields().at("value").string_value(), "aGVsbG8=");  // base64
  EXPECT_FALSE(reply.fields().at("shared").bool_value());

  CommandResult many =
      Sfctl({"do", "-n", "5", "joint", "--fetcher", "slow", "--json"});
  EXPECT_EQ(many.exit_code, 0) << many.err;
  auto summary = ParseJson<google::protobuf::Struct>(many.out);
  EXPECT_EQ(summary.fields().at("replies").number_value(), 5);
  EXPECT_EQ(summary.fields().at("shared").number_value(), 5);
  EXPECT_EQ(summary.fields().at("errors").number_value(), 0);
  EXPECT_EQ(summary.fields().at("distinct_values").number_value(), 1);

  CommandResult failed =
      Sfctl({"do", "-n", "2", "x", "--fetcher", "nope", "--json"});
  EXPECT_EQ(failed.exit_code, 1);
  auto errors = ParseJson<google::protobuf::Struct>(failed.out);
  EXPECT_EQ(errors.fields().at("errors").number_value(), 2);
  ASSERT_EQ(errors.fields().at("error_counts").struct_value().fields_size(), 1);
  EXPECT_TRUE(absl::StartsWith(
      errors.fields().at("error_counts").struct_value().fields().begin()->first,
      "NOT_FOUND: "));

  CommandResult stream = Sfctl({"stream", "a", "", "--json"});
  EXPECT_EQ(stream.exit_code, 1);
  std::map<uint64_t, v1::DoResponse> replies;
  for (absl::string_view line :
       absl::StrSplit(stream.out, '\n', absl::SkipEmpty())) {
    auto item = ParseJson<v1::DoResponse>(line);
    replies[item.id()] = item;
  }
  ASSERT_EQ(replies.size(), 2u) << stream.out;
  EXPECT_EQ(replies[1].value(), "a");
  EXPECT_EQ(replies[1].status().code(), 0);
  EXPECT_EQ(replies[2].status().code(), grpc::StatusCode::INVALID_ARGUMENT);

  CommandResult forgotten = Sfctl({"forget", "idle", "--json"});
  EXPECT_EQ(forgotten.exit_code, 0) << forgotten.err;
  EXPECT_FALSE(ParseJson<v1::ForgetResponse>(forgotten.out).forgotten());

  CommandResult health = Sfctl({"health", "--json"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(
      ParseJson<grpc::health::v1::HealthCheckResponse>(health.out).status(),
      grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(SfctlE2eTest, InflightJsonListsOldestFirst) {
  CommandResult older, newer;
  std::thread first([&] { older = Sfctl({"do", "older", "--fetcher=slow"}); });
  bool started = WaitForWaiters(*client_, "older", 1);
  absl::SleepFor(absl::Milliseconds(100));
  std::thread second([&] { newer = Sfctl({"do", "newer", "--fetcher=slow"}); });
  started = WaitForWaiters(*client_, "newer", 1) && started;
  CommandResult listed = Sfctl({"inflight", "--json"});
  first.join();
  second.join();

  EXPECT_TRUE(started);
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  auto response = ParseJson<v1::InFlightResponse>(listed.out);
  ASSERT_EQ(response.flights_size(), 2) << listed.out;
  EXPECT_EQ(response.flights(0).key(), "older");
  EXPECT_EQ(response.flights(1).key(), "newer");
  EXPECT_EQ(response.flights(0).fetcher(), "slow");
  EXPECT_EQ(response.flights(0).waiters(), 1u);
}

TEST_F(SfctlE2eTest, WatchRefreshesOldestFirst) {
  CommandResult older, newer;
  std::thread first([&] { older = Sfctl({"do", "older", "--fetcher=slow"}); });
  bool started = WaitForWaiters(*client_, "older", 1);
  absl::SleepFor(absl::Milliseconds(100));
  std::thread second([&] { newer = Sfctl({"do", "newer", "--fetcher=slow"}); });
  started = WaitForWaiters(*client_, "newer", 1) && started;
  absl::Time start = absl::Now();
  CommandResult watch = Sfctl(
      {"inflight", "--watch", "--watch_count=3", "--watch_interval=100ms"});
  absl::Duration took = absl::Now() - start;
  first.join();
  second.join();

  EXPECT_TRUE(started);
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  EXPECT_GE(took, absl::Milliseconds(200));
  // Three refreshes, each a header and the flights, then a blank line.
  std::vector<std::string> frames = absl::StrSplit(watch.out, "\n\n");
  ASSERT_EQ(frames.size(), 4u) << watch.out;
  EXPECT_EQ(frames[3], "");
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> lines = absl::StrSplit(frames[i], '\n');
    ASSERT_EQ(lines.size(), 3u) << frames[i];
    EXPECT_TRUE(absl::StrContains(
        lines[0], absl::StrCat(" ", server_->target(), ": 2 in flight")))
        << lines[0];
    EXPECT_TRUE(absl::StartsWith(lines[1], "fetcher=slow key=older "))
        << lines[1];
    EXPECT_TRUE(absl::StartsWith(lines[2], "fetcher=slow key=newer "))
        << lines[2];
  }
}

TEST_F(SfctlE2eTest, HealthChecksTheServer) {
  CommandResult serving = Sfctl({"health"});
  EXPECT_EQ(serving.exit_code, 0) << serving.err;
  EXPECT_EQ(serving.out, "SERVING\n");

  CommandResult unknown = Sfctl({"health", "no.such.Service"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(unknown.err, "sfctl: NOT_FOUND: "))
      << unknown.err;
}

TEST_F(SfctlE2eTest, TlsAgainstAPlaintextServerFailsClearly) {
  CommandResult tls = Sfctl({"--tls", "--timeout=5s", "do", "x"});
  EXPECT_EQ(tls.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(tls.err, "sfctl: UNAVAILABLE: ")) << tls.err;
  EXPECT_TRUE(absl::StrContains(absl::AsciiStrToLower(tls.err), "handshake"))
      << tls.err;

  CommandResult missing = Sfctl({"--ca_cert=/nonexistent/ca.pem", "health"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(missing.err, "cannot read /nonexistent/ca.pem"))
      << missing.err;

  CommandResult half = Sfctl({"--client_cert=/etc/hostname", "health"});
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(half.err, "give both or neither")) << half.err;
}

TEST(SfctlUnreachableE2eTest, SilentServerTimesOut) {
  // A socket that listens but never answers: connecting works, no call does.
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), length), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  ASSERT_EQ(
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);

  absl::Time start = absl::Now();
  CommandResult result =
      RunSfctl({absl::StrCat("--target=127.0.0.1:", ntohs(address.sin_port)),
                "--timeout=1s", "do", "x"});
  absl::Duration took = absl::Now() - start;
  close(listener);

  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(result.err, "sfctl: ")) << result.err;
  EXPECT_LT(took, absl::Seconds(5));
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
