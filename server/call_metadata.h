#ifndef SINGLEFLIGHT_SERVER_CALL_METADATA_H_
#define SINGLEFLIGHT_SERVER_CALL_METADATA_H_

#include <grpcpp/support/string_ref.h>

#include <map>
#include <string>

#include "core/fetcher.h"

namespace singleflight {

// What a call's metadata means to its fetcher's flights.
struct CallMetadata {
  // The values of the policy's key_metadata, encoded so that callers that
  // differ in any of them never share a flight (Call::scope).
  std::string scope;
  // The policy's forward_metadata, as the caller sent it (Call::metadata).
  Metadata forwarded;
};

// Picks the fetcher's key_metadata and forward_metadata out of a call's
// client metadata. Pure function; thread-safe.
CallMetadata ExtractCallMetadata(
    const FetcherPolicy& policy,
    const std::multimap<grpc::string_ref, grpc::string_ref>& client_metadata);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_CALL_METADATA_H_
