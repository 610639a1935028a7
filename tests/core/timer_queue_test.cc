#include "core/timer_queue.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace {

TEST(TimerQueueTest, RunsCallbacksInTimeOrder) {
  absl::Mutex mu;
  std::vector<int> order;
  absl::Notification last;
  TimerQueue timers;  // Joined before what its callbacks use is destroyed.
  timers.Schedule(absl::Milliseconds(60), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(3);
    last.Notify();
  });
  timers.Schedule(absl::Milliseconds(20), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(2);
  });
  // Scheduled last but due first: must wake the sleeping timer thread.
  timers.Schedule(absl::Milliseconds(1), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(1);
  });
  ASSERT_TRUE(last.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TimerQueueTest, CancelledTimerDoesNotRun) {
  std::atomic<bool> ran{false};
  absl::Notification later;
  TimerQueue timers;
  TimerQueue::TimerId id =
      timers.Schedule(absl::Milliseconds(30), [&] { ran = true; });
  EXPECT_TRUE(timers.Cancel(id));
  EXPECT_FALSE(timers.Cancel(id));
  timers.Schedule(absl::Milliseconds(60), [&] { later.Notify(); });
  ASSERT_TRUE(later.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(ran);
}

TEST(TimerQueueTest, CallbackMayScheduleAndCancel) {
  absl::Notification done;
  TimerQueue timers;
  TimerQueue::TimerId never =
      timers.Schedule(absl::Hours(1), [] { FAIL() << "must not run"; });
  timers.Schedule(absl::ZeroDuration(), [&] {
    EXPECT_TRUE(timers.Cancel(never));
    timers.Schedule(absl::Milliseconds(1), [&] { done.Notify(); });
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(TimerQueueTest, PendingTimersAreDroppedOnDestruction) {
  std::atomic<bool> ran{false};
  {
    TimerQueue timers;
    timers.Schedule(absl::Hours(1), [&] { ran = true; });
  }
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace singleflight
