#ifndef SINGLEFLIGHT_SERVER_LOGGING_H_
#define SINGLEFLIGHT_SERVER_LOGGING_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/flight_observer.h"

namespace singleflight {

// The server's log, on stderr through spdlog: plain lines, or JSON lines
// ({"time","level","msg"}) for log collectors.
//
// Sets up spdlog's default logger. `level` is one of trace, debug, info,
// warning, error, off. Fails with INVALID_ARGUMENT on another level.
// Call once, before serving.
//
// Also routes the logs of Protobuf and gRPC (GRPC_VERBOSITY, if set, still
// chooses what gRPC logs) through this log, at its level and in its format,
// at most kForeignLinesPerSecond lines per second from each, with a note of
// how many lines were dropped: a client sending undecodable requests must not
// flood the log.
absl::Status SetUpLogging(const std::string& level, bool json);

inline constexpr int kForeignLinesPerSecond = 10;

// Writes `message` to stderr whatever the log level: an error that stops the
// server, which the operator must see. A JSON line with SetUpLogging's
// `json`.
void PrintFatalError(absl::string_view message);

void LogDebug(absl::string_view message);
void LogInfo(absl::string_view message);
void LogWarning(absl::string_view message);

// Logs one warning per failed fetcher execution (fetcher, code, message,
// duration). Keys are never logged at info level or above: they may carry
// user data.
// Thread-safe.
class FlightLog : public FlightObserver {
 public:
  void ExecutionStarted(const NamedFetcher& fetcher) override {}
  void ExecutionEnded(const NamedFetcher& fetcher, const absl::Status& status,
                      absl::Duration duration) override;
  void Joined(const NamedFetcher& fetcher) override {}
  void Rejected(const NamedFetcher& fetcher, const char* limit) override;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_LOGGING_H_
