#include "server/do_response_encoder.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace singleflight {
namespace {

// Field numbers of singleflight.v1.DoResponse, as protobuf wire tags.
constexpr uint8_t kValueTag = (2 << 3) | 2;   // value: bytes, length-delimited
constexpr uint8_t kSharedTag = (3 << 3) | 0;  // shared: bool, varint

// Values up to this size are copied next to their tag: one small slice is
// cheaper than a reference-counted one.
constexpr size_t kCopyLimit = 1024;

void AppendVarint(uint64_t value, std::string& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void ReleaseResult(void* result) {
  delete static_cast<std::shared_ptr<const FlightResult>*>(result);
}

}  // namespace

grpc::ByteBuffer EncodeDoResponse(std::shared_ptr<const FlightResult> result,
                                  bool shared) {
  const std::string& value = result->value;
  std::string head;
  if (!value.empty()) {
    head.push_back(static_cast<char>(kValueTag));
    AppendVarint(value.size(), head);
  }
  std::string tail;
  if (shared) {
    tail.push_back(static_cast<char>(kSharedTag));
    tail.push_back(1);
  }
  if (value.size() <= kCopyLimit) {
    std::string whole = head + value + tail;
    grpc::Slice slice(whole);
    return grpc::ByteBuffer(&slice, 1);
  }
  std::vector<grpc::Slice> slices;
  slices.emplace_back(head);
  // The slice reads the shared value in place and holds a reference to it
  // until gRPC has sent it.
  slices.emplace_back(
      const_cast<char*>(value.data()), value.size(), &ReleaseResult,
      new std::shared_ptr<const FlightResult>(std::move(result)));
  if (!tail.empty()) slices.emplace_back(tail);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace singleflight
