#ifndef SINGLEFLIGHT_SERVER_COALESCED_CALL_H_
#define SINGLEFLIGHT_SERVER_COALESCED_CALL_H_

#include <grpcpp/generic/async_generic_service.h>

#include <atomic>
#include <string>

#include "absl/strings/string_view.h"
#include "core/fetcher.h"
#include "core/group.h"
#include "server/metrics.h"

namespace singleflight {

// The flight key of a proxied request: the SHA-256 of its bytes, in
// lower-case hex, as InFlight shows it and Forget takes it.
std::string ProxyFlightKey(absl::string_view request_bytes);

// Serves one call of a coalesced unary method: reads its request message
// (and the end of the caller's stream: a second message fails the call with
// INTERNAL), then joins the flight for (method, key_metadata values,
// ProxyFlightKey(request)), or starts one that calls the upstream through
// `fetcher` (a ProxyFetcher). Every waiter gets the upstream's answer
// exactly: response bytes (shared, not copied), status code, message and
// details, and initial and trailing metadata. A caller that cancels, or
// whose deadline passes, leaves the flight; when the last one leaves, the
// upstream call is cancelled.
//
// Returns the reactor, which deletes itself in OnDone. `open_calls` counts
// the calls not yet over. REQUIRES: `group`, `fetcher` and `metrics` outlive
// the call.
grpc::ServerGenericBidiReactor* StartCoalescedCall(
    grpc::GenericCallbackServerContext* context, Group* group,
    const NamedFetcher* fetcher, ServerMetrics* metrics,
    std::atomic<int>* open_calls);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_COALESCED_CALL_H_
