// End-to-end tests of DoStream against a real singleflightd.
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

TEST(StreamE2eTest, RepliesArriveInCompletionOrder) {
  auto server = ServerProcess::Start(
      {"--fetcher=fast=echo:?delay=100ms", "--fetcher=slow=echo:?delay=600ms"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  // Item i asks for key k(i % 10); even keys go to the slow fetcher, so the
  // first item sent is among the last answered.
  constexpr int kItems = 30;
  constexpr int kKeys = 10;
  auto key_of = [](int item) { return absl::StrCat("k", item % kKeys); };
  auto slow = [](int item) { return item % kKeys % 2 == 0; };
  std::vector<v1::DoRequest> requests;
  for (int i = 0; i < kItems; ++i) {
    requests.push_back(
        MakeRequest(key_of(i), slow(i) ? "slow" : "fast", i + 1));
  }
  std::vector<v1::DoResponse> replies;
  absl::Status status = client->DoStream(
      requests, [&](const v1::DoResponse& reply) { replies.push_back(reply); });

  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(replies.size(), static_cast<size_t>(kItems));
  std::set<uint64_t> ids;
  int fast_replies = 0;
  for (size_t position = 0; position < replies.size(); ++position) {
    const v1::DoResponse& reply = replies[position];
    ASSERT_GE(reply.id(), 1u);
    ASSERT_LE(reply.id(), static_cast<uint64_t>(kItems));
    int item = static_cast<int>(reply.id()) - 1;
    EXPECT_TRUE(ids.insert(reply.id()).second) << "id " << reply.id();
    EXPECT_EQ(reply.status().code(), 0) << reply.status().message();
    EXPECT_EQ(reply.value(), key_of(item)) << "id " << reply.id();
    EXPECT_TRUE(reply.shared()) << "id " << reply.id();
    // All fast replies come first.
    if (!slow(item)) {
      EXPECT_EQ(static_cast<int>(position), fast_replies)
          << "id " << reply.id() << " (fast) after a slow reply";
      ++fast_replies;
    }
  }
  EXPECT_EQ(fast_replies, kItems / 2);
}

TEST(StreamE2eTest, FailedItemCarriesItsStatusAndStreamGoesOn) {
  auto server = ServerProcess::Start({});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  std::vector<v1::DoResponse> replies;
  absl::Status status = client->DoStream(
      {MakeRequest("a", "", 1), MakeRequest("b", "nope", 2),
       MakeRequest("", "", 3), MakeRequest("c", "", 4)},
      [&](const v1::DoResponse& reply) { replies.push_back(reply); });

  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(replies.size(), 4u);
  std::set<uint64_t> ids;
  for (const v1::DoResponse& reply : replies) {
    ids.insert(reply.id());
    switch (reply.id()) {
      case 1:
      case 4:
        EXPECT_EQ(reply.status().code(), 0) << reply.status().message();
        EXPECT_EQ(reply.value(), reply.id() == 1 ? "a" : "c");
        break;
      case 2:
        EXPECT_EQ(reply.status().code(), 5);  // NOT_FOUND
        EXPECT_TRUE(absl::StrContains(reply.status().message(), "nope"))
            << reply.status().message();
        EXPECT_EQ(reply.value(), "");
        break;
      case 3:
        EXPECT_EQ(reply.status().code(), 3);  // INVALID_ARGUMENT
        break;
    }
  }
  EXPECT_EQ(ids, (std::set<uint64_t>{1, 2, 3, 4}));
}

TEST(StreamE2eTest, StreamItemAndUnaryCallShareOneFlight) {
  auto server = ServerProcess::Start({"--fetcher=slow=echo:?delay=1s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  absl::StatusOr<DoResult> unary;
  std::thread unary_caller([&] { unary = client->Do("both", "slow"); });
  bool unary_started = WaitForWaiters(*client, "both", 1);
  std::vector<v1::DoResponse> replies;
  absl::Status stream_status;
  std::thread streamer([&] {
    stream_status = client->DoStream(
        {MakeRequest("both", "slow", 7)},
        [&](const v1::DoResponse& reply) { replies.push_back(reply); });
  });
  std::vector<v1::Flight> flights;
  bool joined = PollUntil(absl::Seconds(10), [&] {
    flights = FlightsFor(*client, "both");
    return flights.size() == 1 && flights[0].waiters() == 2;
  });
  unary_caller.join();
  streamer.join();

  EXPECT_TRUE(unary_started);
  EXPECT_TRUE(joined) << flights.size() << " flights";
  ASSERT_TRUE(unary.ok()) << unary.status();
  EXPECT_EQ(unary->value, "both");
  EXPECT_TRUE(unary->shared);
  ASSERT_TRUE(stream_status.ok()) << stream_status;
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].id(), 7u);
  EXPECT_EQ(replies[0].value(), "both");
  EXPECT_TRUE(replies[0].shared());
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
