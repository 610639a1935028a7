#ifndef SINGLEFLIGHT_FETCHERS_HTTP_FETCHER_H_
#define SINGLEFLIGHT_FETCHERS_HTTP_FETCHER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "core/fetcher.h"
#include "core/fetcher_registry.h"
#include "core/fetcher_uri.h"

namespace singleflight {

// Fetches values from an HTTP(S) origin with libcurl. URI: the origin's URL,
// `http://HOST[:PORT]/PATH[?QUERY]` or `https://...`, in which every `{key}`
// is replaced by the percent-encoded key (all of it belongs to the origin: the
// query is not read as fetcher settings). A URL without `{key}` fetches the
// same resource for every key (a POST payload may then tell them apart).
//
// One request per execution: GET, or POST with the payload as the body
// (application/octet-stream unless a header says otherwise) when the payload
// is not empty; the policy's headers and the forwarded caller metadata are
// sent as HTTP headers. A 2xx answer's body is the value. Any other answer
// fails the flight with a code that follows the status (see
// HttpStatusToCode) and a message quoting the start of its body. Redirects
// are not followed: a 3xx fails with FAILED_PRECONDITION, naming where it
// points, so that headers meant for the origin never go elsewhere.
// Unreachable origins fail with UNAVAILABLE, a transfer slower than the
// policy timeout with DEADLINE_EXCEEDED, and a body larger than the policy's
// max_value_bytes with RESOURCE_EXHAUSTED as soon as it is known to be.
//
// All transfers run on one event thread that the fetcher owns, through one
// libcurl multi handle: connections are reused, TLS peers are verified, and
// HTTP/2 is used where the origin offers it over TLS. Cancelling an execution
// aborts its transfer, which closes its connection (or resets its HTTP/2
// stream), and its callback is dropped.
//
// Thread-safe: Fetch may be called from any thread; callbacks run on the
// event thread.
class HttpFetcher : public Fetcher {
 public:
  // The FetcherFactory for the `http` and `https` schemes. Fails with
  // INVALID_ARGUMENT if the URI has no host or does not parse as a URL, or a
  // policy header is not a valid HTTP header.
  static absl::StatusOr<std::unique_ptr<Fetcher>> Create(
      const FetcherUri& uri, const FetcherPolicy& policy,
      const FetcherEnvironment& environment);

  HttpFetcher(const HttpFetcher&) = delete;
  HttpFetcher& operator=(const HttpFetcher&) = delete;

  // Stops the event thread. Transfers still in flight are aborted and their
  // callbacks dropped without being called.
  ~HttpFetcher() override;

  void Fetch(FetchRequest request, FetchCallback done) override;

  // The status code a final HTTP status maps to: 400 INVALID_ARGUMENT,
  // 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 409 ABORTED,
  // 429 RESOURCE_EXHAUSTED, 499 CANCELLED, 500 INTERNAL, 501 UNIMPLEMENTED,
  // 502 and 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED; any other 4xx, and 3xx,
  // FAILED_PRECONDITION; any other 5xx INTERNAL; 2xx OK; anything else
  // UNKNOWN.
  static absl::StatusCode HttpStatusToCode(long http_status);

 private:
  class EventLoop;

  HttpFetcher(std::string url_template, const FetcherPolicy& policy,
              std::shared_ptr<EventLoop> loop);

  const std::string url_template_;
  const FetcherPolicy policy_;
  // Shared with the cancellation callbacks, which may outlive the fetcher.
  const std::shared_ptr<EventLoop> loop_;
  // Last: runs loop_.
  std::thread thread_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_FETCHERS_HTTP_FETCHER_H_
