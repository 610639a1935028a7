#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/log_rate_limiter.h"

namespace singleflight {
namespace {

constexpr absl::Duration kWindow = absl::Seconds(1);

TEST(LogRateLimiterTest, LetsTheFirstLinesOfAWindowThrough) {
  LogRateLimiter limiter(3, kWindow);
  absl::Time now = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 3; ++i) {
    LogRateLimiter::Decision decision = limiter.Admit("grpc", now);
    EXPECT_TRUE(decision.log) << "line " << i;
    EXPECT_EQ(decision.suppressed, 0);
  }
  EXPECT_FALSE(limiter.Admit("grpc", now).log);
}

TEST(LogRateLimiterTest, ReportsTheLinesDroppedWithTheNextOneLogged) {
  LogRateLimiter limiter(2, kWindow);
  absl::Time start = absl::FromUnixSeconds(1000);
  int logged = 0;
  for (int i = 0; i < 1000; ++i) {
    if (limiter.Admit("protobuf", start + absl::Microseconds(i)).log) ++logged;
  }
  EXPECT_EQ(logged, 2);

  LogRateLimiter::Decision next =
      limiter.Admit("protobuf", start + kWindow + absl::Milliseconds(1));
  EXPECT_TRUE(next.log);
  EXPECT_EQ(next.suppressed, 998);
  // Reported once only.
  EXPECT_EQ(limiter.Admit("protobuf", start + kWindow + absl::Milliseconds(2))
                .suppressed,
            0);
}

// Found in review: after the clock stepped back, no window ever ended.
TEST(LogRateLimiterTest, AClockSteppedBackStartsANewWindow) {
  LogRateLimiter limiter(1, kWindow);
  absl::Time now = absl::FromUnixSeconds(10000);
  EXPECT_TRUE(limiter.Admit("grpc", now).log);
  EXPECT_FALSE(limiter.Admit("grpc", now).log);
  EXPECT_TRUE(limiter.Admit("grpc", now - absl::Hours(1)).log);
}

TEST(LogRateLimiterTest, CountsEachSourceApart) {
  LogRateLimiter limiter(1, kWindow);
  absl::Time now = absl::FromUnixSeconds(1000);
  EXPECT_TRUE(limiter.Admit("protobuf", now).log);
  EXPECT_FALSE(limiter.Admit("protobuf", now).log);
  EXPECT_TRUE(limiter.Admit("grpc", now).log);
}

TEST(LogRateLimiterTest, AWindowStartsAtItsFirstLine) {
  LogRateLimiter limiter(1, kWindow);
  absl::Time start = absl::FromUnixSeconds(1000);
  EXPECT_TRUE(limiter.Admit("grpc", start).log);
  EXPECT_FALSE(limiter.Admit("grpc", start + absl::Milliseconds(999)).log);
  EXPECT_TRUE(limiter.Admit("grpc", start + kWindow).log);
}

}  // namespace
}  // namespace singleflight
