#include "tests/testing/http_origin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace {

constexpr char kPython[] = "/usr/bin/python3";
constexpr absl::Duration kStartTimeout = absl::Seconds(20);
constexpr absl::Duration kAskTimeout = absl::Seconds(10);
constexpr char kListeningPrefix[] = "listening on 127.0.0.1:";

std::string ErrnoMessage(absl::string_view what) {
  return absl::StrCat(what, ": ", std::strerror(errno));
}

// `text` with everything but unreserved characters percent-encoded.
std::string QueryEscape(absl::string_view text) {
  std::string escaped;
  for (char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      escaped.push_back(c);
    } else {
      absl::StrAppend(&escaped, "%",
                      absl::Hex(static_cast<uint8_t>(c), absl::kZeroPad2));
    }
  }
  return escaped;
}

// Reads stdout of the starting origin (`fd`) until its first line, for up to
// kStartTimeout.
absl::StatusOr<std::string> ReadFirstLine(int fd) {
  std::string output;
  absl::Time deadline = absl::Now() + kStartTimeout;
  while (output.find('\n') == std::string::npos) {
    int wait_ms = static_cast<int>(std::max<int64_t>(
        0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    pollfd readable = {fd, POLLIN, 0};
    int ready = poll(&readable, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("the origin printed no line within ",
                       absl::FormatDuration(kStartTimeout)));
    }
    char buffer[256];
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::UnavailableError(
          absl::StrCat("the origin exited; it printed \"", output, "\""));
    }
    output.append(buffer, n);
  }
  return output.substr(0, output.find('\n'));
}

// Ends the origin `pid` and reaps it.
void StopOrigin(pid_t pid, int stdin_fd) {
  close(stdin_fd);
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpOrigin>> HttpOrigin::Start(
    std::vector<std::string> extra_args) {
  int stdin_pipe[2];
  int stdout_pipe[2];
  if (pipe2(stdin_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(ErrnoMessage("pipe2"));
  }
  if (pipe2(stdout_pipe, O_CLOEXEC) != 0) {
    close(stdin_pipe[0]);
    close(stdin_pipe[1]);
    return absl::InternalError(ErrnoMessage("pipe2"));
  }
  std::string script =
      absl::StrCat(SF_SOURCE_DIR, "/tests/origin/http_origin.py");
  std::vector<std::string> args = {kPython, script, "--port", "0",
                                   "--exit-with-stdin"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stdin_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, stdout_pipe[1], STDOUT_FILENO);
  pid_t pid = 0;
  int error =
      posix_spawn(&pid, kPython, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(stdin_pipe[0]);
  close(stdout_pipe[1]);
  if (error != 0) {
    close(stdin_pipe[1]);
    close(stdout_pipe[0]);
    return absl::InternalError(
        absl::StrCat("cannot run ", kPython, ": ", std::strerror(error)));
  }
  absl::StatusOr<std::string> line = ReadFirstLine(stdout_pipe[0]);
  close(stdout_pipe[0]);
  absl::string_view rest;
  if (line.ok()) rest = *line;
  int port = 0;
  if (!line.ok() || !absl::ConsumePrefix(&rest, kListeningPrefix) ||
      !absl::SimpleAtoi(rest, &port)) {
    StopOrigin(pid, stdin_pipe[1]);
    if (!line.ok()) return line.status();
    return absl::UnavailableError(absl::StrCat("the origin printed \"", *line,
                                               "\", not \"", kListeningPrefix,
                                               "PORT\""));
  }
  return std::unique_ptr<HttpOrigin>(new HttpOrigin(pid, stdin_pipe[1], port));
}

HttpOrigin::HttpOrigin(pid_t pid, int stdin_fd, int port)
    : pid_(pid),
      stdin_fd_(stdin_fd),
      port_(port),
      base_url_(absl::StrCat("http://127.0.0.1:", port)) {}

HttpOrigin::~HttpOrigin() { StopOrigin(pid_, stdin_fd_); }

absl::StatusOr<std::string> HttpOrigin::Get(
    absl::string_view path_and_query) const {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(ErrnoMessage("socket"));
  timeval timeout = absl::ToTimeval(kAskTimeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port_));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string request = absl::StrCat("GET ", path_and_query,
                                     " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  std::string answer;
  absl::Status status;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    status = absl::UnavailableError(ErrnoMessage("connect to the origin"));
  } else if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
             static_cast<ssize_t>(request.size())) {
    status = absl::UnavailableError(ErrnoMessage("send to the origin"));
  } else {
    char buffer[4096];
    ssize_t n;
    while ((n = recv(fd, buffer, sizeof(buffer), 0)) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = absl::UnavailableError(ErrnoMessage("recv from the origin"));
        break;
      }
      answer.append(buffer, n);
    }
  }
  close(fd);
  if (!status.ok()) return status;
  std::pair<absl::string_view, absl::string_view> head_and_body =
      absl::StrSplit(answer, absl::MaxSplits("\r\n\r\n", 1));
  if (!absl::StartsWith(head_and_body.first, "HTTP/1.0 200 ") &&
      !absl::StartsWith(head_and_body.first, "HTTP/1.1 200 ")) {
    return absl::UnavailableError(absl::StrCat(
        "GET ", path_and_query, " answered \"", head_and_body.first, "\""));
  }
  return std::string(head_and_body.second);
}

int HttpOrigin::Hits(absl::string_view path) const {
  absl::StatusOr<std::string> body =
      Get(absl::StrCat("/_hits?path=", QueryEscape(path)));
  int hits = -1;
  if (!body.ok() || !absl::SimpleAtoi(*body, &hits)) {
    ADD_FAILURE() << "hits on " << path << ": " << body.status();
    return -1;
  }
  return hits;
}

int HttpOrigin::Connections() const {
  absl::StatusOr<std::string> body = Get("/_connections");
  int connections = -1;
  if (!body.ok() || !absl::SimpleAtoi(*body, &connections)) {
    ADD_FAILURE() << "connections: " << body.status();
    return -1;
  }
  return connections;
}

std::vector<std::string> HttpOrigin::Events(absl::string_view path) const {
  absl::StatusOr<std::string> body =
      Get(absl::StrCat("/_events?path=", QueryEscape(path)));
  if (!body.ok()) {
    ADD_FAILURE() << "events of " << path << ": " << body.status();
    return {};
  }
  // A JSON list of plain words: the words are the odd pieces between quotes.
  std::vector<std::string> pieces = absl::StrSplit(*body, '"');
  std::vector<std::string> events;
  for (size_t i = 1; i < pieces.size(); i += 2) events.push_back(pieces[i]);
  return events;
}

bool HttpOrigin::WaitForEvent(absl::string_view path, absl::string_view event,
                              absl::Duration timeout, int count) const {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    std::vector<std::string> events = Events(path);
    if (std::count(events.begin(), events.end(), event) >= count) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace singleflight
