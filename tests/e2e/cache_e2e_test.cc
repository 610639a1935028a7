// End-to-end tests of a fetcher's freshness policy (cache:): a real
// singleflightd in front of the real test origin (tests/origin/), which
// counts its requests.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "singleflight/v1/singleflight.grpc.pb.h"
#include "tests/testing/http_origin.h"
#include "tests/testing/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

using ::testing::HasSubstr;

class CacheE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto origin = HttpOrigin::Start();
    ASSERT_TRUE(origin.ok()) << origin.status();
    origin_ = *std::move(origin);
  }

  // Starts singleflightd with fetcher `web` on `path` of the origin (the
  // key is its last segment, choosing the origin's behaviour with
  // path_query=1) and `settings` (YAML lines under the fetcher).
  void StartServer(const std::string& settings, const std::string& query = "") {
    // Per process: ctest runs these tests in parallel, each a process.
    std::string config = ::testing::TempDir() + "cache_e2e_" +
                         std::to_string(getpid()) + "_" +
                         std::to_string(++configs_) + ".yaml";
    std::ofstream(config) << "fetchers:\n  web:\n    uri: "
                          << origin_->base_url() << "/items/{key}?path_query=1"
                          << query << "\n"
                          << settings;
    auto server = ServerProcess::Start({"--config=" + config});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = Client::Connect(server_->target());
  }

  absl::StatusOr<DoResult> Do(const std::string& key) {
    return client_->Do(key, "web");
  }

  int Hits(const std::string& key) { return origin_->Hits("/items/" + key); }

  int configs_ = 0;
  std::unique_ptr<HttpOrigin> origin_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(CacheE2eTest, FreshHitsMakeNoOriginRequest) {
  StartServer("    cache:\n      ttl: 30s\n");
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<DoResult> result = Do("k");
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->value, "/items/k");
    EXPECT_FALSE(result->stale);
    if (i > 0) {
      EXPECT_GT(result->age, absl::ZeroDuration());
    }
  }
  EXPECT_EQ(Hits("k"), 1);
  // Forget drops the cached value; Purge drops them all.
  ASSERT_TRUE(client_->Forget("k", "web").ok());
  ASSERT_TRUE(Do("k").ok());
  EXPECT_EQ(Hits("k"), 2);
  ASSERT_TRUE(Do("other").ok());
  absl::StatusOr<uint64_t> dropped = client_->Purge("", "web");
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(*dropped, 2u);
  ASSERT_TRUE(Do("k").ok());
  EXPECT_EQ(Hits("k"), 3);
}

TEST_F(CacheE2eTest, PastTtlTheStaleValueComesAtOnceAndOneRefreshRuns) {
  StartServer(
      "    cache:\n      ttl: 300ms\n      stale_while_revalidate: 30s\n",
      "&delay_ms=400");
  ASSERT_TRUE(Do("k").ok());
  absl::SleepFor(absl::Milliseconds(400));
  std::vector<std::thread> callers;
  std::atomic<int> stale{0};
  for (int i = 0; i < 20; ++i) {
    callers.emplace_back([this, &stale] {
      absl::StatusOr<DoResult> result = Do("k");
      ASSERT_TRUE(result.ok()) << result.status();
      if (result->stale) ++stale;
    });
  }
  for (std::thread& caller : callers) caller.join();
  // Every one was answered from the cache, none by the origin (its
  // answers are fresh): nobody waited for its 400 ms.
  EXPECT_EQ(stale.load(), 20);
  // Once the refresh has stored its value, callers get it fresh.
  EXPECT_TRUE(PollUntil(absl::Seconds(10), [this] {
    absl::StatusOr<DoResult> after = Do("k");
    return after.ok() && !after->stale;
  }));
  EXPECT_EQ(Hits("k"), 2);  // Exactly one refresh.
}

TEST_F(CacheE2eTest, AFailingOriginIsHiddenUntilStaleIfErrorRunsOut) {
  StartServer("    cache:\n      ttl: 200ms\n      stale_if_error: 1500ms\n");
  absl::Time stored = absl::Now();
  ASSERT_TRUE(Do("k").ok());
  ASSERT_TRUE(origin_->Get("/_fail?status=503&seconds=60").ok());
  absl::SleepFor(absl::Milliseconds(300));
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<DoResult> result = Do("k");
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->value, "/items/k");
    EXPECT_TRUE(result->stale);
  }
  EXPECT_GE(Hits("k"), 2);  // The origin was asked, and failed.
  absl::SleepFor(stored + absl::Milliseconds(1900) - absl::Now());
  absl::StatusOr<DoResult> late = Do("k");
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable)
      << late.status();
  ASSERT_TRUE(origin_->Get("/_fail?status=0").ok());
}

