#include "core/waiter_list.h"

#include <functional>
#include <vector>

#include "gtest/gtest.h"

namespace singleflight {
namespace {

using List = WaiterList<std::function<void(int)>>;

std::function<void(int)> Recorder(std::vector<int>& seen, int name) {
  return [&seen, name](int value) { seen.push_back(name * 100 + value); };
}

TEST(WaiterListTest, FirstWaiterHasTheFirstIdAndAllAreTaken) {
  List list;
  std::vector<int> seen;
  EXPECT_EQ(list.Add(Recorder(seen, 1)), List::kFirstId);
  list.Add(Recorder(seen, 2));
  list.Add(Recorder(seen, 3));
  EXPECT_EQ(list.size(), 3u);
  std::vector<uint64_t> ids;
  list.TakeAll([&](uint64_t id, std::function<void(int)>& waiter) {
    ids.push_back(id);
    waiter(7);
  });
  EXPECT_EQ(seen, (std::vector<int>{107, 207, 307}));
  EXPECT_EQ(ids.front(), List::kFirstId);
  EXPECT_TRUE(list.empty());
}

TEST(WaiterListTest, RemovedWaitersAreNotCalledAndTheirSlotsAreReused) {
  List list;
  std::vector<int> seen;
  uint64_t first = list.Add(Recorder(seen, 1));
  uint64_t second = list.Add(Recorder(seen, 2));
  std::function<void(int)> removed = list.Remove(second);
  ASSERT_NE(removed, nullptr);
  removed(1);
  EXPECT_EQ(list.Remove(second), nullptr);       // Only once.
  uint64_t third = list.Add(Recorder(seen, 3));  // In the second's slot.
  EXPECT_NE(third, second);
  EXPECT_EQ(list.Remove(second), nullptr);  // An old id never takes a new one.
  EXPECT_EQ(list.size(), 2u);
  list.TakeAll([](uint64_t, std::function<void(int)>& waiter) { waiter(9); });
  EXPECT_EQ(seen, (std::vector<int>{201, 109, 309}));
  EXPECT_EQ(list.Remove(first), nullptr);  // Taken.
  EXPECT_EQ(list.Remove(12345), nullptr);  // Never there.
}

}  // namespace
}  // namespace singleflight
