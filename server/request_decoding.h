#ifndef SINGLEFLIGHT_SERVER_REQUEST_DECODING_H_
#define SINGLEFLIGHT_SERVER_REQUEST_DECODING_H_

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "singleflight/v1/singleflight.pb.h"

namespace singleflight {

// Decoding of the DoRequests that Do and DoStream receive raw (ByteBuffer),
// so that a request that does not parse is answered, not mistaken for the end
// of a stream. Both functions accept any bytes at all (they are fuzzed).
//
// Pure functions; thread-safe.

// Parses a DoRequest from its wire form; INVALID_ARGUMENT (saying why) if it
// does not parse.
absl::Status DecodeDoRequest(const grpc::ByteBuffer& raw,
                             v1::DoRequest* request);

// The id (field 4) of a request that did not parse, read leniently from its
// bytes; 0 if none can be read.
uint64_t SalvageRequestId(absl::string_view bytes);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_REQUEST_DECODING_H_
