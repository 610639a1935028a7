#include "core/cancellation.h"

#include "gtest/gtest.h"

namespace singleflight {
namespace {

TEST(CancellationSignalTest, RunsCallbacksOnceWhenCancelled) {
  CancellationSignal signal;
  int runs = 0;
  signal.OnCancel([&] { ++runs; });
  signal.OnCancel([&] { ++runs; });
  EXPECT_FALSE(signal.IsCancelled());
  signal.Cancel();
  EXPECT_TRUE(signal.IsCancelled());
  EXPECT_EQ(runs, 2);
  signal.Cancel();
  EXPECT_EQ(runs, 2);
}

TEST(CancellationSignalTest, LateCallbackRunsAtOnce) {
  CancellationSignal signal;
  signal.Cancel();
  bool ran = false;
  signal.OnCancel([&] { ran = true; });
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace singleflight
