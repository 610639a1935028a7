// Tests of PluginFetcher with the example plugin and deliberately bad ones.
#include "fetchers/plugin_fetcher.h"

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/cancellation.h"
#include "core/fetcher_uri.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fetchers/fetch_outcome.h"

namespace singleflight {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(10);

std::string PluginPath(const std::string& name) {
  return absl::StrCat(SF_PLUGIN_DIR, "/lib", name, ".so");
}

using Outcome = FetchOutcome;

FetchRequest MakeRequest(const std::string& key,
                         const std::string& payload = "") {
  FetchRequest request;
  request.key = key;
  request.payload = payload;
  request.cancellation = std::make_shared<CancellationSignal>();
  return request;
}

std::shared_ptr<Outcome> StartFetch(Fetcher& fetcher, FetchRequest request) {
  auto outcome = std::make_shared<Outcome>();
  fetcher.Fetch(std::move(request), outcome->Callback());
  return outcome;
}

absl::StatusOr<std::unique_ptr<Fetcher>> Create(
    const std::string& uri, const FetcherPolicy& policy = {}) {
  absl::StatusOr<FetcherUri> parsed = FetcherUri::Parse(uri);
  if (!parsed.ok()) return parsed.status();
  return PluginFetcher::Create(*parsed, policy, FetcherEnvironment());
}

// A fetcher of the example plugin with `settings` ("name=value&...").
std::unique_ptr<Fetcher> Example(const std::string& settings,
                                 const FetcherPolicy& policy = {}) {
  absl::StatusOr<std::unique_ptr<Fetcher>> fetcher = Create(
      absl::StrCat("plugin:", PluginPath("sf_example_plugin"), "?", settings),
      policy);
  EXPECT_TRUE(fetcher.ok()) << fetcher.status();
  return fetcher.ok() ? *std::move(fetcher) : nullptr;
}

TEST(PluginFetcherTest, ExamplePluginAnswersLaterFromItsThread) {
  std::unique_ptr<Fetcher> fetcher = Example("prefix=p-&delay_ms=100");
  ASSERT_NE(fetcher, nullptr);

  absl::Time start = absl::Now();
  std::shared_ptr<Outcome> outcome = StartFetch(*fetcher, MakeRequest("abc"));
  EXPECT_EQ(outcome->calls(), 0);
  absl::StatusOr<std::string> value = outcome->Wait();

  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "p-cba");
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(90));
}

TEST(PluginFetcherTest, PayloadIsUsedWhenGiven) {
  std::unique_ptr<Fetcher> fetcher = Example("delay_ms=10");
  ASSERT_NE(fetcher, nullptr);

  absl::StatusOr<std::string> value =
      StartFetch(*fetcher, MakeRequest("key", "payload"))->Wait();

  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "daolyap");
}

TEST(PluginFetcherTest, CompletionInsideFetchIsDelivered) {
  std::unique_ptr<Fetcher> fetcher = Example("prefix=now-");
  ASSERT_NE(fetcher, nullptr);

  std::shared_ptr<Outcome> outcome = StartFetch(*fetcher, MakeRequest("ab"));

  EXPECT_EQ(outcome->calls(), 1);
  absl::StatusOr<std::string> value = outcome->Wait();
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "now-ba");
}

TEST(PluginFetcherTest, FailCodeBecomesTheStatus) {
  for (absl::StatusCode code :
       {absl::StatusCode::kNotFound, absl::StatusCode::kPermissionDenied,
        absl::StatusCode::kUnavailable}) {
    std::unique_ptr<Fetcher> fetcher =
        Example(absl::StrCat("delay_ms=5&fail=", static_cast<int>(code)));
    ASSERT_NE(fetcher, nullptr);

    absl::StatusOr<std::string> value =
        StartFetch(*fetcher, MakeRequest("k"))->Wait();

    EXPECT_EQ(value.status().code(), code) << value.status();
    EXPECT_THAT(value.status().message(), HasSubstr("failing as configured"));
  }
}

