#include "server/logging.h"

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/log_rate_limiter.h"

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

LogRateLimiter& ForeignLogLimiter() {
  static LogRateLimiter* limiter =
      new LogRateLimiter(kForeignLinesPerSecond, absl::Seconds(1));
  return *limiter;
}

// Whether gRPC's tracers (GRPC_TRACE) were asked for: their lines are not
// rate-limited.
std::atomic<bool> grpc_tracing{false};

// One line of another library's log, as "SOURCE: MESSAGE (FILE:LINE)".
void LogForeign(const char* source, spdlog::level::level_enum level,
                absl::string_view message, absl::string_view file, int line,
                bool limited) {
  if (!spdlog::should_log(level)) return;
  if (limited) {
    LogRateLimiter::Decision decision =
        ForeignLogLimiter().Admit(source, absl::Now());
    if (!decision.log) return;
    if (decision.suppressed > 0) {
      Log(level, absl::StrCat(source, ": suppressed ", decision.suppressed,
                              " lines (more than ", kForeignLinesPerSecond,
                              " a second)"));
    }
  }
  Log(level, absl::StrCat(source, ": ", message, " (", file, ":", line, ")"));
}

void LogProtobuf(google::protobuf::LogLevel level, const char* filename,
                 int line, const std::string& message) {
  spdlog::level::level_enum ours = spdlog::level::critical;
  switch (level) {
    case google::protobuf::LOGLEVEL_INFO:
      ours = spdlog::level::info;
      break;
    case google::protobuf::LOGLEVEL_WARNING:
      ours = spdlog::level::warn;
      break;
    case google::protobuf::LOGLEVEL_ERROR:
      ours = spdlog::level::err;
      break;
    case google::protobuf::LOGLEVEL_FATAL:
      break;
  }
  LogForeign("protobuf", ours, absl::StripTrailingAsciiWhitespace(message),
             filename, line, level != google::protobuf::LOGLEVEL_FATAL);
}

void LogGrpc(gpr_log_func_args* args) {
  spdlog::level::level_enum ours = spdlog::level::err;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) ours = spdlog::level::debug;
  if (args->severity == GPR_LOG_SEVERITY_INFO) ours = spdlog::level::info;
  // GPR_ASSERT logs "assertion failed: ..." just before abort(): that line
  // is never dropped.
  bool assertion = absl::StartsWith(args->message, "assertion failed");
  LogForeign("grpc", ours, args->message, args->file, args->line,
             !assertion && !grpc_tracing.load(std::memory_order_relaxed));
}

// What gRPC is to log at our `level`: its info lines are start-up details,
// for debugging only.
gpr_log_severity GrpcVerbosity(spdlog::level::level_enum level) {
  return level <= spdlog::level::debug ? GPR_LOG_SEVERITY_DEBUG
                                       : GPR_LOG_SEVERITY_ERROR;
}

}  // namespace

absl::Status SetUpLogging(const std::string& level, bool json) {
  spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "log level \"", level,
        "\" is not one of trace, debug, info, warning, error, off"));
  }
  // Set up a second time once the config file is read: the same logger,
  // reconfigured.
  std::shared_ptr<spdlog::logger> logger = spdlog::get("singleflightd");
  if (logger == nullptr) logger = spdlog::stderr_logger_mt("singleflightd");
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
  google::protobuf::SetLogHandler(&LogProtobuf);
  const char* tracers = std::getenv("GRPC_TRACE");
  grpc_tracing = tracers != nullptr && *tracers != '\0';
  if (std::getenv("GRPC_VERBOSITY") == nullptr) {
    gpr_set_log_verbosity(GrpcVerbosity(parsed));
  }
  gpr_set_log_function(&LogGrpc);
  return absl::OkStatus();
}

void PrintFatalError(absl::string_view message) {
  std::string line =
      json_lines.load(std::memory_order_relaxed)
          ? absl::StrCat(R"({"time":")",
                         absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(),
                                          absl::UTCTimeZone()),
                         R"(","level":"critical","msg":)", JsonString(message),
                         "}\n")
          : absl::StrCat("singleflightd: ", message, "\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
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
