// Fetcher policies from a config file, end to end: a real singleflightd in
// front of a real HTTP origin (tests/origin/http_origin.py).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/http_origin.h"
#include "tests/testing/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

using ::testing::HasSubstr;

// Writes a config file in which ORIGIN stands for the origin's base URL.
std::string WriteConfig(const std::string& text, const HttpOrigin& origin) {
  static int count = 0;
  std::string path = absl::StrCat(::testing::TempDir(), "/policy_e2e_",
                                  getpid(), "_", ++count, ".yaml");
  std::ofstream(path) << absl::StrReplaceAll(text,
                                             {{"ORIGIN", origin.base_url()}});
  return path;
}

// One Do with metadata, on the raw stub.
grpc::Status DoWith(Client& client, const std::string& key,
                    const std::vector<std::pair<std::string, std::string>>& md,
                    v1::DoResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  for (const auto& [name, value] : md) context.AddMetadata(name, value);
  return client.stub().Do(&context, MakeRequest(key, ""), response);
}

class PolicyE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto origin = HttpOrigin::Start();
    ASSERT_TRUE(origin.ok()) << origin.status();
    origin_ = *std::move(origin);
  }

  void StartServer(const std::string& config) {
    auto server =
        ServerProcess::Start({"--config=" + WriteConfig(config, *origin_)});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = Client::Connect(server_->target());
  }

  std::unique_ptr<HttpOrigin> origin_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(PolicyE2eTest, MaxConcurrencyQueuesThenRefuses) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(default_fetcher: web
fetchers:
  web:
    uri: ORIGIN/item/{key}?delay_ms=700
    max_concurrency: 1
    max_queue: 1
)"));
  std::vector<std::thread> callers;
  absl::StatusOr<DoResult> first, queued, joiner;
  callers.emplace_back([&] { first = client_->Do("a"); });
  ASSERT_TRUE(WaitForWaiters(*client_, "a", 1));
  callers.emplace_back([&] { queued = client_->Do("b"); });
  ASSERT_TRUE(WaitForWaiters(*client_, "b", 1));
  callers.emplace_back([&] { joiner = client_->Do("b"); });
  ASSERT_TRUE(WaitForWaiters(*client_, "b", 2));  // Queued flights coalesce.
  EXPECT_EQ(origin_->Hits("/item/b"), 0);         // Still waiting for a slot.

  absl::StatusOr<DoResult> refused = client_->Do("c");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  for (std::thread& caller : callers) caller.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(queued.ok()) << queued.status();
  ASSERT_TRUE(joiner.ok()) << joiner.status();
  EXPECT_EQ(queued->value, "/item/b");
  EXPECT_TRUE(joiner->shared);
  EXPECT_EQ(origin_->Hits("/item/a"), 1);
  EXPECT_EQ(origin_->Hits("/item/b"), 1);
  EXPECT_EQ(origin_->Hits("/item/c"), 0);
}

TEST_F(PolicyE2eTest, LingerServesLateCallersWithoutAHit) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(default_fetcher: web
fetchers:
  web:
    uri: ORIGIN/item/{key}
    linger: 1s
)"));
  absl::StatusOr<DoResult> first = client_->Do("k");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->shared);
  absl::StatusOr<DoResult> late = client_->Do("k");
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->value, "/item/k");
  EXPECT_TRUE(late->shared);
  EXPECT_EQ(origin_->Hits("/item/k"), 1);

  absl::SleepFor(absl::Milliseconds(1500));  // The linger is over.
  ASSERT_TRUE(client_->Do("k").ok());
  EXPECT_EQ(origin_->Hits("/item/k"), 2);
}

