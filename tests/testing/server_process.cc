#include "tests/testing/server_process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace e2e {
namespace {

constexpr absl::Duration kStartTimeout = absl::Seconds(20);
constexpr char kListeningPrefix[] = "singleflightd listening on ";
constexpr char kLoopbackPrefix[] = "127.0.0.1:";

std::string BinaryPath(absl::string_view name) {
  const char* dir = std::getenv("SF_E2E_BIN_DIR");
  return absl::StrCat(dir != nullptr ? dir : SF_BIN_DIR, "/", name);
}

// Runs `path args...` with stdout and stderr on `stdout_fd` and `stderr_fd`
// (-1: inherited).
absl::StatusOr<pid_t> Spawn(const std::string& path,
                            const std::vector<std::string>& args, int stdout_fd,
                            int stderr_fd) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const std::string& arg : args) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdout_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
  }
  if (stderr_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  }
  pid_t pid = 0;
  int error =
      posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    return absl::InternalError(
        absl::StrCat("cannot run ", path, ": ", std::strerror(error)));
  }
  return pid;
}

// Waits up to `timeout` for `pid` to exit and reaps it. Returns its wait
// status, or nullopt if it is still running.
std::optional<int> Reap(pid_t pid, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t reaped = waitpid(pid, &status, WNOHANG);
    if (reaped == pid) return status;
    if (reaped < 0 && errno != EINTR) {
      ADD_FAILURE() << "waitpid(" << pid << "): " << std::strerror(errno);
      return std::nullopt;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

// An unlinked temporary file, open for reading and writing.
int TemporaryFile() {
  std::string path = testing::TempDir() + "sfctl_output_XXXXXX";
  int fd = mkostemp(path.data(), O_CLOEXEC);
  if (fd >= 0) unlink(path.c_str());
  return fd;
}

// Everything in the file `fd`.
std::string ReadAll(int fd) {
  std::string contents;
  char buffer[4096];
  ssize_t n;
  while ((n = pread(fd, buffer, sizeof(buffer), contents.size())) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    contents.append(buffer, n);
  }
  return contents;
}

// Everything in the file `fd`, which is closed.
std::string ReadAndClose(int fd) {
  std::string contents = ReadAll(fd);
  close(fd);
  return contents;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::vector<std::string>& args) {
  return Start(args, /*capture_stderr=*/false);
}

absl::StatusOr<std::unique_ptr<ServerProcess>>
ServerProcess::StartCapturingStderr(const std::vector<std::string>& args) {
  return Start(args, /*capture_stderr=*/true);
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::vector<std::string>& args, bool capture_stderr) {
  int stderr_fd = -1;
  if (capture_stderr) {
    stderr_fd = TemporaryFile();
    if (stderr_fd < 0) {
      return absl::InternalError(absl::StrCat(
          "mkostemp in ", testing::TempDir(), ": ", std::strerror(errno)));
    }
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    if (stderr_fd >= 0) close(stderr_fd);
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  std::vector<std::string> argv = {
      absl::StrCat("--listen=", kLoopbackPrefix, "0")};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<pid_t> pid =
      Spawn(BinaryPath("singleflightd"), argv, pipe_fds[1], stderr_fd);
  close(pipe_fds[1]);
  if (!pid.ok()) {
    close(pipe_fds[0]);
    if (stderr_fd >= 0) close(stderr_fd);
    return pid.status();
  }
  std::unique_ptr<ServerProcess> server(
      new ServerProcess(*pid, pipe_fds[0], stderr_fd));

  absl::MutexLock lock(&server->mu_);
  auto first_line_or_eof =
      [&server]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(server->mu_) {
        return server->stdout_closed_ ||
               server->output_.find('\n') != std::string::npos;
      };
  server->mu_.AwaitWithTimeout(absl::Condition(&first_line_or_eof),
                               kStartTimeout);
  absl::string_view line = server->output_;
  line = line.substr(0, line.find('\n'));
  if (line.size() < server->output_.size() &&
      absl::ConsumePrefix(&line, kListeningPrefix) &&
      absl::StartsWith(line, kLoopbackPrefix)) {
    server->target_ = std::string(line.substr(0, line.find(' ')));
    return server;
  }
  return absl::UnavailableError(absl::StrCat(
      "singleflightd ", absl::StrJoin(argv, " "),
      server->stdout_closed_ ? " exited" : " did not start within 20s",
      " before its \"listening on\" line; its stdout: \"", server->output_,
      "\""));
}

ServerProcess::ServerProcess(pid_t pid, int stdout_fd, int stderr_fd)
    : pid_(pid),
      stderr_fd_(stderr_fd),
      reader_([this, stdout_fd] { ReadStdout(stdout_fd); }) {}

ServerProcess::~ServerProcess() {
  if (!exit_status_.has_value()) {
    kill(pid_, SIGKILL);
    Reap(pid_, absl::InfiniteDuration());
  }
  reader_.join();
  if (stderr_fd_ >= 0) close(stderr_fd_);
}

void ServerProcess::ReadStdout(int fd) {
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    absl::MutexLock lock(&mu_);
    output_.append(buffer, n);
  }
  close(fd);
  absl::MutexLock lock(&mu_);
  stdout_closed_ = true;
}

void ServerProcess::Signal(int signal_number) {
  if (!exit_status_.has_value()) kill(pid_, signal_number);
}

std::optional<int> ServerProcess::WaitForExit(absl::Duration timeout) {
  if (!exit_status_.has_value()) exit_status_ = Reap(pid_, timeout);
  return exit_status_;
}

std::string ServerProcess::Output() const {
  absl::MutexLock lock(&mu_);
  return output_;
}

bool ServerProcess::WaitForOutput(absl::string_view text,
                                  absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto seen_or_eof = [this, text]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stdout_closed_ || absl::StrContains(output_, text);
  };
  mu_.AwaitWithTimeout(absl::Condition(&seen_or_eof), timeout);
  return absl::StrContains(output_, text);
}

std::string ServerProcess::Stderr() const {
  return stderr_fd_ >= 0 ? ReadAll(stderr_fd_) : std::string();
}

CommandResult RunSfctl(const std::vector<std::string>& args,
                       absl::Duration timeout) {
  return RunBinary("sfctl", args, timeout);
}

CommandResult RunBinary(absl::string_view name,
                        const std::vector<std::string>& args,
                        absl::Duration timeout) {
  CommandResult result;
  int out = TemporaryFile();
  int err = TemporaryFile();
  absl::StatusOr<pid_t> pid =
      out < 0 || err < 0
          ? absl::InternalError(absl::StrCat("mkostemp in ", testing::TempDir(),
                                             ": ", std::strerror(errno)))
          : Spawn(BinaryPath(name), args, out, err);
  if (pid.ok()) {
    std::optional<int> status = Reap(*pid, timeout);
    if (!status.has_value()) {
      ADD_FAILURE() << name << " " << absl::StrJoin(args, " ")
                    << " still running after " << timeout << "; killed";
      kill(*pid, SIGKILL);
      status = Reap(*pid, absl::InfiniteDuration());
    }
    if (status.has_value() && WIFEXITED(*status)) {
      result.exit_code = WEXITSTATUS(*status);
    }
  } else {
    ADD_FAILURE() << pid.status();
  }
  if (out >= 0) result.out = ReadAndClose(out);
  if (err >= 0) result.err = ReadAndClose(err);
  return result;
}

bool PollUntil(absl::Duration timeout, const std::function<bool()>& done) {
  absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

std::vector<v1::Flight> FlightsFor(Client& client, absl::string_view key) {
  std::vector<v1::Flight> flights;
  absl::StatusOr<v1::InFlightResponse> response = client.InFlight();
  if (!response.ok()) {
    ADD_FAILURE() << "InFlight: " << response.status();
    return flights;
  }
  for (const v1::Flight& flight : response->flights()) {
    if (flight.key() == key) flights.push_back(flight);
  }
  return flights;
}

bool WaitForWaiters(Client& client, absl::string_view key, uint32_t waiters) {
  return PollUntil(absl::Seconds(10), [&] {
    for (const v1::Flight& flight : FlightsFor(client, key)) {
      if (flight.waiters() == waiters) return true;
    }
    return false;
  });
}

v1::DoRequest MakeRequest(absl::string_view key, absl::string_view fetcher,
                          uint64_t id) {
  v1::DoRequest request;
  request.set_key(std::string(key));
  request.set_fetcher(std::string(fetcher));
  request.set_id(id);
  return request;
}

}  // namespace e2e
}  // namespace singleflight
