#ifndef SINGLEFLIGHT_BENCH_ATOMIC_BOUNDS_H_
#define SINGLEFLIGHT_BENCH_ATOMIC_BOUNDS_H_

#include <atomic>
#include <cstdint>

namespace singleflight {
namespace bench {

// Lock-free running minimum and maximum: each lowers (raises) `target` to
// `value` if that is lower (higher). Relaxed: for statistics only.
inline void LowerTo(std::atomic<uint64_t>& target, uint64_t value) {
  uint64_t seen = target.load(std::memory_order_relaxed);
  while (value < seen && !target.compare_exchange_weak(
                             seen, value, std::memory_order_relaxed)) {
  }
}

inline void RaiseTo(std::atomic<uint64_t>& target, uint64_t value) {
  uint64_t seen = target.load(std::memory_order_relaxed);
  while (value > seen && !target.compare_exchange_weak(
                             seen, value, std::memory_order_relaxed)) {
  }
}

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_ATOMIC_BOUNDS_H_
