#include "bench/http_get.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace singleflight {
namespace bench {
namespace {

// A response larger than this is refused.
constexpr size_t kMaxResponseBytes = size_t{64} << 20;

struct Url {
  std::string host;
  std::string port;
  std::string path;
};

absl::StatusOr<Url> ParseUrl(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", url, "\" is not an http://HOST:PORT/PATH URL"));
  }
  size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  Url parsed;
  parsed.path =
      slash == absl::string_view::npos ? "/" : std::string(rest.substr(slash));
  size_t colon = authority.rfind(':');
  if (colon == absl::string_view::npos) {
    parsed.host = std::string(authority);
    parsed.port = "80";
  } else {
    parsed.host = std::string(authority.substr(0, colon));
    parsed.port = std::string(authority.substr(colon + 1));
  }
  // [::1] style IPv6 literals.
  if (absl::StartsWith(parsed.host, "[") && absl::EndsWith(parsed.host, "]")) {
    parsed.host = parsed.host.substr(1, parsed.host.size() - 2);
  }
  if (parsed.host.empty() || parsed.port.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", url, "\" has no host or port"));
  }
  return parsed;
}

// A connected socket, closed on destruction.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  const int fd_;
};

// Waits until `fd` is ready for `events` or `deadline` passes.
absl::Status AwaitReady(int fd, short events, absl::Time deadline) {
  while (true) {
    int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return absl::DeadlineExceededError("timed out");
    pollfd ready{fd, events, 0};
    int n = poll(&ready, 1, static_cast<int>(ms));
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) {
      return absl::UnavailableError(absl::StrCat("poll: ", strerror(errno)));
    }
  }
}

absl::StatusOr<std::unique_ptr<Socket>> Connect(const Url& url,
                                                absl::Time deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  int error =
      getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &addresses);
  if (error != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", url.host, ": ", gai_strerror(error)));
  }
  absl::Status last = absl::UnavailableError("no address");
  for (addrinfo* address = addresses; address != nullptr;
       address = address->ai_next) {
    auto socket = std::make_unique<Socket>(::socket(
        address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
        address->ai_protocol));
    if (socket->fd() < 0) continue;
    if (connect(socket->fd(), address->ai_addr, address->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = absl::UnavailableError(strerror(errno));
        continue;
      }
      last = AwaitReady(socket->fd(), POLLOUT, deadline);
      if (!last.ok()) continue;
      int so_error = 0;
      socklen_t length = sizeof(so_error);
      getsockopt(socket->fd(), SOL_SOCKET, SO_ERROR, &so_error, &length);
      if (so_error != 0) {
        last = absl::UnavailableError(strerror(so_error));
        continue;
      }
    }
    freeaddrinfo(addresses);
    return socket;
  }
  freeaddrinfo(addresses);
  return absl::Status(
      last.code(), absl::StrCat("cannot connect to ", url.host, ":", url.port,
                                ": ", last.message()));
}

absl::Status SendAll(int fd, absl::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      absl::Status ready = AwaitReady(fd, POLLOUT, deadline);
      if (!ready.ok()) return ready;
    } else {
      return absl::UnavailableError(absl::StrCat("send: ", strerror(errno)));
    }
  }
  return absl::OkStatus();
}

// Reads until the peer closes the connection.
absl::StatusOr<std::string> ReceiveAll(int fd, absl::Time deadline) {
  std::string received;
  char buffer[16384];
  while (true) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0) return received;
    if (n > 0) {
      received.append(buffer, n);
      if (received.size() > kMaxResponseBytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("response over ", kMaxResponseBytes, " bytes"));
      }
    } else if (errno == EAGAIN || errno == EINTR) {
      absl::Status ready = AwaitReady(fd, POLLIN, deadline);
      if (!ready.ok()) return ready;
    } else {
      return absl::UnavailableError(absl::StrCat("recv: ", strerror(errno)));
    }
  }
}

// The body of a complete HTTP response, if its status is 200.
absl::StatusOr<std::string> BodyOf(absl::string_view response) {
  size_t end_of_headers = response.find("\r\n\r\n");
  if (end_of_headers == absl::string_view::npos) {
    return absl::UnavailableError("malformed HTTP response");
  }
  std::vector<absl::string_view> lines = absl::StrSplit(
      response.substr(0, end_of_headers), "\r\n", absl::SkipEmpty());
  std::vector<absl::string_view> status_line;
  if (!lines.empty()) {
    status_line = absl::StrSplit(lines.front(), absl::MaxSplits(' ', 2));
  }
  if (status_line.size() < 2 || !absl::StartsWith(status_line[0], "HTTP/")) {
    return absl::UnavailableError("malformed HTTP status line");
  }
  if (status_line[1] != "200") {
    return absl::UnavailableError(
        absl::StrCat("HTTP status \"", lines.front(), "\""));
  }
  absl::string_view body = response.substr(end_of_headers + 4);
  for (size_t i = 1; i < lines.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> header =
        absl::StrSplit(lines[i], absl::MaxSplits(':', 1));
    absl::string_view name = absl::StripAsciiWhitespace(header.first);
    absl::string_view value = absl::StripAsciiWhitespace(header.second);
    if (absl::EqualsIgnoreCase(name, "transfer-encoding") &&
        !absl::EqualsIgnoreCase(value, "identity")) {
      return absl::UnimplementedError(
          absl::StrCat("Transfer-Encoding: ", value, " is not supported"));
    }
    size_t length = 0;
    if (absl::EqualsIgnoreCase(name, "content-length") &&
        absl::SimpleAtoi(value, &length)) {
      if (length > body.size()) {
        return absl::UnavailableError(absl::StrCat(
            "response cut short: ", body.size(), " of ", length, " bytes"));
      }
      body = body.substr(0, length);
    }
  }
  return std::string(body);
}

}  // namespace

absl::StatusOr<std::string> HttpGet(absl::string_view url,
                                    absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<Url> parsed = ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<std::unique_ptr<Socket>> socket = Connect(*parsed, deadline);
  if (!socket.ok()) return socket.status();
  std::string request = absl::StrCat(
      "GET ", parsed->path, " HTTP/1.0\r\nHost: ", parsed->host, ":",
      parsed->port, "\r\nAccept: text/plain\r\nConnection: close\r\n\r\n");
  absl::Status sent = SendAll((*socket)->fd(), request, deadline);
  absl::StatusOr<std::string> response =
      sent.ok() ? ReceiveAll((*socket)->fd(), deadline)
                : absl::StatusOr<std::string>(sent);
  if (!response.ok()) {
    return absl::Status(
        response.status().code(),
        absl::StrCat("GET ", url, ": ", response.status().message()));
  }
  absl::StatusOr<std::string> body = BodyOf(*response);
  if (!body.ok()) {
    return absl::Status(
        body.status().code(),
        absl::StrCat("GET ", url, ": ", body.status().message()));
  }
  return body;
}

}  // namespace bench
}  // namespace singleflight
