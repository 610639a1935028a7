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

TEST(DoResponseEncoderLifetimeTest, BufferKeepsTheValueAlive) {
  auto result = std::make_shared<const FlightResult>(
      FlightResult{absl::OkStatus(), std::string(1 << 16, 'v')});
  grpc::ByteBuffer buffer = EncodeDoResponse(result, true);
  EXPECT_EQ(result.use_count(), 2);
  result.reset();  // The flight is over; the reply is still being sent.
  EXPECT_EQ(Decode(std::move(buffer)).value(), std::string(1 << 16, 'v'));
}

}  // namespace
}  // namespace singleflight
