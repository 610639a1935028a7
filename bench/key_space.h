#ifndef SINGLEFLIGHT_BENCH_KEY_SPACE_H_
#define SINGLEFLIGHT_BENCH_KEY_SPACE_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bench/zipf.h"

namespace singleflight {
namespace bench {

// The keys a load run asks for, PREFIX0 .. PREFIX{count-1}, and how often
// each is drawn: `hot` (always PREFIX0: every call can share one flight),
// `uniform`, or `zipf` (PREFIX0 hottest; see ZipfDistribution).
//
// Thread-safe: Sample only reads; each thread brings its own generator.
class KeySpace {
 public:
  // Largest key_count for zipf: its table takes 8 bytes a key.
  static constexpr uint64_t kMaxZipfKeys = 10'000'000;

  // Fails with INVALID_ARGUMENT on an unknown `distribution`, a key_count
  // below 1 (or above kMaxZipfKeys for zipf), or a negative zipf_s.
  static absl::StatusOr<KeySpace> Create(absl::string_view distribution,
                                         uint64_t key_count, double zipf_s,
                                         std::string prefix);

  // The index of the next key to ask for.
  uint64_t Sample(std::mt19937_64& rng) const;

  std::string Key(uint64_t index) const;

  // For reports: "hot", "uniform/100000" or "zipf(1.1)/100000".
  const std::string& description() const { return description_; }

 private:
  enum class Distribution { kHot, kUniform, kZipf };

  KeySpace(Distribution distribution, uint64_t key_count,
           std::optional<ZipfDistribution> zipf, std::string prefix,
           std::string description);

  Distribution distribution_;
  uint64_t key_count_;
  std::optional<ZipfDistribution> zipf_;
  std::string prefix_;
  std::string description_;
};

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_KEY_SPACE_H_
