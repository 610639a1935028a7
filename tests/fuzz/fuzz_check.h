#ifndef SINGLEFLIGHT_TESTS_FUZZ_FUZZ_CHECK_H_
#define SINGLEFLIGHT_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

namespace singleflight {

// The fuzz targets' assertion: when `condition` is false, names the broken
// invariant and aborts, which libFuzzer reports as a crash with the input.
// Unlike assert(), it stays on in every build type.
inline void FuzzCheck(bool condition, const char* invariant) {
  if (!condition) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", invariant);
    std::abort();
  }
}

}  // namespace singleflight

#endif  // SINGLEFLIGHT_TESTS_FUZZ_FUZZ_CHECK_H_
