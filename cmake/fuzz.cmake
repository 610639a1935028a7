# The compile flags of a libFuzzer build (-DSF_FUZZ=ON, clang only):
#   CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DSF_FUZZ=ON
#   cmake --build build-fuzz --target sf_fuzzers
# scripts/fuzz.sh does both and runs every target; the targets themselves
# are in tests/fuzz/CMakeLists.txt.
#
# Every project library of this build is compiled with libFuzzer's coverage
# instrumentation, AddressSanitizer, UBSan and clang's -Wthread-safety
# (warnings for now). Included by the root CMakeLists.txt before any folder,
# so that every folder's targets get these flags.
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
