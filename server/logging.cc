#include "server/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace singleflight {
namespace {

std::atomic<bool> json_lines{false};

// `text` as a JSON string literal, quotes included.
std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += '"';
  return out;
}

void Log(spdlog::level::level_enum level, absl::string_view message) {
  if (!spdlog::should_log(level)) return;
  if (json_lines.load(std::memory_order_relaxed)) {
    // The pattern holds the time and level; the message is a JSON string.
    spdlog::log(level, "{}", JsonString(message));
  } else {
    spdlog::log(level, "{}", std::string_view(message.data(), message.size()));
  }
}

}  // namespace

absl::Status SetUpLogging(const std::string& level, bool json) {
  spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "log level \"", level,
        "\" is not one of trace, debug, info, warning, error, off"));
  }
  auto logger = spdlog::stderr_logger_mt("singleflightd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(parsed);
  json_lines = json;
  if (json) {
    spdlog::set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","msg":%v})",
        spdlog::pattern_time_type::utc);
  } else {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %L %v");
  }
  return absl::OkStatus();
}

void LogDebug(absl::string_view message) { Log(spdlog::level::debug, message); }
void LogInfo(absl::string_view message) { Log(spdlog::level::info, message); }
void LogWarning(absl::string_view message) {
  Log(spdlog::level::warn, message);
}

void FlightLog::ExecutionEnded(const NamedFetcher& fetcher,
                               const absl::Status& status,
                               absl::Duration duration) {
  // An execution abandoned by all of its waiters did not fail.
  if (status.ok() || status.code() == absl::StatusCode::kCancelled) return;
  LogWarning(absl::StrCat("fetcher ", fetcher.name, " failed after ",
                          absl::FormatDuration(duration), ": ",
                          absl::StatusCodeToString(status.code()), ": ",
                          status.message()));
}

void FlightLog::Rejected(const NamedFetcher& fetcher, const char* limit) {
  LogDebug(absl::StrCat("fetcher ", fetcher.name, " refused a call: ", limit));
}

}  // namespace singleflight
