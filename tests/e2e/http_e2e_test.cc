// End-to-end tests of the http fetcher: a real singleflightd in front of a
// real HTTP origin (tests/origin/).
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "client/client.h"
#include "gtest/gtest.h"
#include "tests/testing/http_origin.h"
#include "tests/testing/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

TEST(HttpE2eTest, HundredCallersMakeOneOriginRequest) {
  auto origin = HttpOrigin::Start();
  ASSERT_TRUE(origin.ok()) << origin.status();
  auto server = ServerProcess::Start({absl::StrCat(
      "--fetcher=web=", (*origin)->base_url(), "/item/{key}?delay_ms=500")});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Client::Connect((*server)->target());

  constexpr int kCallers = 100;
  std::vector<absl::StatusOr<DoResult>> results(kCallers);
  absl::Notification go;
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      go.WaitForNotification();
      results[i] = client->Do("hot", "web");
    });
  }
  go.Notify();
  for (std::thread& caller : callers) caller.join();

  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(results[i].ok())
        << "caller " << i << ": " << results[i].status();
    EXPECT_EQ(results[i]->value, "/item/hot") << "caller " << i;
    EXPECT_TRUE(results[i]->shared) << "caller " << i;
  }
  EXPECT_EQ((*origin)->Hits("/item/hot"), 1);
}

TEST(HttpE2eTest, DeadlineOfTheOnlyWaiterClosesTheOriginConnection) {
  auto origin = HttpOrigin::Start();
  ASSERT_TRUE(origin.ok()) << origin.status();
  auto server = ServerProcess::Start({absl::StrCat(
      "--fetcher=web=", (*origin)->base_url(), "/hang/{key}?hang=1")});
  ASSERT_TRUE(server.ok()) << server.status();
  ClientOptions options;
  options.timeout = absl::Milliseconds(500);
  std::unique_ptr<Client> client =
      Client::Connect((*server)->target(), options);

  absl::Status status = client->Do("k", "web").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_TRUE((*origin)->WaitForEvent("/hang/k", "closed_before_answer",
                                      absl::Seconds(10)));
  EXPECT_EQ((*origin)->Hits("/hang/k"), 1);
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
