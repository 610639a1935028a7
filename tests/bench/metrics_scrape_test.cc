#include "bench/metrics_scrape.h"

#include <cmath>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/bench/fake_http_server.h"

namespace singleflight {
namespace bench {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

constexpr absl::Duration kTimeout = absl::Seconds(5);

// What a singleflightd with two fetchers exports, as prometheus-cpp writes
// it (other families included, to be ignored).
constexpr char kServerText[] =
    R"(# HELP singleflight_calls_total Do calls and stream items, by outcome
# TYPE singleflight_calls_total counter
singleflight_calls_total{fetcher="echo",code="OK"} 900
singleflight_calls_total{fetcher="echo",code="NOT_FOUND"} 0
singleflight_calls_total{fetcher="slow",code="OK"} 95
singleflight_calls_total{fetcher="slow",code="DEADLINE_EXCEEDED"} 5
singleflight_calls_total{fetcher="",code="INVALID_ARGUMENT"} 2
# HELP singleflight_executions_total fetcher executions started
# TYPE singleflight_executions_total counter
singleflight_executions_total{fetcher="echo"} 900
singleflight_executions_total{fetcher="slow"} 10
# TYPE singleflight_execution_duration_seconds histogram
singleflight_execution_duration_seconds_bucket{fetcher="slow",le="0.1"} 3
singleflight_execution_duration_seconds_bucket{fetcher="slow",le="+Inf"} 10
singleflight_execution_duration_seconds_sum{fetcher="slow"} 1.5
singleflight_execution_duration_seconds_count{fetcher="slow"} 10
singleflight_executions_total_created{fetcher="echo"} 1.7e9
)";

TEST(ParseMetricsTextTest, ReadsNamesLabelsAndValues) {
  absl::StatusOr<std::vector<MetricSample>> samples = ParseMetricsText(
      "# comment\n\n"
      "plain 1\n"
      "with_time{a=\"x\"} 2.5 1700000000000\n"
      "escaped{path=\"C:\\\\dir\",quote=\"say \\\"hi\\\"\",nl=\"a\\nb\",} -3\n"
      "spaced { a = \"1\" , b=\"2\" } 4\n"
      "infinite{le=\"+Inf\"} +Inf\n"
      "odd:name_1{} NaN\n");
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 6u);
  EXPECT_EQ((*samples)[0].name, "plain");
  EXPECT_TRUE((*samples)[0].labels.empty());
  EXPECT_EQ((*samples)[0].value, 1);
  EXPECT_EQ((*samples)[1].labels, (Labels{{"a", "x"}}));
  EXPECT_EQ((*samples)[1].value, 2.5);
  EXPECT_EQ(
      (*samples)[2].labels,
      (Labels{{"path", "C:\\dir"}, {"quote", "say \"hi\""}, {"nl", "a\nb"}}));
  EXPECT_EQ((*samples)[2].value, -3);
  EXPECT_EQ((*samples)[3].labels, (Labels{{"a", "1"}, {"b", "2"}}));
  EXPECT_TRUE(std::isinf((*samples)[4].value));
  EXPECT_EQ((*samples)[5].name, "odd:name_1");
  EXPECT_TRUE(std::isnan((*samples)[5].value));
}

TEST(ParseMetricsTextTest, NamesTheUnreadableLine) {
  for (const char* text : {"ok 1\nbroken{a=\"x\" 2\n", "ok 1\nno_value\n",
                           "ok 1\nbad_value{} one\n", "ok 1\n{a=\"x\"} 1\n",
                           "ok 1\ntoo_many 1 2 3\n"}) {
    absl::StatusOr<std::vector<MetricSample>> samples = ParseMetricsText(text);
    EXPECT_EQ(samples.status().code(), absl::StatusCode::kInvalidArgument)
        << text;
    EXPECT_TRUE(absl::StrContains(samples.status().message(), "line 2"))
        << samples.status();
  }
}

TEST(SumSeriesTest, SumsEveryLabelSetOrOnlyTheMatchingOnes) {
  absl::StatusOr<std::vector<MetricSample>> samples =
      ParseMetricsText(kServerText);
  ASSERT_TRUE(samples.ok()) << samples.status();
  bool found = false;
  EXPECT_EQ(SumSeries(*samples, "singleflight_calls_total", {}, &found), 1002);
  EXPECT_TRUE(found);
  EXPECT_EQ(
      SumSeries(*samples, "singleflight_calls_total", {{"fetcher", "slow"}}),
      100);
  EXPECT_EQ(SumSeries(*samples, "singleflight_calls_total",
                      {{"fetcher", "slow"}, {"code", "OK"}}),
            95);
  // The exact name only: not _created, not a histogram's series.
  EXPECT_EQ(SumSeries(*samples, "singleflight_executions_total", {}), 910);
  EXPECT_EQ(SumSeries(*samples, "singleflight_executions_total",
                      {{"fetcher", "nope"}}, &found),
            0);
  EXPECT_FALSE(found);
}

TEST(ScrapeServerCountersTest, SumsAllFetchers) {
  FakeHttpServer server(FakeHttpServer::Ok(kServerText));
  absl::StatusOr<ServerCounters> counters =
      ScrapeServerCounters(server.url() + "/metrics", "", kTimeout);
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_EQ(counters->calls, 1002);
  EXPECT_EQ(counters->executions, 910);
}

TEST(ScrapeServerCountersTest, OnlyTheNamedFetcher) {
  FakeHttpServer server(FakeHttpServer::Ok(kServerText));
  absl::StatusOr<ServerCounters> counters =
      ScrapeServerCounters(server.url() + "/metrics", "slow", kTimeout);
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_EQ(counters->calls, 100);
  EXPECT_EQ(counters->executions, 10);
}

TEST(ScrapeServerCountersTest, MissingCounterIsNotFound) {
  FakeHttpServer server(FakeHttpServer::Ok("singleflight_calls_total 3\n"));
  absl::StatusOr<ServerCounters> counters =
      ScrapeServerCounters(server.url(), "", kTimeout);
  EXPECT_EQ(counters.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(counters.status().message(),
                                "singleflight_executions_total"))
      << counters.status();
  FakeHttpServer other(FakeHttpServer::Ok(kServerText));
  EXPECT_EQ(ScrapeServerCounters(other.url(), "nope", kTimeout).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ScrapeServerCountersTest, UnreadablePageFails) {
  FakeHttpServer server(FakeHttpServer::Ok("{{{ not metrics\n"));
  EXPECT_EQ(ScrapeServerCounters(server.url(), "", kTimeout).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bench
}  // namespace singleflight
