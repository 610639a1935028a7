// Fuzzes how Do and DoStream take a request: the input is a DoRequest as it
// comes off the wire. It is decoded by DecodeDoRequest (from one slice, and
// from three, as gRPC may hand it over), its id salvaged by SalvageRequestId,
// and, decoded, resolved by ResolveRequest against a registry holding the
// echo fetcher. Do and DoStream share these functions.
//
// Checked: decoding never crashes, fails with INVALID_ARGUMENT only, and
// does not depend on how the bytes are sliced; a decoded request
// re-serializes into bytes that decode to the same message; the id salvaged
// from a decoded message (as received, or re-serialized) is its id field;
// ResolveRequest accepts exactly the non-empty keys up to kMaxKeyBytes for
// the fetchers "" and "echo", with INVALID_ARGUMENT or NOT_FOUND otherwise.
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "core/fetcher_registry.h"
#include "fetchers/builtin_fetchers.h"
#include "server/request_decoding.h"
#include "server/request_validation.h"
#include "singleflight/v1/singleflight.pb.h"
#include "tests/fuzz/fuzz_check.h"

namespace singleflight {
namespace {

const FetcherRegistry& EchoRegistry() {
  static const FetcherRegistry* const registry = [] {
    auto* registry = new FetcherRegistry(FetcherEnvironment());
    RegisterBuiltinSchemes(*registry);
    FuzzCheck(registry->Add(kDefaultFetcherName, kDefaultFetcherUri).ok(),
              "the echo fetcher is added");
    return registry;
  }();
  return *registry;
}

// `bytes` in three slices, cut at a third and two thirds.
grpc::ByteBuffer InThreeSlices(absl::string_view bytes) {
  size_t first = bytes.size() / 3;
  size_t second = 2 * bytes.size() / 3;
  grpc::Slice slices[] = {
      grpc::Slice(bytes.data(), first),
      grpc::Slice(bytes.data() + first, second - first),
      grpc::Slice(bytes.data() + second, bytes.size() - second)};
  return grpc::ByteBuffer(slices, 3);
}

absl::Status Decode(absl::string_view bytes, v1::DoRequest* request) {
  grpc::Slice slice(bytes.data(), bytes.size());
  return DecodeDoRequest(grpc::ByteBuffer(&slice, 1), request);
}

void CheckResolve(const v1::DoRequest& request) {
  absl::StatusOr<const NamedFetcher*> fetcher =
      ResolveRequest(EchoRegistry(), request.fetcher(), request.key());
  if (request.key().empty() || request.key().size() > kMaxKeyBytes) {
    FuzzCheck(fetcher.status().code() == absl::StatusCode::kInvalidArgument,
              "a bad key is INVALID_ARGUMENT");
  } else if (request.fetcher().empty() || request.fetcher() == "echo") {
    FuzzCheck(fetcher.ok() && (*fetcher)->name == "echo",
              "a good key resolves to the echo fetcher");
  } else {
    FuzzCheck(fetcher.status().code() == absl::StatusCode::kNotFound,
              "an unknown fetcher is NOT_FOUND");
  }
}

}  // namespace
}  // namespace singleflight

// Protobuf logs every string that is not UTF-8; the fuzzer makes many.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace singleflight;  // NOLINT(build/namespaces)
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  v1::DoRequest request;
  absl::Status decoded = Decode(bytes, &request);
  uint64_t salvaged = SalvageRequestId(bytes);

  v1::DoRequest sliced;
  absl::Status decoded_sliced = DecodeDoRequest(InThreeSlices(bytes), &sliced);
  FuzzCheck(decoded == decoded_sliced, "slicing does not change decoding");
  if (!decoded.ok()) {
    FuzzCheck(decoded.code() == absl::StatusCode::kInvalidArgument &&
                  absl::StartsWith(decoded.message(),
                                   "the request is not a DoRequest"),
              "a request that does not decode is INVALID_ARGUMENT");
    return 0;
  }
  std::string serialized = request.SerializeAsString();
  FuzzCheck(sliced.SerializeAsString() == serialized,
            "slicing does not change the message");
  FuzzCheck(salvaged == request.id(),
            "the id salvaged from a decoded message is its id");

  v1::DoRequest again;
  FuzzCheck(Decode(serialized, &again).ok() &&
                again.SerializeAsString() == serialized,
            "a decoded request re-serializes into the same message");
  FuzzCheck(SalvageRequestId(serialized) == request.id(),
            "the id salvaged from a re-serialized message is its id");
  CheckResolve(request);
  return 0;
}
