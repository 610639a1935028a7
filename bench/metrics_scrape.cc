#include "bench/metrics_scrape.h"

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/http_get.h"

namespace singleflight {
namespace bench {
namespace {

bool IsNameChar(char c, bool first) {
  return absl::ascii_isalpha(c) || c == '_' || c == ':' ||
         (!first && absl::ascii_isdigit(c));
}

// Takes a metric or label name off the front of `text`.
absl::string_view ConsumeName(absl::string_view& text) {
  size_t n = 0;
  while (n < text.size() && IsNameChar(text[n], n == 0)) ++n;
  absl::string_view name = text.substr(0, n);
  text.remove_prefix(n);
  return name;
}

// Takes a quoted, escaped label value off the front of `text`.
bool ConsumeLabelValue(absl::string_view& text, std::string& value) {
  if (text.empty() || text.front() != '"') return false;
  for (size_t i = 1; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      text.remove_prefix(i + 1);
      return true;
    }
    if (c == '\\' && i + 1 < text.size()) {
      char escaped = text[++i];
      value.push_back(escaped == 'n' ? '\n' : escaped);
    } else {
      value.push_back(c);
    }
  }
  return false;
}

// Takes `{name="value",...}` off the front of `text`.
bool ConsumeLabels(absl::string_view& text, MetricSample& sample) {
  text.remove_prefix(1);  // '{'
  while (true) {
    text = absl::StripLeadingAsciiWhitespace(text);
    if (!text.empty() && text.front() == '}') {
      text.remove_prefix(1);
      return true;
    }
    absl::string_view name = ConsumeName(text);
    text = absl::StripLeadingAsciiWhitespace(text);
    if (name.empty() || text.empty() || text.front() != '=') return false;
    text.remove_prefix(1);
    text = absl::StripLeadingAsciiWhitespace(text);
    std::string value;
    if (!ConsumeLabelValue(text, value)) return false;
    sample.labels.emplace_back(std::string(name), std::move(value));
    text = absl::StripLeadingAsciiWhitespace(text);
    if (!text.empty() && text.front() == ',') text.remove_prefix(1);
  }
}

bool ParseValue(absl::string_view text, double& value) {
  if (text == "+Inf" || text == "Inf") {
    value = std::numeric_limits<double>::infinity();
  } else if (text == "-Inf") {
    value = -std::numeric_limits<double>::infinity();
  } else if (text == "NaN") {
    value = std::numeric_limits<double>::quiet_NaN();
  } else {
    return absl::SimpleAtod(text, &value);
  }
  return true;
}

bool ParseSample(absl::string_view line, MetricSample& sample) {
  absl::string_view rest = line;
  sample.name = std::string(ConsumeName(rest));
  if (sample.name.empty()) return false;
  rest = absl::StripLeadingAsciiWhitespace(rest);
  if (!rest.empty() && rest.front() == '{' && !ConsumeLabels(rest, sample)) {
    return false;
  }
  std::vector<absl::string_view> fields =
      absl::StrSplit(rest, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  // The value, and an optional timestamp.
  if (fields.empty() || fields.size() > 2) return false;
  return ParseValue(fields[0], sample.value);
}

}  // namespace

absl::StatusOr<std::vector<MetricSample>> ParseMetricsText(
    absl::string_view text) {
  std::vector<MetricSample> samples;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    MetricSample sample;
    if (!ParseSample(line, sample)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metrics line ", line_number, " unreadable: \"", line, "\""));
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

double SumSeries(const std::vector<MetricSample>& samples,
                 absl::string_view name,
                 const std::vector<std::pair<std::string, std::string>>& match,
                 bool* found) {
  double sum = 0;
  bool any = false;
  for (const MetricSample& sample : samples) {
    if (sample.name != name) continue;
    bool matches = std::all_of(match.begin(), match.end(), [&](const auto& m) {
      return std::find(sample.labels.begin(), sample.labels.end(), m) !=
             sample.labels.end();
    });
    if (!matches) continue;
    sum += sample.value;
    any = true;
  }
  if (found != nullptr) *found = any;
  return sum;
}

absl::StatusOr<ServerCounters> ScrapeServerCounters(absl::string_view url,
                                                    absl::string_view fetcher,
                                                    absl::Duration timeout) {
  absl::StatusOr<std::string> text = HttpGet(url, timeout);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<MetricSample>> samples = ParseMetricsText(*text);
  if (!samples.ok()) return samples.status();
  std::vector<std::pair<std::string, std::string>> match;
  if (!fetcher.empty()) match.emplace_back("fetcher", std::string(fetcher));
  ServerCounters counters;
  bool found_calls = false, found_executions = false;
  counters.calls =
      SumSeries(*samples, "singleflight_calls_total", match, &found_calls);
  counters.executions = SumSeries(*samples, "singleflight_executions_total",
                                  match, &found_executions);
  if (!found_calls || !found_executions) {
    return absl::NotFoundError(absl::StrCat(
        url, " has no ",
        found_calls ? "singleflight_executions_total"
                    : "singleflight_calls_total",
        fetcher.empty() ? "" : absl::StrCat(" for fetcher=\"", fetcher, "\"")));
  }
  return counters;
}

}  // namespace bench
}  // namespace singleflight
