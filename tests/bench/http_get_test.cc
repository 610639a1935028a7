#include "bench/http_get.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/bench/fake_http_server.h"

namespace singleflight {
namespace bench {
namespace {

constexpr absl::Duration kTimeout = absl::Seconds(5);

TEST(HttpGetTest, ReturnsTheBodyOfA200) {
  FakeHttpServer server(FakeHttpServer::Ok("hello\n"));
  absl::StatusOr<std::string> body =
      HttpGet(server.url() + "/metrics", kTimeout);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "hello\n");
  EXPECT_TRUE(
      absl::StartsWith(server.last_request(), "GET /metrics HTTP/1.1\r\n"))
      << server.last_request();
  EXPECT_TRUE(absl::StrContains(server.last_request(), "\r\nHost: 127.0.0.1:"));
}

TEST(HttpGetTest, PathDefaultsToRoot) {
  FakeHttpServer server(FakeHttpServer::Ok(""));
  ASSERT_TRUE(HttpGet(server.url(), kTimeout).ok());
  EXPECT_TRUE(absl::StartsWith(server.last_request(), "GET / HTTP/1.1\r\n"));
}

TEST(HttpGetTest, BodyWithoutContentLengthRunsToTheEnd) {
  FakeHttpServer server("HTTP/1.1 200 OK\r\n\r\na\nb\n");
  absl::StatusOr<std::string> body = HttpGet(server.url(), kTimeout);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "a\nb\n");
}

TEST(HttpGetTest, OtherStatusesFail) {
  FakeHttpServer server("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  absl::StatusOr<std::string> body = HttpGet(server.url(), kTimeout);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(body.status().message(), "404"))
      << body.status();
}

TEST(HttpGetTest, TruncatedBodiesFailChunkedOnesAreRead) {
  FakeHttpServer truncated("HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_EQ(HttpGet(truncated.url(), kTimeout).status().code(),
            absl::StatusCode::kUnavailable);
  FakeHttpServer chunked(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
      "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  absl::StatusOr<std::string> body = HttpGet(chunked.url(), kTimeout);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "abc");
}

TEST(HttpGetTest, GarbageFails) {
  FakeHttpServer server("not http at all");
  EXPECT_EQ(HttpGet(server.url(), kTimeout).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(HttpGetTest, SilentServerTimesOut) {
  FakeHttpServer server("", /*answer=*/false);
  absl::StatusOr<std::string> body =
      HttpGet(server.url(), absl::Milliseconds(200));
  EXPECT_EQ(body.status().code(), absl::StatusCode::kDeadlineExceeded)
      << body.status();
}

TEST(HttpGetTest, RefusedConnectionIsUnavailable) {
  // A port that was free a moment ago.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), length), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  close(fd);
  absl::StatusOr<std::string> body = HttpGet(
      absl::StrCat("http://127.0.0.1:", ntohs(address.sin_port), "/metrics"),
      kTimeout);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable)
      << body.status();
}

TEST(HttpGetTest, RejectsUrlsItCannotHandle) {
  EXPECT_EQ(HttpGet("ftp://127.0.0.1:1/metrics", kTimeout).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpGet("127.0.0.1:9090/metrics", kTimeout).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpGet("http://:9090/metrics", kTimeout).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bench
}  // namespace singleflight
