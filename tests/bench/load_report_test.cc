#include "bench/load_report.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace bench {
namespace {

LoadReport Sample() {
  LoadReport report;
  report.target = "127.0.0.1:50051";
  report.mode = "unary";
  report.keys = "zipf(1.1)/1000";
  report.channels = 4;
  report.concurrency = 64;
  report.elapsed_seconds = 2;
  report.calls = 1000;
  report.ok = 990;
  report.shared = 495;
  report.errors = {{"DEADLINE_EXCEEDED", 7}, {"UNAVAILABLE", 3}};
  report.latency = {1'500'000, 2'000'000, 3'000'000,
                    4'000'000, 5'000'000, 1'600'000};
  return report;
}

TEST(LoadReportTest, Derived) {
  LoadReport report = Sample();
  EXPECT_EQ(report.error_count(), 10u);
  EXPECT_EQ(report.throughput(), 500);
  report.elapsed_seconds = 0;
  EXPECT_EQ(report.throughput(), 0);
}

TEST(LoadReportTest, JsonCarriesEveryFigure) {
  LoadReport report = Sample();
  report.target = "host\"with\\odd";
  std::string json = FormatJson(report);
  for (const char* field :
       {R"("target":"host\"with\\odd")", R"("mode":"unary")",
        R"("loop":"closed")", R"("concurrency":64)", R"("channels":4)",
        R"("keys":"zipf(1.1)/1000")", R"("calls":1000)", R"("ok":990)",
        R"("error_count":10)",
        R"("errors":{"DEADLINE_EXCEEDED":7,"UNAVAILABLE":3})",
        R"("throughput":500.0)", R"("shared":495)", R"("shared_ratio":0.5000)",
        R"("p50":1500.0)", R"("p99_9":4000.0)", R"("max":5000.0)",
        R"("server":null)"}) {
    EXPECT_TRUE(absl::StrContains(json, field)) << field << " in " << json;
  }
  EXPECT_TRUE(absl::StartsWith(json, "{"));
  EXPECT_TRUE(absl::EndsWith(json, "}\n"));
  EXPECT_EQ(json.find('\n'), json.size() - 1);
}

TEST(LoadReportTest, JsonServerCounters) {
  LoadReport report = Sample();
  report.rate = 2000;
  report.server = ServerCounters{1000, 250};
  std::string json = FormatJson(report);
  EXPECT_TRUE(absl::StrContains(json, R"("loop":"open")")) << json;
  EXPECT_TRUE(absl::StrContains(
      json,
      R"("server":{"calls":1000,"executions":250,"executions_per_call":0.2500})"))
      << json;
}

TEST(LoadReportTest, TextTable) {
  LoadReport report = Sample();
  report.server = ServerCounters{1000, 250};
  std::string text = FormatText(report);
  for (const char* part :
       {"closed loop, 64 callers", "4 channels", "keys zipf(1.1)/1000", "500.0",
        "50.00%", "1.50ms", "5.00ms", "DEADLINE_EXCEEDED=7 UNAVAILABLE=3",
        "executions/call=0.250"}) {
    EXPECT_TRUE(absl::StrContains(text, part)) << part << " in\n" << text;
  }
}

}  // namespace
}  // namespace bench
}  // namespace singleflight
