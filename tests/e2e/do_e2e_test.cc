// End-to-end tests of unary Do (and Forget) against a real singleflightd.
#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "client/client.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

TEST(DoE2eTest, HundredConcurrentCallersShareOneFlight) {
  auto server = ServerProcess::Start({"--fetcher=slow=echo:?delay=2s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  constexpr int kCallers = 100;
  std::vector<absl::StatusOr<DoResult>> results(kCallers);
  absl::Notification go;
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      go.WaitForNotification();
      results[i] = client->Do("hot", "slow");
    });
  }
  go.Notify();
  std::vector<v1::Flight> flights;
  size_t most_flights = 0;
  bool all_waiting = PollUntil(absl::Seconds(10), [&] {
    flights = FlightsFor(*client, "hot");
    most_flights = std::max(most_flights, flights.size());
    return flights.size() == 1 && flights[0].waiters() == kCallers;
  });
  for (std::thread& caller : callers) caller.join();

  EXPECT_TRUE(all_waiting) << "last seen: " << flights.size() << " flights, "
                           << (flights.empty() ? 0 : flights[0].waiters())
                           << " waiters on the first";
  EXPECT_EQ(most_flights, 1u);
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(results[i].ok())
        << "caller " << i << ": " << results[i].status();
    EXPECT_EQ(results[i]->value, "hot") << "caller " << i;
    EXPECT_TRUE(results[i]->shared) << "caller " << i;
  }
}

TEST(DoE2eTest, RejectsBadInputAndKeepsServing) {
  auto server = ServerProcess::Start({"--fetcher=slow=echo:?delay=1s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  EXPECT_EQ(client->Do("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Do(std::string(4097, 'k')).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<DoResult> longest = client->Do(std::string(4096, 'k'));
  ASSERT_TRUE(longest.ok()) << longest.status();
  EXPECT_EQ(longest->value, std::string(4096, 'k'));

  absl::Status unknown = client->Do("key", "nope").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound) << unknown;
  EXPECT_TRUE(absl::StrContains(unknown.message(), "echo")) << unknown;
  EXPECT_TRUE(absl::StrContains(unknown.message(), "slow")) << unknown;

  absl::StatusOr<DoResult> after = client->Do("still-serving");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->value, "still-serving");
}

TEST(DoE2eTest, StarterPayloadIsTheValue) {
  auto server = ServerProcess::Start({"--fetcher=slow=echo:?delay=1s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  absl::StatusOr<DoResult> immediate = client->Do("key", "", "payload");
  ASSERT_TRUE(immediate.ok()) << immediate.status();
  EXPECT_EQ(immediate->value, "payload");

  absl::StatusOr<DoResult> starter;
  std::thread starting([&] { starter = client->Do("p", "slow", "A"); });
  bool started = WaitForWaiters(*client, "p", 1);
  absl::StatusOr<DoResult> joiner = client->Do("p", "slow", "B");
  starting.join();

  ASSERT_TRUE(started);
  ASSERT_TRUE(starter.ok()) << starter.status();
  ASSERT_TRUE(joiner.ok()) << joiner.status();
  EXPECT_EQ(starter->value, "A");
  EXPECT_EQ(joiner->value, "A");
  EXPECT_TRUE(starter->shared);
  EXPECT_TRUE(joiner->shared);
}

// gRPC's default receive limit is 4 MiB; the server's values go to 64 MiB.
TEST(DoE2eTest, ClientReceivesValuesAboveGrpcsDefaultLimit) {
  auto server = ServerProcess::Start({"--max_message_bytes=16777216"});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string ten_mib(10 << 20, 'v');

  std::unique_ptr<Client> client = Client::Connect((*server)->target());
  absl::StatusOr<DoResult> big = client->Do("big", "", ten_mib);
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->value.size(), ten_mib.size());

  ClientOptions limited;
  limited.max_receive_message_bytes = 1 << 20;
  std::unique_ptr<Client> small =
      Client::Connect((*server)->target(), std::move(limited));
  EXPECT_EQ(small->Do("big", "", ten_mib).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(DoE2eTest, ForgetLetsTheNextCallStartANewFlight) {
  auto server = ServerProcess::Start({"--fetcher=slow=echo:?delay=1s"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  absl::StatusOr<DoResult> first;
  absl::StatusOr<DoResult> second;
  std::thread first_caller([&] { first = client->Do("f", "slow"); });
  bool first_started = WaitForWaiters(*client, "f", 1);
  absl::StatusOr<bool> forgotten = client->Forget("f", "slow");
  std::vector<v1::Flight> after_forget = FlightsFor(*client, "f");
  std::thread second_caller([&] { second = client->Do("f", "slow"); });
  std::vector<v1::Flight> flights;
  bool two_flights = PollUntil(absl::Seconds(10), [&] {
    flights = FlightsFor(*client, "f");
    return flights.size() == 2;
  });
  first_caller.join();
  second_caller.join();

  ASSERT_TRUE(first_started);
  ASSERT_TRUE(forgotten.ok()) << forgotten.status();
  EXPECT_TRUE(*forgotten);
  ASSERT_EQ(after_forget.size(), 1u);
  EXPECT_TRUE(after_forget[0].forgotten());
  ASSERT_TRUE(two_flights);
  EXPECT_NE(flights[0].forgotten(), flights[1].forgotten());
  for (const v1::Flight& flight : flights) EXPECT_EQ(flight.waiters(), 1u);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(first->shared);
  EXPECT_FALSE(second->shared);

  absl::StatusOr<bool> idle = client->Forget("f", "slow");
  ASSERT_TRUE(idle.ok()) << idle.status();
  EXPECT_FALSE(*idle);
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
