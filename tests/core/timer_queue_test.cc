#include "core/timer_queue.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace {

// Occupies the timer thread until released, so that tests control what is
// due when it looks again, whatever the machine's load.
class Blocker {
 public:
  explicit Blocker(TimerQueue& timers) {
    timers.Schedule(absl::ZeroDuration(), [this] {
      running_.Notify();
      release_.WaitForNotification();
    });
    running_.WaitForNotification();
  }
  void Release() { release_.Notify(); }

 private:
  absl::Notification running_, release_;
};

TEST(TimerQueueTest, RunsDueCallbacksInTimeOrder) {
  absl::Mutex mu;
  std::vector<int> order;
  absl::Notification last;
  TimerQueue timers;  // Joined before what its callbacks use is destroyed.
  Blocker blocker(timers);
  timers.Schedule(absl::Milliseconds(30), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(3);
    last.Notify();
  });
  timers.Schedule(absl::Milliseconds(20), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(2);
  });
  timers.Schedule(absl::Milliseconds(10), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(1);
  });
  absl::SleepFor(absl::Milliseconds(40));  // All three are due.
  blocker.Release();
  ASSERT_TRUE(last.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TimerQueueTest, EarlierTimerWakesTheSleepingThread) {
  absl::Notification ran;
  TimerQueue timers;
  timers.Schedule(absl::Hours(1), [] {});
  timers.Schedule(absl::Milliseconds(1), [&] { ran.Notify(); });
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(TimerQueueTest, CancelledTimerDoesNotRun) {
  std::atomic<bool> ran{false};
  absl::Notification later;
  TimerQueue timers;
  Blocker blocker(timers);
  TimerQueue::TimerId id =
      timers.Schedule(absl::Milliseconds(1), [&] { ran = true; });
  absl::SleepFor(absl::Milliseconds(5));  // Due, but the thread is busy.
  EXPECT_TRUE(timers.Cancel(id));
  EXPECT_FALSE(timers.Cancel(id));
  timers.Schedule(absl::Milliseconds(1), [&] { later.Notify(); });
  blocker.Release();
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
