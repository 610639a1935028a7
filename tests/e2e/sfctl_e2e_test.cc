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

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"

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
                                             {"inflight", "a"}}) {
    CommandResult result = Sfctl(args);
    EXPECT_EQ(result.exit_code, 2) << absl::StrJoin(args, " ");
    EXPECT_TRUE(absl::StartsWith(result.err, "sfctl: ")) << result.err;
  }
  EXPECT_TRUE(absl::StrContains(Sfctl({"bogus"}).err, "unknown command"));
}

TEST_F(SfctlE2eTest, HelpDescribesEveryCommand) {
  CommandResult help = RunSfctl({"--help"});
  for (const char* text : {"do KEY", "stream KEY...", "forget KEY", "inflight",
                           "--target", "--timeout", "--fetcher", "--payload"}) {
    EXPECT_TRUE(absl::StrContains(help.out, text)) << text;
  }
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
