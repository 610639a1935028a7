#ifndef SINGLEFLIGHT_CORE_FETCHER_URI_H_
#define SINGLEFLIGHT_CORE_FETCHER_URI_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace singleflight {

// A fetcher URI taken apart: `scheme:target?query`. For fetchers that take
// settings (echo, plugin), the query is `name=value` pairs separated by '&';
// for an HTTP origin it is simply part of the origin's URL.
// For example `echo:?delay=100ms` has scheme "echo", target "" and query
// "delay=100ms".
struct FetcherUri {
  using Settings = absl::flat_hash_map<std::string, std::string>;

  std::string text;    // The whole URI, as given.
  std::string scheme;  // Lower case, without ':'.
  std::string target;  // Between "scheme:" and '?'.
  std::string query;   // After '?', or empty.

  // Fails with INVALID_ARGUMENT if `text` has no scheme.
  static absl::StatusOr<FetcherUri> Parse(absl::string_view text);

  // The query as settings. Fails with INVALID_ARGUMENT if a setting is not
  // name=value, is given twice, or holds a NUL byte.
  absl::StatusOr<Settings> ParseSettings() const;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_FETCHER_URI_H_
