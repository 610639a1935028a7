#ifndef SINGLEFLIGHT_BENCH_LATENCY_HISTOGRAM_H_
#define SINGLEFLIGHT_BENCH_LATENCY_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstdint>

namespace singleflight {
namespace bench {

// A log-linear histogram of non-negative integers (latencies in
// nanoseconds), in the manner of HdrHistogram: values below 256 have a bucket
// each; above, every power-of-two range is cut into 128 equal buckets, so a
// bucket is never wider than 1/128 of its values and a reported percentile is
// within 0.4% of the true one. The exact minimum, maximum and sum are kept
// too. About 60 KB, whatever the range.
//
// Thread-safe and lock-free: Record and Merge may run concurrently from any
// threads. Readers see every value recorded before the read began; values
// recorded during a read may or may not be counted.
class LatencyHistogram {
 public:
  LatencyHistogram();
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  void Record(uint64_t value);

  // Adds every value recorded in `other` to this histogram.
  // REQUIRES: &other != this.
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // 0 when empty.
  uint64_t min() const;
  uint64_t max() const { return max_.load(std::memory_order_relaxed); }
  double Mean() const;

  // The value at quantile `q` in [0, 1]: the smallest recorded value v such
  // that at least q of all values are <= v, to within 0.4% (the middle of
  // its bucket, kept within [min, max]); exactly min() and max() at the
  // ends. 0 when empty.
  uint64_t Percentile(double q) const;

 private:
  static constexpr int kSubBucketBits = 7;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;
  // Group g >= 1 holds [2^(g + kSubBucketBits), 2^(g + kSubBucketBits + 1))
  // in kSubBuckets buckets; group 0 holds [0, 2 * kSubBuckets) exactly.
  static constexpr int kBuckets = (64 - kSubBucketBits + 1) * kSubBuckets;

  static int BucketOf(uint64_t value);
  // The middle of bucket `index`'s range of values.
  static uint64_t MidpointOf(int index);

  std::array<std::atomic<uint64_t>, kBuckets> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
  std::atomic<uint64_t> min_;
  std::atomic<uint64_t> max_{0};
};

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_LATENCY_HISTOGRAM_H_
