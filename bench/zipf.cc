#include "bench/zipf.h"

#include <algorithm>
#include <cmath>

namespace singleflight {
namespace bench {

ZipfDistribution::ZipfDistribution(uint64_t n, double s) : cdf_(n) {
  double total = 0;
  for (uint64_t k = 0; k < n; ++k) {
    total += std::pow(static_cast<double>(k + 1), -s);
    cdf_[k] = total;
  }
  for (double& p : cdf_) p /= total;
  cdf_.back() = 1.0;
}

uint64_t ZipfDistribution::operator()(std::mt19937_64& rng) const {
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  // The first rank whose cumulative probability exceeds u. (libstdc++ may
  // round u up to 1.0, which no rank exceeds: that is the last rank.)
  uint64_t rank = std::upper_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin();
  return std::min<uint64_t>(rank, cdf_.size() - 1);
}

}  // namespace bench
}  // namespace singleflight
