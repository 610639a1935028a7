#include "core/thread_pool.h"

#include <atomic>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace {

TEST(ThreadPoolTest, RunsEveryQueuedTaskBeforeDestruction) {
  std::atomic<int> runs{0};
  {
    ThreadPool pool(2, 1000);
    for (int i = 0; i < 100; ++i) {
      ASSERT_TRUE(pool.TrySubmit([&] { runs++; }));
    }
  }
  EXPECT_EQ(runs.load(), 100);
}

TEST(ThreadPoolTest, RefusesTasksBeyondTheQueueBound) {
  absl::Notification started, release;  // Outlive the pool's thread.
  ThreadPool pool(1, 1);
  // Before the pool joins its thread, even when an assertion fails.
  absl::Cleanup release_task = [&release] {
    if (!release.HasBeenNotified()) release.Notify();
  };
  ASSERT_TRUE(pool.TrySubmit([&] {
    started.Notify();
    release.WaitForNotification();
  }));
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(pool.TrySubmit([] {}));  // Fills the queue.
  bool ran = false;
  absl::AnyInvocable<void()> refused = [&] { ran = true; };
  EXPECT_FALSE(pool.TrySubmit(std::move(refused)));
  ASSERT_TRUE(refused != nullptr);  // Left untouched.
  release.Notify();
  refused();
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace singleflight
