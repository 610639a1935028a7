#ifndef SINGLEFLIGHT_SERVER_PROXY_FETCHER_H_
#define SINGLEFLIGHT_SERVER_PROXY_FETCHER_H_

#include <cstddef>
#include <string>

#include "absl/time/time.h"
#include "core/fetcher.h"
#include "server/proxy_upstream.h"

namespace singleflight {

// The fetcher behind one coalesced proxied method: each execution is one
// call of `method` on the upstream, with the request bytes of the caller
// that started the flight (FetchRequest::payload).
//
// The value is the upstream's whole answer, encoded by EncodeProxyReply:
// initial and trailing metadata (end-to-end entries only) and the response
// message. An upstream error fails the flight with the upstream's code and
// message, carrying the metadata and grpc-status-details-bin
// (ProxyErrorStatus). A second response message fails it with INTERNAL: the
// method is not unary. A response larger than max_value_bytes fails it with
// RESOURCE_EXHAUSTED.
//
// Each call has the policy's timeout as its deadline and carries the
// policy's headers and the forwarded metadata; it is cancelled when the
// flight is (its last waiter left, it timed out, or the server stops).
//
// Thread-safe. REQUIRES: `upstream` outlives every call (it counts them).
class ProxyFetcher : public Fetcher {
 public:
  ProxyFetcher(ProxyUpstream* upstream, std::string method,
               const FetcherPolicy& policy)
      : upstream_(upstream),
        method_(std::move(method)),
        timeout_(policy.timeout),
        headers_(policy.headers),
        max_value_bytes_(policy.max_value_bytes) {}

  void Fetch(FetchRequest request, FetchCallback done) override;

 private:
  class UpstreamCall;

  ProxyUpstream* const upstream_;
  const std::string method_;
  const absl::Duration timeout_;
  const Metadata headers_;
  const size_t max_value_bytes_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_PROXY_FETCHER_H_
