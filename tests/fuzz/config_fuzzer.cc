// Fuzzes the YAML config loader, LoadConfigFile (server/config.h): each input
// is written to one temporary file, reused for every input, and loaded.
// ${SF_FUZZ_VAR} expands to a value; other environment variables may be unset.
//
// Checked: loading never crashes or throws; it fails with INVALID_ARGUMENT
// only, naming the file; a loaded config names where each fetcher came from.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/config.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

// The temporary file, made by LLVMFuzzerInitialize and removed at exit.
std::string* path = nullptr;

void RemoveFile() { unlink(path->c_str()); }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  char name[] = "/tmp/sf_config_fuzzer_XXXXXX.yaml";
  int fd = mkstemps(name, 5);
  singleflight::FuzzCheck(fd >= 0, "mkstemps makes the temporary file");
  close(fd);
  path = new std::string(name);
  atexit(&RemoveFile);
  setenv("SF_FUZZ_VAR", "value", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using singleflight::FuzzCheck;
  FILE* file = fopen(path->c_str(), "wb");
  FuzzCheck(file != nullptr && fwrite(bytes, 1, size, file) == size &&
                fclose(file) == 0,
            "the input is written to the temporary file");

  absl::StatusOr<singleflight::ServerConfig> config =
      singleflight::LoadConfigFile(*path);
  if (!config.ok()) {
    FuzzCheck(config.status().code() == absl::StatusCode::kInvalidArgument,
              "LoadConfigFile fails with INVALID_ARGUMENT only");
    FuzzCheck(absl::StartsWith(config.status().message(), *path + ":"),
              "an error starts with FILE:");
    return 0;
  }
  for (const singleflight::FetcherConfig& fetcher : config->fetchers) {
    FuzzCheck(absl::StartsWith(fetcher.origin, *path + ":"),
              "a fetcher's origin is FILE:LINE");
  }
  return 0;
}
