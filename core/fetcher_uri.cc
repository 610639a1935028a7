#include "core/fetcher_uri.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace singleflight {

absl::StatusOr<FetcherUri> FetcherUri::Parse(absl::string_view text) {
  FetcherUri uri;
  uri.text = std::string(text);
  size_t colon = text.find(':');
  if (colon == 0 || colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("fetcher URI \"", text, "\" has no scheme (like echo:)"));
  }
  absl::string_view scheme = text.substr(0, colon);
  for (char c : scheme) {
    if (!absl::ascii_isalnum(c) && c != '+' && c != '-' && c != '.') {
      return absl::InvalidArgumentError(
          absl::StrCat("fetcher URI \"", text, "\" has a malformed scheme"));
    }
  }
  uri.scheme = absl::AsciiStrToLower(scheme);
  absl::string_view rest = text.substr(colon + 1);
  size_t question = rest.find('?');
  uri.target = std::string(rest.substr(0, question));
  if (question != absl::string_view::npos) {
    uri.query = std::string(rest.substr(question + 1));
  }
  return uri;
}

absl::StatusOr<FetcherUri::Settings> FetcherUri::ParseSettings() const {
  Settings settings;
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> setting =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (setting.first.empty() || pair.find('=') == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("fetcher URI \"", text,
                                                     "\": setting \"", pair,
                                                     "\" is not name=value"));
    }
    if (pair.find('\0') != absl::string_view::npos) {
      // A C string would cut it short: two names could become one.
      return absl::InvalidArgumentError(
          absl::StrCat("fetcher URI \"", text, "\": setting \"",
                       absl::CHexEscape(pair), "\" holds a NUL byte"));
    }
    if (!settings.insert(setting).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("fetcher URI \"", text, "\": setting \"", setting.first,
                       "\" is given twice"));
    }
  }
  return settings;
}

}  // namespace singleflight
