#ifndef SINGLEFLIGHT_TESTS_TESTING_SERVER_PROCESS_H_
#define SINGLEFLIGHT_TESTS_TESTING_SERVER_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace singleflight {
namespace e2e {

// A real singleflightd child process, listening on 127.0.0.1 on a port of its
// own choosing, for end-to-end tests. Its stdout is collected by a thread of
// its own; its stderr goes to the test's, or to a file read by Stderr(). The
// destructor kills the process (SIGKILL) if it is still running, and reaps
// it.
//
// The binaries run are those of the build (SF_BIN_DIR), or those in the
// directory $SF_E2E_BIN_DIR if it is set: to check that a test fails against
// an older build.
//
// Output() and WaitForOutput() are thread-safe; the other methods must be
// called from one thread at a time.
class ServerProcess {
 public:
  // Runs `singleflightd --listen=127.0.0.1:0 args...` and waits up to 20 s
  // for its "listening on" line. Fails with UNAVAILABLE, quoting the output,
  // if the server exits or stays silent instead.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::vector<std::string>& args);
  // As Start, with the process's stderr kept for Stderr().
  static absl::StatusOr<std::unique_ptr<ServerProcess>> StartCapturingStderr(
      const std::vector<std::string>& args);

  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess();

  // 127.0.0.1:PORT, for Client::Connect.
  const std::string& target() const { return target_; }
  pid_t pid() const { return pid_; }

  // Sends `signal_number` to the process, unless it has been reaped.
  void Signal(int signal_number);

  // Waits up to `timeout` for the process to exit. Returns its wait status
  // (as from waitpid), or nullopt if it is still running.
  std::optional<int> WaitForExit(absl::Duration timeout);

  // Everything the process has written to stdout so far.
  std::string Output() const;

  // Waits up to `timeout` for `text` to appear in the process's stdout.
  bool WaitForOutput(absl::string_view text, absl::Duration timeout) const;

  // Everything the process has written to stderr so far. Empty unless
  // started by StartCapturingStderr.
  std::string Stderr() const;

 private:
  ServerProcess(pid_t pid, int stdout_fd, int stderr_fd);
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::vector<std::string>& args, bool capture_stderr);
  void ReadStdout(int fd);

  const pid_t pid_;
  // The file holding the process's stderr, or -1.
  const int stderr_fd_;
  std::string target_;
  std::optional<int> exit_status_;
  mutable absl::Mutex mu_;
  std::string output_ ABSL_GUARDED_BY(mu_);
  bool stdout_closed_ ABSL_GUARDED_BY(mu_) = false;
  // Last: its thread uses the members above.
  std::thread reader_;
};

// What a finished sfctl (or other binary) run printed, and how it ended.
struct CommandResult {
  // The exit code, or -1 if sfctl was killed by a signal.
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `sfctl args...` and waits for it to exit. A run that takes longer than
// `timeout` is killed, and fails the current test.
CommandResult RunSfctl(const std::vector<std::string>& args,
                       absl::Duration timeout = absl::Seconds(30));

// Runs one of the project's binaries (`name` in the build's bin directory)
// as RunSfctl does: for example singleflightd with a start-up error.
CommandResult RunBinary(absl::string_view name,
                        const std::vector<std::string>& args,
                        absl::Duration timeout = absl::Seconds(30));

// Calls `done` every 10 ms until it returns true or `timeout` passes. Returns
// whether it returned true.
bool PollUntil(absl::Duration timeout, const std::function<bool()>& done);

// The flights in progress for `key`, in any fetcher. A failed InFlight call
// fails the current test and returns none.
std::vector<v1::Flight> FlightsFor(Client& client, absl::string_view key);

// A DoRequest for `key` on `fetcher` (empty: the server's default).
v1::DoRequest MakeRequest(absl::string_view key, absl::string_view fetcher,
                          uint64_t id = 0);

// Polls (for up to 10 s) until a flight for `key` has `waiters` waiters.
// Returns whether it did.
bool WaitForWaiters(Client& client, absl::string_view key, uint32_t waiters);

}  // namespace e2e
}  // namespace singleflight

#endif  // SINGLEFLIGHT_TESTS_TESTING_SERVER_PROCESS_H_
