#include "core/concurrency_limiter.h"

#include <vector>

#include "gtest/gtest.h"

namespace singleflight {
namespace {

TEST(ConcurrencyLimiterTest, RunsUpToTheLimitAndQueuesTheRest) {
  ConcurrencyLimiter limiter(2, 2);
  std::vector<int> started;
  auto task = [&](int n) {
    return [&started, n] {
      started.push_back(n);
      return true;
    };
  };
  EXPECT_TRUE(limiter.Acquire(task(1)));
  EXPECT_TRUE(limiter.Acquire(task(2)));
  EXPECT_TRUE(limiter.Acquire(task(3)));
  EXPECT_TRUE(limiter.Acquire(task(4)));
  EXPECT_FALSE(limiter.Acquire(task(5)));  // Queue full.
  EXPECT_EQ(started, (std::vector<int>{1, 2}));
  EXPECT_EQ(limiter.running(), 2);
  EXPECT_EQ(limiter.queued(), 2);

  limiter.Release();
  EXPECT_EQ(started, (std::vector<int>{1, 2, 3}));
  limiter.Release();
  limiter.Release();
  limiter.Release();
  EXPECT_EQ(started, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(limiter.running(), 0);
  EXPECT_EQ(limiter.queued(), 0);
}

TEST(ConcurrencyLimiterTest, UnwantedTasksPassTheSlotOn) {
  ConcurrencyLimiter limiter(1, 10);
  int ran = 0;
  EXPECT_TRUE(limiter.Acquire([&] { return ++ran > 0; }));
  EXPECT_TRUE(limiter.Acquire([&] { return false; }));  // Cancelled.
  EXPECT_TRUE(limiter.Acquire([&] { return false; }));  // Cancelled.
  EXPECT_TRUE(limiter.Acquire([&] { return ++ran > 0; }));
  limiter.Release();
  EXPECT_EQ(ran, 2);
  EXPECT_EQ(limiter.running(), 1);
  EXPECT_EQ(limiter.queued(), 0);
  limiter.Release();
  EXPECT_EQ(limiter.running(), 0);
}

TEST(ConcurrencyLimiterTest, ZeroQueueRefusesAtOnce) {
  ConcurrencyLimiter limiter(1, 0);
  EXPECT_TRUE(limiter.Acquire([] { return true; }));
  EXPECT_FALSE(limiter.Acquire([] { return true; }));
}

}  // namespace
}  // namespace singleflight
