#include "server/request_decoding.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/stubs/common.h>
#include <google/protobuf/wire_format_lite.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace singleflight {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// Field numbers of singleflight.v1.DoRequest.
constexpr int kKeyField = 1;
constexpr int kFetcherField = 2;
constexpr int kIdField = 4;

// Why `bytes`, which protobuf refused, is not a DoRequest.
std::string Diagnose(absl::string_view bytes) {
  CodedInputStream input(reinterpret_cast<const uint8_t*>(bytes.data()),
                         static_cast<int>(bytes.size()));
  int field_start = 0;
  while (uint32_t tag = input.ReadTag()) {
    int field = WireFormatLite::GetTagFieldNumber(tag);
    if ((field == kKeyField || field == kFetcherField) &&
        WireFormatLite::GetTagWireType(tag) ==
            WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      std::string text;
      if (!WireFormatLite::ReadString(&input, &text)) break;
      // The check protobuf itself applies to proto3 strings.
      if (!google::protobuf::internal::IsStructurallyValidUTF8(text)) {
        return absl::StrCat(field == kKeyField ? "key" : "fetcher",
                            " is not valid UTF-8");
      }
    } else if (!WireFormatLite::SkipField(&input, tag)) {
      break;
    }
    field_start = input.CurrentPosition();
  }
  if (input.ConsumedEntireMessage()) return "it does not parse as one";
  return absl::StrCat(
      "it is not a well-formed protobuf message (the field at byte ",
      field_start, " of ", bytes.size(), ")");
}

}  // namespace

absl::Status DecodeDoRequest(const grpc::ByteBuffer& raw,
                             v1::DoRequest* request) {
  grpc::ByteBuffer buffer(raw);  // Shares the slices; no copy.
  if (grpc::SerializationTraits<v1::DoRequest>::Deserialize(&buffer, request)
          .ok()) {
    return absl::OkStatus();
  }
  grpc::Slice bytes;
  if (!raw.DumpToSingleSlice(&bytes).ok()) {
    return absl::InvalidArgumentError("the request is not a DoRequest");
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "the request is not a DoRequest: ",
      Diagnose(absl::string_view(reinterpret_cast<const char*>(bytes.begin()),
                                 bytes.size()))));
}

uint64_t SalvageRequestId(absl::string_view bytes) {
  CodedInputStream input(reinterpret_cast<const uint8_t*>(bytes.data()),
                         static_cast<int>(bytes.size()));
  uint64_t id = 0;
  while (uint32_t tag = input.ReadTag()) {
    if (tag ==
        WireFormatLite::MakeTag(kIdField, WireFormatLite::WIRETYPE_VARINT)) {
      // As in protobuf, the last occurrence wins.
      uint64_t value;
      if (!input.ReadVarint64(&value)) break;
      id = value;
    } else if (!WireFormatLite::SkipField(&input, tag)) {
      break;
    }
  }
  return id;
}

}  // namespace singleflight
