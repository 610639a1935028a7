#include "bench/load_stats.h"

#include "bench/atomic_bounds.h"

namespace singleflight {
namespace bench {
namespace {

constexpr int kUnknown = 2;

}  // namespace

void LoadStats::Record(int code, bool shared, uint64_t latency_ns,
                       uint64_t completed_ns) {
  if (code < 0 || code >= kCodes) code = kUnknown;
  codes_[code].fetch_add(1, std::memory_order_relaxed);
  if (code == 0) {
    latency_.Record(latency_ns);
    if (shared) shared_.fetch_add(1, std::memory_order_relaxed);
  }
  RaiseTo(last_completed_ns_, completed_ns);
}

void LoadStats::Merge(const LoadStats& other) {
  latency_.Merge(other.latency_);
  for (int code = 0; code < kCodes; ++code) {
    codes_[code].fetch_add(other.with_code(code), std::memory_order_relaxed);
  }
  shared_.fetch_add(other.shared(), std::memory_order_relaxed);
  RaiseTo(last_completed_ns_, other.last_completed_ns());
}

uint64_t LoadStats::calls() const {
  uint64_t total = 0;
  for (int code = 0; code < kCodes; ++code) total += with_code(code);
  return total;
}

}  // namespace bench
}  // namespace singleflight
