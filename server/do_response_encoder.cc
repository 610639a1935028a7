#include "server/do_response_encoder.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace singleflight {
namespace {

// Field numbers of singleflight.v1.DoResponse, as protobuf wire tags.
constexpr uint8_t kIdTag = (1 << 3) | 0;      // id: uint64, varint
constexpr uint8_t kValueTag = (2 << 3) | 2;   // value: bytes, length-delimited
constexpr uint8_t kSharedTag = (3 << 3) | 0;  // shared: bool, varint
constexpr uint8_t kStatusTag = (4 << 3) | 2;  // status: Status, length-delim.
constexpr uint8_t kAgeTag = (5 << 3) | 2;     // age: Duration, length-delim.
constexpr uint8_t kStaleTag = (6 << 3) | 0;   // stale: bool, varint
// And of google.protobuf.Duration.
constexpr uint8_t kSecondsTag = (1 << 3) | 0;  // seconds: int64, varint
constexpr uint8_t kNanosTag = (2 << 3) | 0;    // nanos: int32, varint
// And of singleflight.v1.Status.
constexpr uint8_t kCodeTag = (1 << 3) | 0;     // code: int32, varint
constexpr uint8_t kMessageTag = (2 << 3) | 2;  // message: string

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

void AppendValueHead(const std::string& value, std::string& out) {
  if (value.empty()) return;
  out.push_back(static_cast<char>(kValueTag));
  AppendVarint(value.size(), out);
}

void AppendShared(bool shared, std::string& out) {
  if (!shared) return;
  out.push_back(static_cast<char>(kSharedTag));
  out.push_back(1);
}

// A cached value's age and staleness; nothing for a value just executed.
void AppendFreshness(absl::Duration age, bool stale, std::string& out) {
  if (age > absl::ZeroDuration()) {
    int64_t nanos = absl::ToInt64Nanoseconds(age);
    std::string duration;
    if (nanos / 1000000000 != 0) {
      duration.push_back(static_cast<char>(kSecondsTag));
      AppendVarint(static_cast<uint64_t>(nanos / 1000000000), duration);
    }
    if (nanos % 1000000000 != 0) {
      duration.push_back(static_cast<char>(kNanosTag));
      AppendVarint(static_cast<uint64_t>(nanos % 1000000000), duration);
    }
    out.push_back(static_cast<char>(kAgeTag));
    AppendVarint(duration.size(), out);
    out += duration;
  }
  if (stale) {
    out.push_back(static_cast<char>(kStaleTag));
    out.push_back(1);
  }
}

// The Status field, present even when empty (code 0, no message).
void AppendStatus(const absl::Status& status, std::string& out) {
  std::string fields;
  if (!status.ok()) {
    fields.push_back(static_cast<char>(kCodeTag));
    // int32 on the wire: a negative code would be sign-extended.
    AppendVarint(static_cast<uint64_t>(static_cast<int64_t>(status.code())),
                 fields);
  }
  if (!status.message().empty()) {
    fields.push_back(static_cast<char>(kMessageTag));
    AppendVarint(status.message().size(), fields);
    fields.append(status.message().data(), status.message().size());
  }
  out.push_back(static_cast<char>(kStatusTag));
  AppendVarint(fields.size(), out);
  out += fields;
}

void ReleaseResult(void* result) {
  delete static_cast<std::shared_ptr<const FlightResult>*>(result);
}

// `head`, then `value` (the bytes of `result`, or nothing), then `tail`.
grpc::ByteBuffer Assemble(const std::string& head,
                          std::shared_ptr<const FlightResult> result,
                          const std::string* value, const std::string& tail) {
  if (value == nullptr || value->size() <= kCopyLimit) {
    std::string whole = head;
    if (value != nullptr) whole += *value;
    whole += tail;
    grpc::Slice slice(whole);
    return grpc::ByteBuffer(&slice, 1);
  }
  std::vector<grpc::Slice> slices;
  slices.emplace_back(head);
  // The slice reads the shared value in place and holds a reference to it
  // until gRPC has sent it.
  slices.emplace_back(
      const_cast<char*>(value->data()), value->size(), &ReleaseResult,
      new std::shared_ptr<const FlightResult>(std::move(result)));
  if (!tail.empty()) slices.emplace_back(tail);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace

grpc::ByteBuffer EncodeDoResponse(std::shared_ptr<const FlightResult> result,
                                  bool shared, absl::Duration age, bool stale) {
  const std::string* value = &result->value;
  std::string head;
  AppendValueHead(*value, head);
  std::string tail;
  AppendShared(shared, tail);
  AppendFreshness(age, stale, tail);
  return Assemble(head, std::move(result), value, tail);
}

grpc::ByteBuffer EncodeDoStreamResponse(
    uint64_t id, std::shared_ptr<const FlightResult> result, bool shared,
    absl::Duration age, bool stale) {
  bool ok = result->status.ok();
  const std::string* value = ok ? &result->value : nullptr;
  std::string head;
  if (id != 0) {
    head.push_back(static_cast<char>(kIdTag));
    AppendVarint(id, head);
  }
  if (ok) AppendValueHead(*value, head);
  std::string tail;
  if (ok) AppendShared(shared, tail);
  AppendStatus(result->status, tail);
  if (ok) AppendFreshness(age, stale, tail);
  return Assemble(head, std::move(result), value, tail);
}

}  // namespace singleflight
