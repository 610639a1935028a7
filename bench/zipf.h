#ifndef SINGLEFLIGHT_BENCH_ZIPF_H_
#define SINGLEFLIGHT_BENCH_ZIPF_H_

#include <cstdint>
#include <random>
#include <vector>

namespace singleflight {
namespace bench {

// Zipf's law over ranks 0..n-1: rank k is drawn with probability
// proportional to 1 / (k + 1)^s, so rank 0 is the hottest. Sampling is a
// binary search in a cumulative distribution computed once (8 bytes a rank).
//
// Thread-safe: sampling only reads; each thread brings its own generator.
class ZipfDistribution {
 public:
  // REQUIRES: n >= 1, s >= 0.
  ZipfDistribution(uint64_t n, double s);

  uint64_t operator()(std::mt19937_64& rng) const;

  uint64_t n() const { return cdf_.size(); }

 private:
  // cdf_[k]: the probability of a rank <= k; the last is exactly 1.
  std::vector<double> cdf_;
};

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_ZIPF_H_
