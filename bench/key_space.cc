#include "bench/key_space.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace singleflight {
namespace bench {

absl::StatusOr<KeySpace> KeySpace::Create(absl::string_view distribution,
                                          uint64_t key_count, double zipf_s,
                                          std::string prefix) {
  if (key_count < 1) {
    return absl::InvalidArgumentError("--key_count must be at least 1");
  }
  if (distribution == "hot") {
    return KeySpace(Distribution::kHot, 1, std::nullopt, std::move(prefix),
                    "hot");
  }
  if (distribution == "uniform") {
    return KeySpace(Distribution::kUniform, key_count, std::nullopt,
                    std::move(prefix), absl::StrCat("uniform/", key_count));
  }
  if (distribution == "zipf") {
    if (key_count > kMaxZipfKeys) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--keys=zipf takes at most ", kMaxZipfKeys, " keys (--key_count)"));
    }
    if (!(zipf_s >= 0)) {
      return absl::InvalidArgumentError("--zipf_s must be >= 0");
    }
    return KeySpace(Distribution::kZipf, key_count,
                    ZipfDistribution(key_count, zipf_s), std::move(prefix),
                    absl::StrCat("zipf(", zipf_s, ")/", key_count));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--keys must be hot, uniform or zipf, not \"", distribution, "\""));
}

KeySpace::KeySpace(Distribution distribution, uint64_t key_count,
                   std::optional<ZipfDistribution> zipf, std::string prefix,
                   std::string description)
    : distribution_(distribution),
      key_count_(key_count),
      zipf_(std::move(zipf)),
      prefix_(std::move(prefix)),
      description_(std::move(description)) {}

uint64_t KeySpace::Sample(std::mt19937_64& rng) const {
  switch (distribution_) {
    case Distribution::kHot:
      return 0;
    case Distribution::kUniform:
      return std::uniform_int_distribution<uint64_t>(0, key_count_ - 1)(rng);
    case Distribution::kZipf:
      return (*zipf_)(rng);
  }
  return 0;
}

std::string KeySpace::Key(uint64_t index) const {
  return absl::StrCat(prefix_, index);
}

}  // namespace bench
}  // namespace singleflight
