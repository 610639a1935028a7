#include <fstream>

#include "absl/strings/str_cat.h"
#include "core/fetcher.h"

namespace singleflight {

absl::Status CheckBackendTls(const BackendTls& tls) {
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "tls: cert_file and key_file go together: give both or neither");
  }
  for (const std::string* file :
       {&tls.ca_file, &tls.cert_file, &tls.key_file}) {
    if (!file->empty() && !std::ifstream(*file)) {
      return absl::NotFoundError(absl::StrCat("tls: cannot read ", *file));
    }
  }
  return absl::OkStatus();
}

}  // namespace singleflight
