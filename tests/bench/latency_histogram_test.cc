#include "bench/latency_histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace singleflight {
namespace bench {
namespace {

constexpr double kQuantiles[] = {0.5, 0.9, 0.99, 0.999};

// The exact q-quantile as Percentile defines it: the smallest value v with
// at least q of the values <= v.
uint64_t ExactPercentile(std::vector<uint64_t> values, double q) {
  std::sort(values.begin(), values.end());
  size_t rank = std::max<size_t>(1, std::ceil(q * values.size()));
  return values[rank - 1];
}

void ExpectWithinOnePercent(const LatencyHistogram& histogram,
                            const std::vector<uint64_t>& values) {
  for (double q : kQuantiles) {
    double exact = ExactPercentile(values, q);
    EXPECT_NEAR(histogram.Percentile(q), exact, exact * 0.01) << "q=" << q;
  }
}

TEST(LatencyHistogramTest, EmptyReportsZeros) {
  LatencyHistogram histogram;
  EXPECT_EQ(histogram.count(), 0u);
  EXPECT_EQ(histogram.min(), 0u);
  EXPECT_EQ(histogram.max(), 0u);
  EXPECT_EQ(histogram.Mean(), 0.0);
  EXPECT_EQ(histogram.Percentile(0.99), 0u);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram histogram;
  for (uint64_t v = 0; v < 200; ++v) histogram.Record(v);
  EXPECT_EQ(histogram.Percentile(0.0), 0u);
  EXPECT_EQ(histogram.Percentile(0.5), 99u);
  EXPECT_EQ(histogram.Percentile(0.9), 179u);
  EXPECT_EQ(histogram.Percentile(1.0), 199u);
  EXPECT_EQ(histogram.min(), 0u);
  EXPECT_EQ(histogram.max(), 199u);
  EXPECT_DOUBLE_EQ(histogram.Mean(), 99.5);
}

TEST(LatencyHistogramTest, UniformWithinOnePercent) {
  LatencyHistogram histogram;
  std::vector<uint64_t> values;
  for (uint64_t v = 1000; v <= 10'000'000; v += 37) {
    histogram.Record(v);
    values.push_back(v);
  }
  ExpectWithinOnePercent(histogram, values);
  EXPECT_EQ(histogram.max(), values.back());
  EXPECT_EQ(histogram.min(), 1000u);
}

TEST(LatencyHistogramTest, ExponentialWithinOnePercent) {
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> latency(1.0 / 250'000);  // 250us.
  LatencyHistogram histogram;
  std::vector<uint64_t> values;
  for (int i = 0; i < 200'000; ++i) {
    values.push_back(static_cast<uint64_t>(latency(rng)) + 1);
    histogram.Record(values.back());
  }
  ExpectWithinOnePercent(histogram, values);
}

TEST(LatencyHistogramTest, LogNormalOverManyDecadesWithinOnePercent) {
  std::mt19937_64 rng(11);
  // Median ~160us, with a tail into seconds.
  std::lognormal_distribution<double> latency(12.0, 2.0);
  LatencyHistogram histogram;
  std::vector<uint64_t> values;
  for (int i = 0; i < 200'000; ++i) {
    values.push_back(static_cast<uint64_t>(latency(rng)));
    histogram.Record(values.back());
  }
  ExpectWithinOnePercent(histogram, values);
  EXPECT_EQ(histogram.max(), *std::max_element(values.begin(), values.end()));
}

TEST(LatencyHistogramTest, ExtremeValues) {
  LatencyHistogram histogram;
  histogram.Record(std::numeric_limits<uint64_t>::max());
  histogram.Record(uint64_t{1} << 40);
  EXPECT_EQ(histogram.max(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(histogram.Percentile(1.0), std::numeric_limits<uint64_t>::max());
  EXPECT_NEAR(histogram.Percentile(0.5), double(uint64_t{1} << 40),
              double(uint64_t{1} << 40) * 0.01);
}

TEST(LatencyHistogramTest, MergeEqualsRecordingIntoOne) {
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> latency(1.0 / 1'000'000);
  LatencyHistogram first, second, together;
  for (int i = 0; i < 50'000; ++i) {
    uint64_t v = static_cast<uint64_t>(latency(rng));
    (i % 3 == 0 ? first : second).Record(v);
    together.Record(v);
  }
  first.Merge(second);
  EXPECT_EQ(first.count(), together.count());
  EXPECT_EQ(first.min(), together.min());
  EXPECT_EQ(first.max(), together.max());
  EXPECT_DOUBLE_EQ(first.Mean(), together.Mean());
  for (double q : kQuantiles) {
    EXPECT_EQ(first.Percentile(q), together.Percentile(q)) << "q=" << q;
  }
}

TEST(LatencyHistogramTest, MergeOfEmptyChangesNothing) {
  LatencyHistogram histogram, empty;
  histogram.Record(500);
  histogram.Merge(empty);
  EXPECT_EQ(histogram.count(), 1u);
  EXPECT_EQ(histogram.min(), 500u);
  empty.Merge(histogram);
  EXPECT_EQ(empty.min(), 500u);
  EXPECT_EQ(empty.max(), 500u);
}

TEST(LatencyHistogramTest, ConcurrentRecordsAllCount) {
  LatencyHistogram histogram;
  constexpr int kThreads = 4, kEach = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&histogram, t] {
      for (int i = 1; i <= kEach; ++i) histogram.Record(i * 10 + t);
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(histogram.count(), uint64_t{kThreads} * kEach);
  EXPECT_EQ(histogram.min(), 10u);
  EXPECT_EQ(histogram.max(), uint64_t{kEach} * 10 + kThreads - 1);
  EXPECT_NEAR(histogram.Percentile(0.5), kEach * 5.0, kEach * 5.0 * 0.01);
}

}  // namespace
}  // namespace bench
}  // namespace singleflight
