#include "server/do_response_encoder.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <string>

#include "gtest/gtest.h"
#include "singleflight/v1/singleflight.grpc.pb.h"

namespace singleflight {
namespace {

v1::DoResponse Decode(grpc::ByteBuffer buffer) {
  v1::DoResponse response;
  grpc::Status status = grpc::SerializationTraits<v1::DoResponse>::Deserialize(
      &buffer, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

class DoResponseEncoderTest
    : public ::testing::TestWithParam<std::tuple<size_t, bool>> {};

TEST_P(DoResponseEncoderTest, DecodesAsTheMessage) {
  auto [size, shared] = GetParam();
  std::string value(size, '\0');
  for (size_t i = 0; i < size; ++i) value[i] = static_cast<char>(i * 7);
  auto result = std::make_shared<const FlightResult>(
      FlightResult{absl::OkStatus(), value});
  v1::DoResponse response = Decode(EncodeDoResponse(result, shared));
  EXPECT_EQ(response.value(), value);
  EXPECT_EQ(response.shared(), shared);
  EXPECT_EQ(response.id(), 0u);
  EXPECT_FALSE(response.has_status());

  v1::DoResponse expected;
  expected.set_value(value);
  expected.set_shared(shared);
  std::string wire;
  ASSERT_TRUE(expected.SerializeToString(&wire));
  grpc::ByteBuffer buffer = EncodeDoResponse(result, shared);
  EXPECT_EQ(buffer.Length(), wire.size());  // The canonical encoding.
}

INSTANTIATE_TEST_SUITE_P(Sizes, DoResponseEncoderTest,
                         ::testing::Combine(::testing::Values(0, 1, 127, 128,
                                                              1024, 1025,
                                                              300000, 1 << 20),
                                            ::testing::Bool()));

struct StreamCase {
  uint64_t id;
  absl::Status status;
  size_t value_bytes;
  bool shared;
};

class DoStreamResponseEncoderTest
    : public ::testing::TestWithParam<StreamCase> {};

// Byte for byte what the typed DoStream wrote: status always present.
TEST_P(DoStreamResponseEncoderTest, IsTheSerializedMessage) {
  const StreamCase& c = GetParam();
  std::string value(c.status.ok() ? c.value_bytes : 0, 'x');
  auto result =
      std::make_shared<const FlightResult>(FlightResult{c.status, value});
  v1::DoResponse expected;
  expected.set_id(c.id);
  if (c.status.ok()) {
    expected.set_value(value);
    expected.set_shared(c.shared);
  }
  expected.mutable_status()->set_code(static_cast<int32_t>(c.status.code()));
  expected.mutable_status()->set_message(std::string(c.status.message()));
  std::string wire;
  ASSERT_TRUE(expected.SerializeToString(&wire));

  grpc::ByteBuffer buffer = EncodeDoStreamResponse(c.id, result, c.shared);
  grpc::Slice flat;
  ASSERT_TRUE(buffer.DumpToSingleSlice(&flat).ok());
  EXPECT_EQ(
      std::string(reinterpret_cast<const char*>(flat.begin()), flat.size()),
      wire);
  EXPECT_TRUE(Decode(std::move(buffer)).has_status());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DoStreamResponseEncoderTest,
    ::testing::Values(
        StreamCase{0, absl::OkStatus(), 0, false},
        StreamCase{1, absl::OkStatus(), 5, true},
        StreamCase{300, absl::OkStatus(), 1025, false},
        StreamCase{uint64_t{1} << 63, absl::OkStatus(), 1 << 20, true},
        StreamCase{7, absl::NotFoundError("no fetcher \"x\""), 0, true},
        StreamCase{0, absl::InvalidArgumentError(std::string(200, 'm')), 0,
                   false},
        StreamCase{9, absl::UnavailableError(""), 0, false}));

TEST(DoResponseEncoderLifetimeTest, StreamReplyKeepsTheValueAlive) {
  auto result = std::make_shared<const FlightResult>(
      FlightResult{absl::OkStatus(), std::string(1 << 16, 'v')});
  grpc::ByteBuffer buffer = EncodeDoStreamResponse(3, result, false);
  EXPECT_EQ(result.use_count(), 2);  // Referenced, not copied.
  result.reset();
  v1::DoResponse response = Decode(std::move(buffer));
  EXPECT_EQ(response.id(), 3u);
  EXPECT_EQ(response.value(), std::string(1 << 16, 'v'));
}

TEST(DoResponseEncoderLifetimeTest, BufferKeepsTheValueAlive) {
  auto result = std::make_shared<const FlightResult>(
      FlightResult{absl::OkStatus(), std::string(1 << 16, 'v')});
  grpc::ByteBuffer buffer = EncodeDoResponse(result, true);
  EXPECT_EQ(result.use_count(), 2);
  result.reset();  // The flight is over; the reply is still being sent.
  EXPECT_EQ(Decode(std::move(buffer)).value(), std::string(1 << 16, 'v'));
}

TEST(DoResponseEncoderFreshnessTest, CarriesACachedValuesAgeAndStaleness) {
  auto result = std::make_shared<const FlightResult>(
      FlightResult{absl::OkStatus(), std::string(2000, 'v')});
  for (absl::Duration age :
       {absl::Nanoseconds(1), absl::Milliseconds(1500), absl::Seconds(7)}) {
    for (bool stale : {false, true}) {
      v1::DoResponse unary = Decode(EncodeDoResponse(result, true, age, stale));
      EXPECT_EQ(unary.value(), result->value);
      EXPECT_EQ(absl::Seconds(unary.age().seconds()) +
                    absl::Nanoseconds(unary.age().nanos()),
                age);
      EXPECT_EQ(unary.stale(), stale);
      v1::DoResponse expected;
      expected.set_value(result->value);
      expected.set_shared(true);
      expected.mutable_age()->set_seconds(unary.age().seconds());
      expected.mutable_age()->set_nanos(unary.age().nanos());
      expected.set_stale(stale);
      EXPECT_EQ(EncodeDoResponse(result, true, age, stale).Length(),
                expected.ByteSizeLong());

      v1::DoResponse item =
          Decode(EncodeDoStreamResponse(9, result, false, age, stale));
      EXPECT_EQ(item.id(), 9u);
      EXPECT_EQ(item.stale(), stale);
      EXPECT_TRUE(item.has_age());
    }
  }
  // A value just executed carries neither.
  v1::DoResponse fresh = Decode(EncodeDoResponse(result, false));
  EXPECT_FALSE(fresh.has_age());
  EXPECT_FALSE(fresh.stale());
}

}  // namespace
}  // namespace singleflight
