# libFuzzer targets (tests/fuzz/), built with -DSF_FUZZ=ON by clang only:
#   CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DSF_FUZZ=ON
#   cmake --build build-fuzz --target sf_fuzzers
# scripts/fuzz.sh does both and runs every target.
#
# Every project library of this build is compiled with libFuzzer's coverage
# instrumentation, AddressSanitizer, UBSan and clang's -Wthread-safety
# (warnings for now). The flags go into CMAKE_<LANG>_FLAGS, which CMake reads
# once the root CMakeLists.txt is done: this file, included at its end, thus
# reaches targets defined before it.
option(SF_FUZZ "Build the libFuzzer targets of tests/fuzz (clang only)" OFF)
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "SF_FUZZ needs clang (CC=clang-14 CXX=clang++-14)")
endif()
if(SF_SANITIZER OR NOT SF_WITH_GRPC)
  message(FATAL_ERROR "SF_FUZZ brings its own sanitizers and needs gRPC: "
                      "leave SF_SANITIZER empty and SF_WITH_GRPC on")
endif()

set(SF_FUZZ_FLAGS "-fsanitize=fuzzer-no-link,address,undefined \
-fno-sanitize-recover=undefined -fno-omit-frame-pointer")
string(APPEND CMAKE_C_FLAGS " ${SF_FUZZ_FLAGS}")
string(APPEND CMAKE_CXX_FLAGS " ${SF_FUZZ_FLAGS} -Wthread-safety")
string(APPEND CMAKE_EXE_LINKER_FLAGS " -fsanitize=address,undefined")
string(APPEND CMAKE_SHARED_LINKER_FLAGS " -fsanitize=address,undefined")

# All fuzz targets: `cmake --build build-fuzz --target sf_fuzzers`.
add_custom_target(sf_fuzzers)

# Adds tests/fuzz/NAME.cc as a libFuzzer executable linked to LIBRARIES.
function(sf_fuzzer name)
  add_executable(${name} tests/fuzz/${name}.cc)
  target_link_libraries(${name} PRIVATE ${ARGN})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  target_compile_definitions(${name} PRIVATE
    SF_PLUGIN_DIR="${CMAKE_BINARY_DIR}/lib")
  add_dependencies(sf_fuzzers ${name})
endfunction()

sf_fuzzer(fetcher_uri_fuzzer sf_fetchers)
sf_fuzzer(plugin_settings_fuzzer sf_fetchers)
add_dependencies(plugin_settings_fuzzer sf_example_plugin)
sf_fuzzer(config_fuzzer sf_server)
sf_fuzzer(http_response_fuzzer sf_fetchers absl::synchronization)
sf_fuzzer(stream_fuzzer sf_server)
sf_fuzzer(request_fuzzer sf_server)
