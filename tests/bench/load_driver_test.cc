#include "bench/load_driver.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>

#include "absl/strings/str_cat.h"
#include "bench/bare_service.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace bench {
namespace {

// RunLoad against BareService, in process.
class LoadDriverTest : public testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    target_ = absl::StrCat("127.0.0.1:", port);
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
    }
  }

  LoadOptions Options(absl::string_view distribution = "uniform") {
    LoadOptions options;
    options.target = target_;
    options.channels = 2;
    options.concurrency = 8;
    options.keys = std::make_shared<const KeySpace>(
        *KeySpace::Create(distribution, 1000, 1.1, "k"));
    options.duration = absl::InfiniteDuration();
    options.connect_timeout = absl::Seconds(5);
    return options;
  }

  BareService service_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
};

void ExpectAllOk(const LoadReport& report, uint64_t calls) {
  EXPECT_EQ(report.calls, calls);
  EXPECT_EQ(report.ok, calls);
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(report.shared, 0u);  // BareService never coalesces.
  EXPECT_GT(report.elapsed_seconds, 0);
  EXPECT_GT(report.latency.p50, 0u);
  EXPECT_LE(report.latency.p50, report.latency.p99);
  EXPECT_LE(report.latency.p999, report.latency.max);
}

TEST_F(LoadDriverTest, UnaryClosedLoopMakesExactlyTheCalls) {
  LoadOptions options = Options();
  options.calls = 500;
  absl::StatusOr<LoadReport> report = RunLoad(options);
  ASSERT_TRUE(report.ok()) << report.status();
  ExpectAllOk(*report, 500);
  EXPECT_EQ(report->mode, "unary");
  EXPECT_EQ(report->keys, "uniform/1000");
  EXPECT_EQ(report->concurrency, 8);
  EXPECT_EQ(report->channels, 2);
}

TEST_F(LoadDriverTest, StreamClosedLoopMakesExactlyTheCalls) {
  LoadOptions options = Options("zipf");
  options.stream = true;
  options.calls = 500;
  options.payload_bytes = 100;
  absl::StatusOr<LoadReport> report = RunLoad(options);
  ASSERT_TRUE(report.ok()) << report.status();
  ExpectAllOk(*report, 500);
  EXPECT_EQ(report->mode, "stream");
}

TEST_F(LoadDriverTest, DurationBoundsTheRun) {
  LoadOptions options = Options("hot");
  options.duration = absl::Milliseconds(300);
  absl::Time start = absl::Now();
  absl::StatusOr<LoadReport> report = RunLoad(options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_GT(report->calls, 0u);
  EXPECT_EQ(report->ok, report->calls);
  EXPECT_NEAR(report->elapsed_seconds, 0.3, 0.2);
}

TEST_F(LoadDriverTest, OpenLoopKeepsToTheRate) {
  for (bool stream : {false, true}) {
    LoadOptions options = Options();
    options.stream = stream;
    options.rate = 1000;
    options.concurrency = 100;
    options.duration = absl::Milliseconds(500);
    absl::StatusOr<LoadReport> report = RunLoad(options);
    ASSERT_TRUE(report.ok()) << report.status();
    // 500 calls are due; a loaded machine may start a few late.
    EXPECT_LE(report->calls, 500u) << "stream=" << stream;
    EXPECT_GE(report->calls, 400u) << "stream=" << stream;
    EXPECT_EQ(report->ok, report->calls);
    EXPECT_EQ(report->rate, 1000);
  }
}

TEST_F(LoadDriverTest, OpenLoopCallBound) {
  LoadOptions options = Options();
  options.rate = 5000;
  options.calls = 200;
  absl::StatusOr<LoadReport> report = RunLoad(options);
  ASSERT_TRUE(report.ok()) << report.status();
  ExpectAllOk(*report, 200);
}

TEST_F(LoadDriverTest, WarmupCallsAreNotCounted) {
  LoadOptions options = Options();
  options.warmup = absl::Milliseconds(200);
  options.calls = 100;
  std::atomic<int> hook_calls{0};
  options.on_measure_start = [&hook_calls] { ++hook_calls; };
  absl::StatusOr<LoadReport> report = RunLoad(options);
  ASSERT_TRUE(report.ok()) << report.status();
  ExpectAllOk(*report, 100);
  EXPECT_EQ(hook_calls, 1);
}

TEST_F(LoadDriverTest, MeasureStartHookRunsWithoutWarmup) {
  LoadOptions options = Options();
  options.calls = 10;
  int hook_calls = 0;
  options.on_measure_start = [&hook_calls] { ++hook_calls; };
  ASSERT_TRUE(RunLoad(options).ok());
  EXPECT_EQ(hook_calls, 1);
}

TEST_F(LoadDriverTest, RejectsBadOptions) {
  LoadOptions unbounded = Options();
  EXPECT_EQ(RunLoad(unbounded).status().code(),
            absl::StatusCode::kInvalidArgument);
  LoadOptions no_callers = Options();
  no_callers.calls = 10;
  no_callers.concurrency = 0;
  EXPECT_EQ(RunLoad(no_callers).status().code(),
            absl::StatusCode::kInvalidArgument);
  LoadOptions no_deadline = Options();
  no_deadline.calls = 10;
  no_deadline.deadline = absl::InfiniteDuration();
  EXPECT_EQ(RunLoad(no_deadline).status().code(),
            absl::StatusCode::kInvalidArgument);
  LoadOptions negative_rate = Options();
  negative_rate.calls = 10;
  negative_rate.rate = -1;
  EXPECT_EQ(RunLoad(negative_rate).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LoadDriverTest, UnreachableTargetIsUnavailable) {
  LoadOptions options = Options();
  options.calls = 10;
  server_->Shutdown();
  server_.reset();
  options.connect_timeout = absl::Milliseconds(300);
  EXPECT_EQ(RunLoad(options).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace bench
}  // namespace singleflight
