#ifndef SINGLEFLIGHT_SERVER_DO_RESPONSE_ENCODER_H_
#define SINGLEFLIGHT_SERVER_DO_RESPONSE_ENCODER_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "core/group.h"

namespace singleflight {

// Wire forms of DoResponse built without serializing a message or copying a
// large value: the value's bytes go out from the flight's shared result,
// which the buffer keeps alive, so a flight's value costs the same whether it
// has one waiter or a thousand. Each is byte for byte what serializing the
// equivalent v1::DoResponse gives.
//
// Pure functions; thread-safe.

// A successful unary reply {value, shared, age, stale}; age and stale (a
// cached value's) only when not zero and false.
grpc::ByteBuffer EncodeDoResponse(std::shared_ptr<const FlightResult> result,
                                  bool shared,
                                  absl::Duration age = absl::ZeroDuration(),
                                  bool stale = false);

// A DoStream reply {id, value, shared, status, age, stale}: value, shared,
// age and stale only when `result` is OK; status always, code 0 for OK
// (stream items always carried one).
grpc::ByteBuffer EncodeDoStreamResponse(
    uint64_t id, std::shared_ptr<const FlightResult> result, bool shared,
    absl::Duration age = absl::ZeroDuration(), bool stale = false);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_DO_RESPONSE_ENCODER_H_
