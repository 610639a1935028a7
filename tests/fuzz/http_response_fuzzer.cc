// Fuzzes how the HTTP fetcher (fetchers/http_fetcher.h) takes an origin's
// answer: status line, headers, chunked or sized bodies, truncation. The
// input is the raw answer: a loopback origin on 127.0.0.1:PORT, a thread of
// this process, answers every connection by reading the request's head,
// writing the input and closing. One HttpFetcher (timeout 2 s, values up to
// 1 KiB) fetches one key per input from it.
//
// Checked: the callback is called exactly once (checked again at the next
// input, so that a late second call is caught too), within the timeout, with
// a value no larger than the limit or an error status with a message.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/cancellation.h"
#include "core/fetcher_uri.h"
#include "fetchers/http_fetcher.h"
#include "tests/fetchers/fetch_outcome.h"
#include "tests/fuzz/fuzz_check.h"

namespace singleflight {
namespace {

constexpr size_t kMaxValueBytes = 1024;

// The origin: one thread that answers each connection, in turn, with the
// current answer. Lives until the process exits.
class RawOrigin {
 public:
  RawOrigin() {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    FuzzCheck(listener_ >= 0 &&
                  bind(listener_, reinterpret_cast<sockaddr*>(&address),
                       sizeof(address)) == 0 &&
                  listen(listener_, 16) == 0 &&
                  getsockname(listener_, reinterpret_cast<sockaddr*>(&address),
                              &length) == 0,
              "the origin listens on 127.0.0.1");
    port_ = ntohs(address.sin_port);
    std::thread([this] { Serve(); }).detach();
  }

  int port() const { return port_; }

  void SetAnswer(std::string answer) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(answer);
  }

 private:
  void Serve() {
    while (true) {
      int connection = accept(listener_, nullptr, nullptr);
      if (connection < 0) continue;
      timeval timeout = {1, 0};
      setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout,
                 sizeof(timeout));
      // Reads the request's head (a GET has no body), so that closing sends
      // FIN and not RST.
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t got = read(connection, buffer, sizeof(buffer));
        if (got <= 0) break;
        request.append(buffer, got);
      }
      std::string answer;
      {
        absl::MutexLock lock(&mu_);
        answer = answer_;
      }
      for (size_t sent = 0; sent < answer.size();) {
        ssize_t wrote = send(connection, answer.data() + sent,
                             answer.size() - sent, MSG_NOSIGNAL);
        if (wrote <= 0) break;
        sent += wrote;
      }
      close(connection);
    }
  }

  int listener_ = -1;
  int port_ = 0;
  absl::Mutex mu_;
  std::string answer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace
}  // namespace singleflight

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace singleflight;  // NOLINT(build/namespaces)
  static RawOrigin* const origin = new RawOrigin();
  static Fetcher* const fetcher = [] {
    FetcherPolicy policy;
    policy.timeout = absl::Seconds(2);
    policy.max_value_bytes = kMaxValueBytes;
    absl::StatusOr<FetcherUri> uri = FetcherUri::Parse(
        absl::StrCat("http://127.0.0.1:", origin->port(), "/{key}"));
    absl::StatusOr<std::unique_ptr<Fetcher>> created =
        HttpFetcher::Create(*uri, policy, FetcherEnvironment());
    FuzzCheck(created.ok(), "the HTTP fetcher is created");
    return created->release();
  }();
  static std::shared_ptr<FetchOutcome> previous;
  if (previous != nullptr) {
    FuzzCheck(previous->calls() == 1,
              "the previous input's callback was called exactly once");
  }

  origin->SetAnswer(std::string(reinterpret_cast<const char*>(bytes), size));
  FetchRequest request;
  request.key = "k";
  request.cancellation = std::make_shared<CancellationSignal>();
  auto outcome = std::make_shared<FetchOutcome>();
  fetcher->Fetch(std::move(request), outcome->Callback());
  absl::StatusOr<std::string> result = outcome->Wait(absl::Seconds(5));
  FuzzCheck(outcome->calls() == 1, "the callback is called within 5 s");
  if (result.ok()) {
    FuzzCheck(result->size() <= kMaxValueBytes,
              "a value is no larger than max_value_bytes");
  } else {
    FuzzCheck(!result.status().message().empty(),
              "an error status has a message");
  }
  previous = outcome;
  return 0;
}
