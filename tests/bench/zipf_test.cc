#include "bench/zipf.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace singleflight {
namespace bench {
namespace {

// How often each rank comes up in `draws` samples.
std::vector<double> Frequencies(const ZipfDistribution& zipf, int draws,
                                uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> counts(zipf.n());
  for (int i = 0; i < draws; ++i) {
    uint64_t rank = zipf(rng);
    EXPECT_LT(rank, zipf.n());
    if (rank < zipf.n()) ++counts[rank];
  }
  for (double& count : counts) count /= draws;
  return counts;
}

TEST(ZipfDistributionTest, FrequenciesFollowOneOverKToTheS) {
  constexpr double kS = 1.1;
  constexpr uint64_t kN = 1000;
  ZipfDistribution zipf(kN, kS);
  std::vector<double> frequency = Frequencies(zipf, 1'000'000, 42);
  double normalizer = 0;
  for (uint64_t k = 1; k <= kN; ++k) normalizer += std::pow(k, -kS);
  // The hottest ranks are drawn often enough to be within 3%.
  for (uint64_t k = 0; k < 10; ++k) {
    double expected = std::pow(k + 1, -kS) / normalizer;
    EXPECT_NEAR(frequency[k], expected, expected * 0.03) << "rank " << k;
  }
  EXPECT_NEAR(frequency[0] / frequency[1], std::pow(2, kS), 0.05);
  // And the tail, in aggregate.
  double tail = 0, expected_tail = 0;
  for (uint64_t k = 100; k < kN; ++k) {
    tail += frequency[k];
    expected_tail += std::pow(k + 1, -kS) / normalizer;
  }
  EXPECT_NEAR(tail, expected_tail, expected_tail * 0.03);
}

TEST(ZipfDistributionTest, ExponentZeroIsUniform) {
  ZipfDistribution zipf(10, 0.0);
  for (double frequency : Frequencies(zipf, 200'000, 1)) {
    EXPECT_NEAR(frequency, 0.1, 0.005);
  }
}

TEST(ZipfDistributionTest, OneRankAlwaysDrawsIt) {
  ZipfDistribution zipf(1, 1.1);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(zipf(rng), 0u);
}

TEST(ZipfDistributionTest, SameSeedSameDraws) {
  ZipfDistribution zipf(100000, 1.1);
  std::mt19937_64 a(9), b(9);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(zipf(a), zipf(b));
}

}  // namespace
}  // namespace bench
}  // namespace singleflight
