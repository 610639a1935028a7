// The service's reactors, in process: a SingleFlightServer on a loopback port
// and real gRPC clients.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/server.h"

namespace singleflight {
namespace {

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerConfig config;
    config.listen = "127.0.0.1:0";
    config.fetchers = {{"slow", "echo:?delay=300ms", {}, "test"}};
    auto server = SingleFlightServer::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    target_ = absl::StrCat("127.0.0.1:", server_->port());
    client_ = Client::Connect(target_);
  }

  // Waits (bounded) until one flight is in progress with `waiters` waiters.
  void WaitForOneFlight(uint32_t waiters) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      auto flights = client_->InFlight();
      ASSERT_TRUE(flights.ok()) << flights.status();
      if (flights->flights_size() == 1 &&
          flights->flights(0).waiters() == waiters) {
        return;
      }
      absl::SleepFor(absl::Milliseconds(2));
    }
    FAIL() << "no flight with " << waiters << " waiters";
  }

  std::unique_ptr<SingleFlightServer> server_;
  std::string target_;
  std::unique_ptr<Client> client_;
};

TEST_F(ServiceTest, HealthIsServingUntilShutdown) {
  auto channel =
      grpc::CreateChannel(target_, grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, {}, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

// Immediate results complete inside Group::Do, on the reading thread: the
// stream's write queue must keep every one of them, in order of completion.
TEST_F(ServiceTest, StreamOfManyImmediateItemsGetsEveryReply) {
  std::vector<v1::DoRequest> requests;
  for (int i = 1; i <= 1000; ++i) {
    v1::DoRequest request;
    request.set_key(absl::StrCat("key", i % 7));
    request.set_id(i);
    requests.push_back(request);
  }
  absl::flat_hash_set<uint64_t> ids;
  absl::Status status =
      client_->DoStream(requests, [&](const v1::DoResponse& r) {
        EXPECT_EQ(r.status().code(), 0);
        EXPECT_EQ(r.value(), absl::StrCat("key", r.id() % 7));
        EXPECT_TRUE(ids.insert(r.id()).second) << "id " << r.id() << " twice";
      });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(ids.size(), 1000u);
}

TEST_F(ServiceTest, EmptyStreamEndsOk) {
  int replies = 0;
  EXPECT_TRUE(
      client_->DoStream({}, [&](const v1::DoResponse&) { ++replies; }).ok());
  EXPECT_EQ(replies, 0);
}

TEST_F(ServiceTest, UnaryAndStreamCallersShareOneFlight) {
  std::atomic<bool> unary_shared{false};
  std::thread unary([&] {
    auto result = client_->Do("shared-key", "slow");
    ASSERT_TRUE(result.ok()) << result.status();
    unary_shared = result->shared;
  });
  v1::DoRequest request;
  request.set_key("shared-key");
  request.set_fetcher("slow");
  request.set_id(9);
  WaitForOneFlight(1);  // The unary call is in, so both will share.
  bool stream_shared = false;
  EXPECT_TRUE(client_
                  ->DoStream({request},
                             [&](const v1::DoResponse& r) {
                               stream_shared = r.shared();
                               EXPECT_EQ(r.id(), 9u);
                             })
                  .ok());
  unary.join();
  EXPECT_TRUE(stream_shared);
  EXPECT_TRUE(unary_shared);
}

TEST_F(ServiceTest, ShutdownLetsFlightsFinish) {
  std::vector<std::thread> callers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 10; ++i) {
    callers.emplace_back([&] {
      if (client_->Do("drain", "slow").ok()) ok++;
    });
  }
  WaitForOneFlight(10);
  server_->Shutdown(absl::Seconds(5));
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(ok.load(), 10);
}

}  // namespace
}  // namespace singleflight
