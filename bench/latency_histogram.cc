#include "bench/latency_histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "bench/atomic_bounds.h"

namespace singleflight {
namespace bench {

LatencyHistogram::LatencyHistogram()
    : min_(std::numeric_limits<uint64_t>::max()) {
  for (std::atomic<uint64_t>& bucket : buckets_) {
    bucket.store(0, std::memory_order_relaxed);
  }
}

int LatencyHistogram::BucketOf(uint64_t value) {
  int top_bit = value == 0 ? 0 : 63 - __builtin_clzll(value);
  int group = std::max(0, top_bit - kSubBucketBits);
  return static_cast<int>(group * kSubBuckets + (value >> group));
}

uint64_t LatencyHistogram::MidpointOf(int index) {
  int group = index < static_cast<int>(2 * kSubBuckets)
                  ? 0
                  : static_cast<int>(index / kSubBuckets) - 1;
  uint64_t lower = (index - group * kSubBuckets) << group;
  uint64_t width = uint64_t{1} << group;
  return lower + (width - 1) / 2;
}

void LatencyHistogram::Record(uint64_t value) {
  buckets_[BucketOf(value)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  LowerTo(min_, value);
  RaiseTo(max_, value);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count() == 0) return;
  for (int i = 0; i < kBuckets; ++i) {
    uint64_t n = other.buckets_[i].load(std::memory_order_relaxed);
    if (n != 0) buckets_[i].fetch_add(n, std::memory_order_relaxed);
  }
  count_.fetch_add(other.count(), std::memory_order_relaxed);
  sum_.fetch_add(other.sum_.load(std::memory_order_relaxed),
                 std::memory_order_relaxed);
  LowerTo(min_, other.min_.load(std::memory_order_relaxed));
  RaiseTo(max_, other.max());
}

uint64_t LatencyHistogram::min() const {
  return count() == 0 ? 0 : min_.load(std::memory_order_relaxed);
}

double LatencyHistogram::Mean() const {
  uint64_t n = count();
  return n == 0 ? 0.0
                : static_cast<double>(sum_.load(std::memory_order_relaxed)) / n;
}

uint64_t LatencyHistogram::Percentile(double q) const {
  uint64_t n = count();
  if (n == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  uint64_t rank = std::max<uint64_t>(1, std::ceil(q * n));
  if (rank == 1) return min();
  if (rank >= n) return max();
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[i].load(std::memory_order_relaxed);
    if (seen >= rank) return std::clamp(MidpointOf(i), min(), max());
  }
  return max();
}

}  // namespace bench
}  // namespace singleflight
