#ifndef SINGLEFLIGHT_TESTS_TESTING_HTTP_ORIGIN_H_
#define SINGLEFLIGHT_TESTS_TESTING_HTTP_ORIGIN_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace singleflight {

// A real HTTP origin for tests: tests/origin/http_origin.py (its docstring
// says what each path answers, by query parameters) as a child process
// listening on 127.0.0.1. The destructor kills and reaps it; it also exits by
// itself when the test process dies.
//
// Thread-safe: the const methods may be called from any thread; each asks the
// origin on a connection of its own.
class HttpOrigin {
 public:
  // Runs the origin and waits up to 20 s for its "listening on" line.
  // `extra_args` go to http_origin.py: with --tls_cert and --tls_key it
  // serves HTTPS, and then only port() is of use (the other methods speak
  // plain HTTP).
  static absl::StatusOr<std::unique_ptr<HttpOrigin>> Start(
      std::vector<std::string> extra_args = {});

  HttpOrigin(const HttpOrigin&) = delete;
  HttpOrigin& operator=(const HttpOrigin&) = delete;
  ~HttpOrigin();

  int port() const { return port_; }
  // http://127.0.0.1:PORT, without a trailing slash.
  const std::string& base_url() const { return base_url_; }

  // The body of the origin's answer to `GET path_and_query`, if it is 200.
  absl::StatusOr<std::string> Get(absl::string_view path_and_query) const;

  // Requests on `path` (as the origin saw it: percent-encoded, without the
  // query) so far. A failure to ask fails the current test and returns -1.
  int Hits(absl::string_view path) const;

  // Connections the origin has accepted so far, or -1 as for Hits.
  int Connections() const;

  // What happened to the requests on `path`, in order: "request",
  // "answered", "closed_before_answer", "closed_during_answer". A failure to
  // ask fails the current test and returns none.
  std::vector<std::string> Events(absl::string_view path) const;

  // Polls Events(path) every 10 ms for up to `timeout` until `event` is there
  // `count` times. Returns whether it was.
  bool WaitForEvent(absl::string_view path, absl::string_view event,
                    absl::Duration timeout, int count = 1) const;

 private:
  HttpOrigin(pid_t pid, int stdin_fd, int port);

  const pid_t pid_;
  // Closing it ends the origin's stdin, which makes it exit.
  const int stdin_fd_;
  const int port_;
  const std::string base_url_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_TESTS_TESTING_HTTP_ORIGIN_H_