TEST(PluginFetcherTest, LargerValueThanAllowedIsResourceExhausted) {
  FetcherPolicy policy;
  policy.max_value_bytes = 5;
  std::unique_ptr<Fetcher> fetcher = Example("prefix=pre-", policy);
  ASSERT_NE(fetcher, nullptr);

  EXPECT_TRUE(StartFetch(*fetcher, MakeRequest("k"))->Wait().ok());
  EXPECT_EQ(StartFetch(*fetcher, MakeRequest("key"))->Wait().status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(PluginFetcherTest, CancelFailsPromptlyAndTheLateCompletionIsIgnored) {
  std::unique_ptr<Fetcher> fetcher = Example("delay_ms=5000");
  ASSERT_NE(fetcher, nullptr);
  FetchRequest request = MakeRequest("slow");
  std::shared_ptr<CancellationSignal> cancellation = request.cancellation;
  std::shared_ptr<Outcome> outcome = StartFetch(*fetcher, std::move(request));

  absl::Time start = absl::Now();
  cancellation->Cancel();
  absl::StatusOr<std::string> value = outcome->Wait();

  EXPECT_EQ(value.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  // The plugin completed the fetch too, from cancel(); only one result
  // counts.
  EXPECT_EQ(outcome->calls(), 1);
}

TEST(PluginFetcherTest, CancelRacingCompletionDeliversExactlyOnce) {
  std::unique_ptr<Fetcher> fetcher = Example("delay_ms=2");
  ASSERT_NE(fetcher, nullptr);
  constexpr int kFetches = 200;
  std::vector<std::shared_ptr<CancellationSignal>> cancellations;
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < kFetches; ++i) {
    FetchRequest request = MakeRequest(absl::StrCat("race-", i));
    cancellations.push_back(request.cancellation);
    outcomes.push_back(StartFetch(*fetcher, std::move(request)));
  }

  std::thread canceller([&] {
    for (auto& cancellation : cancellations) {
      cancellation->Cancel();
      absl::SleepFor(absl::Microseconds(20));
    }
  });
  canceller.join();

  for (int i = 0; i < kFetches; ++i) {
    absl::StatusOr<std::string> value = outcomes[i]->Wait();
    EXPECT_TRUE(value.ok() || absl::IsCancelled(value.status()))
        << "fetch " << i << ": " << value.status();
  }
  // A completion arriving after its cancellation would be a second call.
  absl::SleepFor(absl::Milliseconds(20));
  for (int i = 0; i < kFetches; ++i) {
    EXPECT_EQ(outcomes[i]->calls(), 1) << "fetch " << i;
  }
}

TEST(PluginFetcherTest, TwentyConcurrentFetchesRunTogether) {
  std::unique_ptr<Fetcher> fetcher = Example("prefix=c-&delay_ms=200");
  ASSERT_NE(fetcher, nullptr);
  constexpr int kFetches = 20;
  std::vector<std::shared_ptr<Outcome>> outcomes(kFetches);

  absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int i = 0; i < kFetches; ++i) {
    threads.emplace_back([&, i] {
      outcomes[i] = StartFetch(*fetcher, MakeRequest(absl::StrCat(i, "-k")));
    });
  }
  for (std::thread& thread : threads) thread.join();

  for (int i = 0; i < kFetches; ++i) {
    absl::StatusOr<std::string> value = outcomes[i]->Wait();
    ASSERT_TRUE(value.ok()) << "fetch " << i << ": " << value.status();
    std::string key = absl::StrCat(i, "-k");
    EXPECT_EQ(*value,
              absl::StrCat("c-", std::string(key.rbegin(), key.rend())));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(PluginFetcherTest, DestroyingTheFetcherCompletesFetchesInProgress) {
  std::unique_ptr<Fetcher> fetcher = Example("delay_ms=5000");
  ASSERT_NE(fetcher, nullptr);
  std::shared_ptr<Outcome> outcome = StartFetch(*fetcher, MakeRequest("k"));

  fetcher.reset();

  EXPECT_EQ(outcome->calls(), 1);
  EXPECT_EQ(outcome->Wait().status().code(), absl::StatusCode::kCancelled);
}

TEST(PluginFetcherTest, RefusesMissingLibrary) {
  std::string path = PluginPath("sf_no_such_plugin");
  absl::StatusOr<std::unique_ptr<Fetcher>> fetcher =
      Create(absl::StrCat("plugin:", path));

  EXPECT_EQ(fetcher.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(fetcher.status().message(),
              AllOf(HasSubstr("cannot load plugin"), HasSubstr(path),
                    HasSubstr("No such file")));
}

TEST(PluginFetcherTest, RefusesLibraryWithoutEntryPoint) {
  std::string path = PluginPath("sf_test_no_entry_plugin");
  absl::StatusOr<std::unique_ptr<Fetcher>> fetcher =
      Create(absl::StrCat("plugin:", path));

  EXPECT_EQ(fetcher.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(fetcher.status().message(),
              AllOf(HasSubstr(path), HasSubstr("no entry point"),
                    HasSubstr("sf_plugin_entry")));
}

TEST(PluginFetcherTest, RefusesOtherAbiVersion) {
  std::string path = PluginPath("sf_test_wrong_abi_plugin");
  absl::StatusOr<std::unique_ptr<Fetcher>> fetcher =
      Create(absl::StrCat("plugin:", path));

  EXPECT_EQ(fetcher.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(fetcher.status().message(),
              AllOf(HasSubstr(path), HasSubstr("ABI version 999"),
                    HasSubstr("supports version 1")));
}

TEST(PluginFetcherTest, RefusesSettingsThePluginRejects) {
  std::string path = PluginPath("sf_example_plugin");
  for (const auto& [settings, complaint] :
       std::vector<std::pair<std::string, std::string>>{
           {"colour=red", "unknown setting \"colour\""},
           {"delay_ms=soon", "delay_ms=\"soon\""},
           {"fail=99", "fail=\"99\""}}) {
    absl::StatusOr<std::unique_ptr<Fetcher>> fetcher =
        Create(absl::StrCat("plugin:", path, "?", settings));

    EXPECT_EQ(fetcher.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(fetcher.status().message(),
                AllOf(HasSubstr(path), HasSubstr(complaint)));
  }
}

TEST(PluginFetcherTest, RefusesRelativePath) {
  absl::StatusOr<std::unique_ptr<Fetcher>> fetcher =
      Create("plugin:libsf_example_plugin.so");

  EXPECT_EQ(fetcher.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fetcher.status().message(), HasSubstr("absolute"));
}

}  // namespace
}  // namespace singleflight