TEST_F(PolicyE2eTest, KeyMetadataSeparatesTenantsAndForwardsTheirOwn) {
  ASSERT_NO_FATAL_FAILURE(StartServer(R"(default_fetcher: web
fetchers:
  web:
    uri: ORIGIN/tenant/{key}?delay_ms=600&echo_headers=1
    key_metadata: [x-tenant]
    forward_metadata: [x-tenant]
)"));
  constexpr int kPerTenant = 10;
  std::vector<v1::DoResponse> responses(2 * kPerTenant);
  std::vector<grpc::Status> statuses(2 * kPerTenant);
  std::vector<std::thread> callers;
  for (int i = 0; i < 2 * kPerTenant; ++i) {
    callers.emplace_back([&, i] {
      std::string tenant = i % 2 == 0 ? "alpha" : "beta";
      statuses[i] =
          DoWith(*client_, "shared-key", {{"x-tenant", tenant}}, &responses[i]);
    });
  }
  for (std::thread& caller : callers) caller.join();
  for (int i = 0; i < 2 * kPerTenant; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    std::string tenant = i % 2 == 0 ? "alpha" : "beta";
    // Each tenant's answer was fetched with its own metadata.
    EXPECT_THAT(responses[i].value(),
                HasSubstr("\"x-tenant\": \"" + tenant + "\""));
    EXPECT_TRUE(responses[i].shared());
  }
  EXPECT_EQ(origin_->Hits("/tenant/shared-key"), 2);  // One per tenant.
}

TEST_F(PolicyE2eTest, ForwardingWithoutKeyingStopsStartUp) {
  std::string path = WriteConfig(R"(fetchers:
  web:
    uri: ORIGIN/x/{key}
    forward_metadata: [authorization]
)",
                                 *origin_);
  CommandResult run =
      RunBinary("singleflightd", {"--listen=127.0.0.1:0", "--config=" + path});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.err, HasSubstr(path + ":2: "));
  EXPECT_THAT(run.err, HasSubstr("\"authorization\" is not in key_metadata"));
}

TEST_F(PolicyE2eTest, ConfigErrorStopsStartUpNamingTheLine) {
  std::string path = WriteConfig(R"(fetchers:
  web:
    uri: ORIGIN/x/{key}
    linger: forever
)",
                                 *origin_);
  CommandResult run =
      RunBinary("singleflightd", {"--listen=127.0.0.1:0", "--config=" + path});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.err, HasSubstr(path + ":4: \"forever\" is not a duration"));
}

TEST_F(PolicyE2eTest, CheckConfigSaysValidOrWhereNotWithoutListening) {
  std::string good = WriteConfig(R"(listen: 127.0.0.1:1
fetchers:
  web: ORIGIN/x/{key}
)",
                                 *origin_);
  CommandResult valid = RunBinary("singleflightd", {"--check_config=" + good});
  EXPECT_EQ(valid.exit_code, 0) << valid.err;
  EXPECT_EQ(valid.out, good + ": valid\n");

  std::string bad_uri = WriteConfig(R"(fetchers:
  web:
    uri: nosuch://origin/{key}
)",
                                    *origin_);
  CommandResult invalid =
      RunBinary("singleflightd", {"--check_config=" + bad_uri});
  EXPECT_EQ(invalid.exit_code, 2);
  EXPECT_THAT(invalid.err, HasSubstr(bad_uri + ":2: "));
  EXPECT_THAT(invalid.err, HasSubstr("unknown scheme"));

  CommandResult missing_cert = RunBinary(
      "singleflightd", {"--check_config=" + good, "--tls_cert=/no/such.pem",
                        "--tls_key=/no/such.key"});
  EXPECT_EQ(missing_cert.exit_code, 2);
  EXPECT_THAT(missing_cert.err, HasSubstr("/no/such"));
}

TEST_F(PolicyE2eTest, FlagsOverrideTheFile) {
  auto server = ServerProcess::Start(
      {"--config=" + WriteConfig(R"(default_fetcher: web
fetchers:
  web:
    uri: ORIGIN/from-file/{key}
)",
                                 *origin_),
       "--fetcher=web=" + origin_->base_url() + "/from-flag/{key}"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto result = Client::Connect((*server)->target())->Do("k");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->value, "/from-flag/k");
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
