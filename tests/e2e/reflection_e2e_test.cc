// Server reflection and health, as grpcurl-style tools use them, against a
// real singleflightd.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

using ::grpc::reflection::v1alpha::ServerReflection;
using ::grpc::reflection::v1alpha::ServerReflectionRequest;
using ::grpc::reflection::v1alpha::ServerReflectionResponse;
using ::testing::IsSupersetOf;

// One request/reply exchange on the reflection stream.
ServerReflectionResponse Ask(ServerReflection::Stub& stub,
                             const ServerReflectionRequest& request) {
  grpc::ClientContext context;
  auto stream = stub.ServerReflectionInfo(&context);
  ServerReflectionResponse response;
  EXPECT_TRUE(stream->Write(request));
  stream->WritesDone();
  EXPECT_TRUE(stream->Read(&response));
  EXPECT_TRUE(stream->Finish().ok());
  return response;
}

class ReflectionE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = ServerProcess::Start({});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(server_->target(),
                                   grpc::InsecureChannelCredentials());
  }

  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ReflectionE2eTest, ListsEveryService) {
  auto stub = ServerReflection::NewStub(channel_);
  ServerReflectionRequest request;
  request.set_list_services("");
  ServerReflectionResponse response = Ask(*stub, request);
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names, IsSupersetOf({"singleflight.v1.SingleFlight",
                                   "grpc.health.v1.Health"}));
}

TEST_F(ReflectionE2eTest, DescribesTheServicesSymbols) {
  auto stub = ServerReflection::NewStub(channel_);
  for (const char* symbol :
       {"singleflight.v1.SingleFlight", "singleflight.v1.DoRequest",
        "grpc.health.v1.Health"}) {
    ServerReflectionRequest request;
    request.set_file_containing_symbol(symbol);
    ServerReflectionResponse response = Ask(*stub, request);
    EXPECT_FALSE(response.has_error_response())
        << symbol << ": " << response.error_response().error_message();
    EXPECT_GT(response.file_descriptor_response().file_descriptor_proto_size(),
              0)
        << symbol;
  }
}

TEST_F(ReflectionE2eTest, HealthIsServing) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, {}, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ReflectionE2eTest, HealthKnowsTheServiceByName) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("singleflight.v1.SingleFlight");
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health->Check(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_code() << ": "
                           << status.error_message();
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
