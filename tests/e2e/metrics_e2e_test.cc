// The /metrics endpoint of a real singleflightd: the counters move as calls,
// flights, joins, forgets and stream items happen.
#include <curl/curl.h>

#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

using ::testing::HasSubstr;

size_t Append(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// GET `url`; the body, or "" (and a test failure) if it was not a 200.
std::string Get(const std::string& url) {
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(),
                                              curl_easy_cleanup);
  std::string body;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 10000L);
  CURLcode result = curl_easy_perform(curl.get());
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  EXPECT_EQ(result, CURLE_OK) << curl_easy_strerror(result);
  EXPECT_EQ(status, 200);
  return status == 200 ? body : "";
}

// The value of the sample `series` (name and labels exactly as exported, for
// example `singleflight_executions_total{fetcher="slow"}`), or -1.
double Sample(const std::string& metrics, const std::string& series) {
  size_t at = 0;
  while ((at = metrics.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || metrics[at - 1] == '\n') {
      size_t end = metrics.find('\n', at);
      double value;
      if (absl::SimpleAtod(metrics.substr(at + series.size() + 1,
                                          end - at - series.size() - 1),
                           &value)) {
        return value;
      }
    }
    at += series.size();
  }
  return -1;
}

class MetricsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = ServerProcess::Start(
        {"--metrics_listen=127.0.0.1:0", "--fetcher=slow=echo:?delay=1s"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_TRUE(server_->WaitForOutput("/metrics\n", absl::Seconds(10)));
    std::smatch match;
    std::string output = server_->Output();
    ASSERT_TRUE(std::regex_search(
        output, match,
        std::regex("metrics on (http://127.0.0.1:\\d+/metrics)")))
        << output;
    metrics_url_ = match[1];
    client_ = Client::Connect(server_->target());
  }

  std::string Metrics() { return Get(metrics_url_); }

  std::unique_ptr<ServerProcess> server_;
  std::string metrics_url_;
  std::unique_ptr<Client> client_;
};

TEST_F(MetricsE2eTest, CountsCallsExecutionsAndJoins) {
  std::vector<std::thread> callers;
  for (int i = 0; i < 10; ++i) {
    callers.emplace_back([&] { EXPECT_TRUE(client_->Do("k", "slow").ok()); });
  }
  ASSERT_TRUE(WaitForWaiters(*client_, "k", 10));
  std::string during = Metrics();
  EXPECT_EQ(Sample(during, "singleflight_flights_in_flight{fetcher=\"slow\"}"),
            1);
  EXPECT_EQ(Sample(during, "singleflight_waiters{fetcher=\"slow\"}"), 10);
  for (std::thread& caller : callers) caller.join();

  std::string after = Metrics();
  EXPECT_EQ(
      Sample(after, "singleflight_calls_total{code=\"OK\",fetcher=\"slow\"}"),
      10);
  EXPECT_EQ(Sample(after, "singleflight_executions_total{fetcher=\"slow\"}"),
            1);
  EXPECT_EQ(Sample(after, "singleflight_joined_total{fetcher=\"slow\"}"), 9);
  EXPECT_EQ(Sample(after, "singleflight_waiters{fetcher=\"slow\"}"), 0);
  EXPECT_EQ(Sample(after,
                   "singleflight_execution_duration_seconds_count{fetcher="
                   "\"slow\"}"),
            1);
  EXPECT_EQ(
      Sample(after,
             "singleflight_wait_duration_seconds_count{fetcher=\"slow\"}"),
      10);
  EXPECT_EQ(Sample(after,
                   "singleflight_execution_duration_seconds_bucket{fetcher="
                   "\"slow\",le=\"0.5\"}"),
            0);  // The execution took a second.
}

TEST_F(MetricsE2eTest, BuildInfoSaysTheVersionAndCommit) {
  CommandResult version = RunBinary("singleflightd", {"--version"});
  EXPECT_EQ(version.exit_code, 0);
  std::smatch match;
  ASSERT_TRUE(std::regex_search(
      version.out, match,
      std::regex("^singleflightd (\\S+) \\(commit (\\S+)\\)\n$")))
      << version.out;
  std::string series = "singleflight_build_info{commit=\"" + match[2].str() +
                       "\",version=\"" + match[1].str() + "\"}";
  EXPECT_EQ(Sample(Metrics(), series), 1) << Metrics();
}

TEST_F(MetricsE2eTest, CountsErrorsForgetsAndStreamItems) {
  EXPECT_FALSE(client_->Do("", "").ok());
  EXPECT_FALSE(client_->Do("k", "nope").ok());
  EXPECT_TRUE(client_->Forget("idle").ok());
  std::vector<v1::DoRequest> items = {MakeRequest("a", "", 1),
                                      MakeRequest("b", "", 2)};
  EXPECT_TRUE(client_->DoStream(items, [](const v1::DoResponse&) {}).ok());

  std::string metrics = Metrics();
  EXPECT_EQ(Sample(metrics,
                   "singleflight_calls_total{code=\"INVALID_ARGUMENT\","
                   "fetcher=\"\"}"),
            1);
  EXPECT_EQ(Sample(metrics,
                   "singleflight_calls_total{code=\"NOT_FOUND\",fetcher=\"\"}"),
            1);
  EXPECT_EQ(Sample(metrics,
                   "singleflight_forgets_total{fetcher=\"echo\","
                   "forgotten=\"false\"}"),
            1);
  EXPECT_EQ(
      Sample(metrics, "singleflight_stream_items_total{fetcher=\"echo\"}"), 2);
  EXPECT_EQ(
      Sample(metrics, "singleflight_calls_total{code=\"OK\",fetcher=\"echo\"}"),
      2);
  EXPECT_THAT(metrics, HasSubstr("# TYPE singleflight_calls_total counter"));
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
