#ifndef SINGLEFLIGHT_TESTS_FUZZ_EXAMPLE_PLUGIN_H_
#define SINGLEFLIGHT_TESTS_FUZZ_EXAMPLE_PLUGIN_H_

#include <dlfcn.h>

#include "tests/fuzz/fuzz_check.h"

namespace singleflight {

// Keeps the example plugin (SF_PLUGIN_DIR) mapped for the whole run, for the
// targets that load it: a fetcher's dlclose() would otherwise unmap the
// plugin's coverage counters, which libFuzzer still reads. Call from
// LLVMFuzzerInitialize.
inline void KeepExamplePluginLoaded() {
  FuzzCheck(dlopen(SF_PLUGIN_DIR "/libsf_example_plugin.so",
                   RTLD_NOW | RTLD_NODELETE) != nullptr,
            "the example plugin loads");
}

}  // namespace singleflight

#endif  // SINGLEFLIGHT_TESTS_FUZZ_EXAMPLE_PLUGIN_H_
