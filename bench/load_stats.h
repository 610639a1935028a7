#ifndef SINGLEFLIGHT_BENCH_LOAD_STATS_H_
#define SINGLEFLIGHT_BENCH_LOAD_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "bench/latency_histogram.h"

namespace singleflight {
namespace bench {

// What the measured calls of a load run came to: calls by status code
// (google.rpc numbering), shared replies, and the latency of successful
// calls.
//
// Thread-safe and lock-free, like LatencyHistogram.
class LoadStats {
 public:
  static constexpr int kCodes = 17;  // OK .. UNAUTHENTICATED.

  LoadStats() = default;
  LoadStats(const LoadStats&) = delete;
  LoadStats& operator=(const LoadStats&) = delete;

  // One call that ended with `code` (out-of-range codes count as UNKNOWN)
  // after `latency_ns`, at `completed_ns` on the run's clock.
  void Record(int code, bool shared, uint64_t latency_ns,
              uint64_t completed_ns);

  // REQUIRES: &other != this.
  void Merge(const LoadStats& other);

  uint64_t calls() const;
  uint64_t with_code(int code) const {
    return codes_[code].load(std::memory_order_relaxed);
  }
  uint64_t shared() const { return shared_.load(std::memory_order_relaxed); }
  // When the last call ended, on the run's clock; 0 if none did.
  uint64_t last_completed_ns() const {
    return last_completed_ns_.load(std::memory_order_relaxed);
  }
  // Of OK calls only.
  const LatencyHistogram& latency() const { return latency_; }

 private:
  LatencyHistogram latency_;
  std::array<std::atomic<uint64_t>, kCodes> codes_{};
  std::atomic<uint64_t> shared_{0};
  std::atomic<uint64_t> last_completed_ns_{0};
};

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_LOAD_STATS_H_
