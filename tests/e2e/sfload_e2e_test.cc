// End-to-end tests of the sfload and bare_server binaries, against a real
// singleflightd.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

constexpr char kMetricsPrefix[] = "singleflightd metrics on ";

// The number after "field": in sfload's JSON, or -1 if it is not there.
double JsonNumber(absl::string_view json, absl::string_view field) {
  std::string quoted = absl::StrCat("\"", field, "\":");
  size_t at = json.find(quoted);
  if (at == absl::string_view::npos) return -1;
  return std::strtod(std::string(json.substr(at + quoted.size())).c_str(),
                     nullptr);
}

class SfloadE2eTest : public testing::Test {
 protected:
  void Start(const std::vector<std::string>& args) {
    auto server = ServerProcess::Start(args);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // Runs sfload against the test's server.
  CommandResult Sfload(std::vector<std::string> args) {
    args.insert(args.begin(), "--target=" + server_->target());
    return RunBinary("sfload", args, absl::Seconds(60));
  }

  std::unique_ptr<ServerProcess> server_;
};

TEST_F(SfloadE2eTest, UnaryJsonReportsEveryCallOk) {
  Start({});
  CommandResult result = Sfload({"--calls=200", "--concurrency=8", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(JsonNumber(result.out, "calls"), 200) << result.out;
  EXPECT_EQ(JsonNumber(result.out, "ok"), 200) << result.out;
  EXPECT_EQ(JsonNumber(result.out, "error_count"), 0) << result.out;
  EXPECT_TRUE(absl::StrContains(result.out, R"("errors":{})")) << result.out;
  EXPECT_GT(JsonNumber(result.out, "throughput"), 0) << result.out;
  EXPECT_GT(JsonNumber(result.out, "p50"), 0) << result.out;
}

TEST_F(SfloadE2eTest, StreamJsonReportsEveryCallOk) {
  Start({});
  CommandResult result = Sfload({"--mode=stream", "--calls=200",
                                 "--concurrency=8", "--keys=zipf", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(JsonNumber(result.out, "calls"), 200) << result.out;
  EXPECT_EQ(JsonNumber(result.out, "ok"), 200) << result.out;
  EXPECT_TRUE(absl::StrContains(result.out, R"("mode":"stream")"));
}

TEST_F(SfloadE2eTest, TextReportIsATable) {
  Start({});
  CommandResult result = Sfload({"--calls=50"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(absl::StrContains(result.out, "calls/s")) << result.out;
  EXPECT_TRUE(absl::StrContains(result.out, "p99.9")) << result.out;
}

TEST_F(SfloadE2eTest, FailedCallsAreCountedByCode) {
  Start({});
  for (const char* mode : {"--mode=unary", "--mode=stream"}) {
    CommandResult result =
        Sfload({mode, "--fetcher=nosuch", "--calls=50", "--json"});
    EXPECT_EQ(result.exit_code, 0) << mode << ": " << result.err;
    EXPECT_EQ(JsonNumber(result.out, "ok"), 0) << mode << ": " << result.out;
    EXPECT_EQ(JsonNumber(result.out, "NOT_FOUND"), 50)
        << mode << ": " << result.out;

    result = Sfload({mode, "--fetcher=nosuch", "--calls=5", "--fail_on_error"});
    EXPECT_EQ(result.exit_code, 1) << mode << ": " << result.out;
  }
}

TEST_F(SfloadE2eTest, HotKeyCoalescesAndMetricsShowIt) {
  Start({"--fetcher=slow=echo:?delay=100ms", "--metrics_listen=127.0.0.1:0"});
  ASSERT_TRUE(server_->WaitForOutput(kMetricsPrefix, absl::Seconds(5)));
  std::string output = server_->Output();
  size_t at = output.find(kMetricsPrefix) + sizeof(kMetricsPrefix) - 1;
  std::string metrics_url = output.substr(at, output.find('\n', at) - at);

  CommandResult result =
      Sfload({"--keys=hot", "--fetcher=slow", "--concurrency=8", "--calls=80",
              "--metrics_url=" + metrics_url, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(JsonNumber(result.out, "ok"), 80) << result.out;
  // Eight callers in step share most flights.
  EXPECT_GE(JsonNumber(result.out, "shared"), 60) << result.out;
  absl::string_view server = result.out;
  server.remove_prefix(std::min(server.size(), server.find("\"server\":{")));
  // The server may count the last replies just after sfload's last scrape.
  EXPECT_NEAR(JsonNumber(server, "calls"), 80, 8) << result.out;
  EXPECT_LE(JsonNumber(server, "executions_per_call"), 0.5) << result.out;
  EXPECT_GT(JsonNumber(server, "executions_per_call"), 0) << result.out;
}

TEST_F(SfloadE2eTest, UnscrapableMetricsUrlFailsAtOnce) {
  Start({});
  CommandResult result =
      Sfload({"--calls=10", "--metrics_url=http://127.0.0.1:1/metrics"});
  EXPECT_EQ(result.exit_code, 2) << result.out;
  EXPECT_TRUE(absl::StrContains(result.err, "cannot connect")) << result.err;
}

TEST(SfloadUsageE2eTest, BadFlagsExit2) {
  CommandResult result = RunBinary("sfload", {"--keys=gaussian"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(result.err, "--keys")) << result.err;

  result = RunBinary("sfload", {"--mode=duplex"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(result.err, "--mode")) << result.err;
}

TEST(SfloadUsageE2eTest, UnreachableServerExits2) {
  CommandResult result = RunBinary(
      "sfload",
      {"--target=127.0.0.1:1", "--calls=10", "--connect_timeout=500ms"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(result.err, "cannot connect")) << result.err;
}

TEST(BareServerE2eTest, UnusableAddressExits2) {
  CommandResult result = RunBinary("bare_server", {"--listen=256.0.0.1:0"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(result.err, "cannot listen")) << result.err;
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
