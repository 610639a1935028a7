#include "server/request_decoding.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace {

grpc::ByteBuffer Wire(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

TEST(DecodeDoRequestTest, ParsesARequest) {
  v1::DoRequest sent;
  sent.set_key("k");
  sent.set_fetcher("f");
  sent.set_payload(std::string("\xff\x00", 2));
  sent.set_id(7);
  v1::DoRequest request;
  ASSERT_TRUE(DecodeDoRequest(Wire(sent.SerializeAsString()), &request).ok());
  EXPECT_EQ(request.SerializeAsString(), sent.SerializeAsString());
}

TEST(DecodeDoRequestTest, EmptyBytesAreAnEmptyRequest) {
  v1::DoRequest request;
  EXPECT_TRUE(DecodeDoRequest(Wire(""), &request).ok());
  EXPECT_EQ(request.key(), "");
}

TEST(DecodeDoRequestTest, KeyThatIsNotUtf8IsRefusedSayingSo) {
  v1::DoRequest request;
  absl::Status status = DecodeDoRequest(
      Wire(std::string("\x0a\x02\xc3\x28\x20\x05", 6)), &request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "key is not valid UTF-8"))
      << status.message();
}

TEST(DecodeDoRequestTest, TruncatedBytesAreRefusedSayingWhere) {
  v1::DoRequest request;
  // Field 1 announces 5 bytes and has 1.
  absl::Status status =
      DecodeDoRequest(Wire(std::string("\x0a\x05k", 3)), &request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "not a well-formed"))
      << status.message();
}

TEST(SalvageRequestIdTest, ReadsTheIdAfterABadKey) {
  EXPECT_EQ(SalvageRequestId(std::string("\x0a\x02\xff\xfe\x20\x2a", 6)), 42u);
}

TEST(SalvageRequestIdTest, ReadsALargeIdBeforeGarbage) {
  // id = 2^40, then a tag with field number 0.
  EXPECT_EQ(
      SalvageRequestId(std::string("\x20\x80\x80\x80\x80\x80\x20\x00\xff", 9)),
      uint64_t{1} << 40);
}

TEST(SalvageRequestIdTest, LastIdWins) {
  EXPECT_EQ(SalvageRequestId(std::string("\x20\x01\x20\x02", 4)), 2u);
}

TEST(SalvageRequestIdTest, ZeroWhenNoIdCanBeRead) {
  EXPECT_EQ(SalvageRequestId(""), 0u);
  EXPECT_EQ(SalvageRequestId(std::string("\xff\xff\xff", 3)), 0u);
  // The key's length runs past the end, hiding the id.
  EXPECT_EQ(SalvageRequestId(std::string("\x0a\x09k\x20\x03", 5)), 0u);
  // The id field with a wrong wire type (length-delimited).
  EXPECT_EQ(SalvageRequestId(std::string("\x22\x01\x05", 3)), 0u);
  // A truncated varint.
  EXPECT_EQ(SalvageRequestId(std::string("\x20\x80", 2)), 0u);
}

}  // namespace
}  // namespace singleflight
