#include "bench/key_space.h"

#include <random>
#include <set>

#include "gtest/gtest.h"

namespace singleflight {
namespace bench {
namespace {

TEST(KeySpaceTest, HotAlwaysDrawsTheFirstKey) {
  absl::StatusOr<KeySpace> keys = KeySpace::Create("hot", 1000, 1.1, "k-");
  ASSERT_TRUE(keys.ok()) << keys.status();
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(keys->Sample(rng), 0u);
  EXPECT_EQ(keys->Key(0), "k-0");
  EXPECT_EQ(keys->description(), "hot");
}

TEST(KeySpaceTest, UniformCoversEveryKey) {
  absl::StatusOr<KeySpace> keys = KeySpace::Create("uniform", 16, 1.1, "");
  ASSERT_TRUE(keys.ok()) << keys.status();
  std::mt19937_64 rng(1);
  std::set<uint64_t> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(keys->Sample(rng));
  EXPECT_EQ(seen.size(), 16u);
  EXPECT_EQ(*seen.rbegin(), 15u);
  EXPECT_EQ(keys->description(), "uniform/16");
}

TEST(KeySpaceTest, ZipfFavoursTheFirstKey) {
  absl::StatusOr<KeySpace> keys = KeySpace::Create("zipf", 1000, 1.1, "z");
  ASSERT_TRUE(keys.ok()) << keys.status();
  std::mt19937_64 rng(1);
  int first = 0, last = 0;
  for (int i = 0; i < 10000; ++i) {
    uint64_t index = keys->Sample(rng);
    first += index == 0;
    last += index == 999;
  }
  // Rank 0 comes up about 17% of the time, rank 999 about 0.008%.
  EXPECT_GT(first, 1000);
  EXPECT_LT(last, 20);
  EXPECT_EQ(keys->Key(7), "z7");
  EXPECT_EQ(keys->description(), "zipf(1.1)/1000");
}

TEST(KeySpaceTest, RejectsBadArguments) {
  EXPECT_EQ(KeySpace::Create("gaussian", 10, 1.1, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KeySpace::Create("uniform", 0, 1.1, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KeySpace::Create("zipf", 10, -1, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KeySpace::Create("zipf", KeySpace::kMaxZipfKeys + 1, 1.1, "")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bench
}  // namespace singleflight
