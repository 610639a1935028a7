#ifndef SINGLEFLIGHT_TESTS_BENCH_FAKE_HTTP_SERVER_H_
#define SINGLEFLIGHT_TESTS_BENCH_FAKE_HTTP_SERVER_H_

#include <atomic>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace singleflight {
namespace bench {

// A one-thread HTTP server on 127.0.0.1 for tests: to each connection it
// reads the request head and answers with a canned response (the whole of
// it, status line and headers included), then closes the connection. With
// `answer` false it reads and never replies, to test timeouts.
//
// Thread-safe: requests() and last_request() may be read from any thread.
class FakeHttpServer {
 public:
  explicit FakeHttpServer(std::string response, bool answer = true);
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;
  ~FakeHttpServer();

  // http://127.0.0.1:PORT
  std::string url() const;
  // Request heads received so far.
  int requests() const { return requests_.load(); }
  // The last request head received.
  std::string last_request() const;

  // An HTTP/1.0 200 response carrying `body` as text/plain.
  static std::string Ok(const std::string& body);

 private:
  void Serve();

  const std::string response_;
  const bool answer_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  mutable absl::Mutex mu_;
  std::string last_request_ ABSL_GUARDED_BY(mu_);
  // Last: it uses the members above.
  std::thread thread_;
};

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_TESTS_BENCH_FAKE_HTTP_SERVER_H_
