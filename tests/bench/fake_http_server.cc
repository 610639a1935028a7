#include "tests/bench/fake_http_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace bench {
namespace {

constexpr int kPollMs = 20;

// Waits up to kPollMs for `fd` to be readable.
bool Readable(int fd) {
  pollfd ready{fd, POLLIN, 0};
  return poll(&ready, 1, kPollMs) > 0;
}

}  // namespace

FakeHttpServer::FakeHttpServer(std::string response, bool answer)
    : response_(std::move(response)), answer_(answer) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (listen_fd_ < 0 ||
      bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      listen(listen_fd_, 16) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) !=
          0) {
    ADD_FAILURE() << "FakeHttpServer cannot listen";
    return;
  }
  port_ = ntohs(address.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

FakeHttpServer::~FakeHttpServer() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
}

std::string FakeHttpServer::url() const {
  return absl::StrCat("http://127.0.0.1:", port_);
}

std::string FakeHttpServer::last_request() const {
  absl::MutexLock lock(&mu_);
  return last_request_;
}

std::string FakeHttpServer::Ok(const std::string& body) {
  return absl::StrCat(
      "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
      "Content-Length: ",
      body.size(), "\r\n\r\n", body);
}

void FakeHttpServer::Serve() {
  while (!stopping_) {
    if (!Readable(listen_fd_)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::string request;
    char buffer[4096];
    while (!stopping_ && request.find("\r\n\r\n") == std::string::npos) {
      if (!Readable(fd)) continue;
      ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n <= 0) break;
      request.append(buffer, n);
    }
    ++requests_;
    {
      absl::MutexLock lock(&mu_);
      last_request_ = request;
    }
    if (answer_) {
      for (size_t sent = 0; sent < response_.size();) {
        ssize_t n = send(fd, response_.data() + sent, response_.size() - sent,
                         MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += n;
      }
    } else {
      // Silent: hold the connection until the client gives up or the
      // server stops.
      while (!stopping_) {
        if (Readable(fd) && read(fd, buffer, sizeof(buffer)) <= 0) break;
      }
    }
    close(fd);
  }
}

}  // namespace bench
}  // namespace singleflight