TEST_F(CacheE2eTest, OnlyTheNegativeCodesNamedAreKept) {
  StartServer(
      "    cache:\n      negative_ttl: 30s\n      negative_codes: "
      "[NOT_FOUND]\n");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Do("status=404").status().code(), absl::StatusCode::kNotFound);
    // (Not 503: the client would retry its UNAVAILABLE.)
    EXPECT_EQ(Do("status=500").status().code(), absl::StatusCode::kInternal);
  }
  EXPECT_EQ(Hits("status%3D404"), 1);
  EXPECT_EQ(Hits("status%3D500"), 3);
  // Values are not kept: the policy has no ttl.
  ASSERT_TRUE(Do("k").ok());
  ASSERT_TRUE(Do("k").ok());
  EXPECT_EQ(Hits("k"), 2);
}

TEST_F(CacheE2eTest, EvictionKeepsTheLeastRecentlyUsedOut) {
  StartServer("    cache:\n      ttl: 60s\n      max_bytes: 40KiB\n");
  // Values of 1,500 bytes (about 2 KiB each, kept): about 20 fit.
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(Do(absl::StrCat("n", i, "&size=1500")).ok());
  }
  ASSERT_TRUE(Do("n39&size=1500").ok());
  EXPECT_EQ(Hits("n39%26size%3D1500"), 1);  // Recent: kept.
  ASSERT_TRUE(Do("n0&size=1500").ok());
  EXPECT_EQ(Hits("n0%26size%3D1500"), 2);  // Oldest: evicted.
}

TEST_F(CacheE2eTest, EarlyRefreshKeepsAHotKeyFromGoingStale) {
  StartServer(
      "    cache:\n      ttl: 400ms\n      stale_while_revalidate: 10s\n"
      "      early_refresh: true\n",
      "&delay_ms=60");
  ASSERT_TRUE(Do("hot").ok());
  // A caller about every millisecond for 2.5 s: without early refresh,
  // every expiry would serve stale values for the 60 ms of its refresh.
  int calls = 0;
  int stale = 0;
  absl::Time end = absl::Now() + absl::Milliseconds(2500);
  while (absl::Now() < end && calls < 20000) {
    absl::StatusOr<DoResult> result = Do("hot");
    ASSERT_TRUE(result.ok()) << result.status();
    ++calls;
    if (result->stale) ++stale;
    absl::SleepFor(absl::Microseconds(500));
  }
  EXPECT_GT(calls, 500);
  EXPECT_LT(stale * 100, calls) << stale << " stale of " << calls;
  EXPECT_GE(Hits("hot"), 5);  // Refreshed about every ttl.
}

TEST_F(CacheE2eTest, CacheControlIsHonouredOnlyWhenAsked) {
  StartServer(
      "    cache:\n      ttl: 60s\n      respect_cache_control: true\n");
  // The origin says no-store: nothing is kept.
  ASSERT_TRUE(Do("a&cache_control=no-store").ok());
  ASSERT_TRUE(Do("a&cache_control=no-store").ok());
  EXPECT_EQ(Hits("a%26cache_control%3Dno-store"), 2);
  // The origin says max-age=0: kept, but never fresh.
  ASSERT_TRUE(Do("b&cache_control=max-age%3D0").ok());
  ASSERT_TRUE(Do("b&cache_control=max-age%3D0").ok());
  EXPECT_EQ(Hits("b%26cache_control%3Dmax-age%253D0"), 2);

  StartServer("    cache:\n      ttl: 60s\n");
  ASSERT_TRUE(Do("c&cache_control=no-store").ok());
  ASSERT_TRUE(Do("c&cache_control=no-store").ok());
  EXPECT_EQ(Hits("c%26cache_control%3Dno-store"), 1);
}

TEST_F(CacheE2eTest, TenantsNeverGetEachOthersValues) {
  StartServer(
      "    key_metadata: [x-tenant]\n    forward_metadata: [x-tenant]\n"
      "    cache:\n      ttl: 60s\n",
      "&echo_headers=1");
  auto stub = v1::SingleFlight::NewStub(grpc::CreateChannel(
      server_->target(), grpc::InsecureChannelCredentials()));
  auto call = [&stub](const std::string& tenant) {
    grpc::ClientContext context;
    context.AddMetadata("x-tenant", tenant);
    v1::DoRequest request;
    request.set_key("me");
    request.set_fetcher("web");
    v1::DoResponse response;
    EXPECT_TRUE(stub->Do(&context, request, &response).ok());
    return response.value();
  };
  for (int i = 0; i < 2; ++i) {
    EXPECT_THAT(call("alpha"), HasSubstr("\"x-tenant\": \"alpha\""));
    EXPECT_THAT(call("beta"), HasSubstr("\"x-tenant\": \"beta\""));
  }
  EXPECT_EQ(Hits("me"), 2);
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
