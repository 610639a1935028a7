#ifndef SINGLEFLIGHT_SERVER_DO_RESPONSE_ENCODER_H_
#define SINGLEFLIGHT_SERVER_DO_RESPONSE_ENCODER_H_

#include <grpcpp/support/byte_buffer.h>

#include <memory>

#include "core/group.h"

namespace singleflight {

// The wire form of a successful unary DoResponse {value, shared}, built
// without serializing a message or copying a large value: the value's bytes
// go out from the flight's shared result, which the buffer keeps alive, so a
// flight's value costs the same whether it has one waiter or a thousand.
//
// Pure function; thread-safe.
grpc::ByteBuffer EncodeDoResponse(std::shared_ptr<const FlightResult> result,
                                  bool shared);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_DO_RESPONSE_ENCODER_H_
