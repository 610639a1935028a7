#ifndef SINGLEFLIGHT_SERVER_FORWARDED_CALL_H_
#define SINGLEFLIGHT_SERVER_FORWARDED_CALL_H_

#include <grpcpp/generic/async_generic_service.h>

#include <atomic>

#include "server/proxy_upstream.h"

namespace singleflight {

// Forwards one call of any kind (unary, client-, server- or bidi-streaming)
// to the upstream, one to one: the caller's end-to-end metadata and deadline
// go up; messages flow both ways, full duplex, one message in flight per
// direction (so that a slow reader slows its writer, through HTTP/2 flow
// control, rather than filling the proxy's memory); the upstream's initial
// metadata, messages, status, details and trailing metadata come back. A
// caller that cancels cancels the upstream call; an upstream that fails ends
// the caller's call with its status.
//
// A method `known_unary` (from its descriptors) takes a shorter path: one
// request message read, one unary upstream call, and the answer written
// with its status at once (about half the gRPC operations).
//
// Returns the reactor of the caller's call, which deletes itself (and the
// upstream call) once both calls are over. `open_calls` counts the calls
// not yet over; `strip_authorization` keeps the caller's `authorization`
// metadata (meant for this tier) from the upstream. A call whose metadata
// gRPC could not send on is refused with INVALID_ARGUMENT.
// REQUIRES: `upstream` outlives the call.
grpc::ServerGenericBidiReactor* StartForwardedCall(
    grpc::GenericCallbackServerContext* context, ProxyUpstream* upstream,
    bool known_unary, bool strip_authorization, std::atomic<int>* open_calls);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_FORWARDED_CALL_H_
