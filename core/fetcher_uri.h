#ifndef SINGLEFLIGHT_CORE_FETCHER_URI_H_
#define SINGLEFLIGHT_CORE_FETCHER_URI_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace singleflight {

// A fetcher URI taken apart: `scheme:rest`, where the query of `rest`
// (after '?') holds `name=value` settings separated by '&'.
// For example `echo:?delay=100ms` has scheme "echo", target "" and
// params {delay: 100ms}.
struct FetcherUri {
  std::string text;    // The whole URI, as given.
  std::string scheme;  // Lower case, without ':'.
  std::string target;  // Between "scheme:" and '?'.
  absl::flat_hash_map<std::string, std::string> params;

  // Fails with INVALID_ARGUMENT if `text` has no scheme, or a setting is
  // malformed or repeated.
  static absl::StatusOr<FetcherUri> Parse(absl::string_view text);
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_FETCHER_URI_H_
