#include "fetchers/cache_control.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace singleflight {
namespace {

// A delta-seconds value ("60" or "\"60\""), or nothing.
std::optional<absl::Duration> Seconds(absl::string_view value) {
  absl::ConsumePrefix(&value, "\"");
  absl::ConsumeSuffix(&value, "\"");
  uint64_t seconds = 0;
  if (!absl::SimpleAtoi(value, &seconds)) return std::nullopt;
  // RFC 9111: larger values mean "a very long time".
  constexpr uint64_t kMaxSeconds = uint64_t{1} << 31;
  return absl::Seconds(static_cast<int64_t>(std::min(seconds, kMaxSeconds)));
}

}  // namespace

CacheDirectives ParseCacheControl(absl::string_view header) {
  CacheDirectives directives;
  std::optional<absl::Duration> max_age;
  std::optional<absl::Duration> shared_max_age;
  bool no_cache = false;
  for (absl::string_view part : absl::StrSplit(header, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    absl::string_view name = part;
    absl::string_view value;
    size_t equals = part.find('=');
    if (equals != absl::string_view::npos) {
      name = absl::StripAsciiWhitespace(part.substr(0, equals));
      value = absl::StripAsciiWhitespace(part.substr(equals + 1));
    }
    std::string lower = absl::AsciiStrToLower(name);
    if (lower == "no-store" || lower == "private") {
      directives.no_store = true;
    } else if (lower == "no-cache") {
      no_cache = true;
    } else if (lower == "max-age") {
      max_age = Seconds(value);
    } else if (lower == "s-maxage") {
      shared_max_age = Seconds(value);
    } else if (lower == "stale-while-revalidate") {
      directives.stale_while_revalidate = Seconds(value);
    } else if (lower == "stale-if-error") {
      directives.stale_if_error = Seconds(value);
    }
  }
  directives.max_age = shared_max_age.has_value() ? shared_max_age : max_age;
  if (no_cache) directives.max_age = absl::ZeroDuration();
  return directives;
}

}  // namespace singleflight
