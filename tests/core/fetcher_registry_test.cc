#include "core/fetcher_registry.h"

#include "fetchers/echo_fetcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class FetcherRegistryTest : public ::testing::Test {
 protected:
  FetcherRegistryTest() {
    registry_.RegisterScheme("echo", &EchoFetcher::Create);
  }

  TimerQueue timers_;
  FetcherRegistry registry_{FetcherEnvironment{&timers_}};
};

TEST_F(FetcherRegistryTest, FindsFetchersByNameAndTheDefault) {
  ASSERT_TRUE(registry_.Add("echo", "echo:").ok());
  FetcherPolicy policy;
  policy.timeout = absl::Seconds(2);
  ASSERT_TRUE(registry_.Add("slow", "echo:?delay=1s", policy).ok());
  EXPECT_EQ(registry_.default_name(), "echo");
  EXPECT_EQ((*registry_.Find(""))->name, "echo");
  EXPECT_EQ((*registry_.Find("slow"))->policy.timeout, absl::Seconds(2));
  ASSERT_TRUE(registry_.SetDefault("slow").ok());
  EXPECT_EQ((*registry_.Find(""))->name, "slow");
  EXPECT_THAT(registry_.Names(), ElementsAre("echo", "slow"));
}

TEST_F(FetcherRegistryTest, UnknownFetcherIsNotFoundAndNamesTheKnownOnes) {
  ASSERT_TRUE(registry_.Add("echo", "echo:").ok());
  ASSERT_TRUE(registry_.Add("slow", "echo:?delay=1s").ok());
  absl::StatusOr<const NamedFetcher*> missing = registry_.Find("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nope"));
  EXPECT_THAT(missing.status().message(), HasSubstr("echo, slow"));
  EXPECT_EQ(registry_.SetDefault("nope").code(), absl::StatusCode::kNotFound);
}

TEST_F(FetcherRegistryTest, RejectsBadDefinitions) {
  ASSERT_TRUE(registry_.Add("echo", "echo:").ok());
  EXPECT_THAT(registry_.Add("echo", "echo:").message(),
              HasSubstr("defined twice"));
  EXPECT_THAT(registry_.Add("web", "gopher://x").message(),
              HasSubstr("unknown scheme \"gopher:\" (known: echo:)"));
  EXPECT_FALSE(registry_.Add("bad name", "echo:").ok());
  EXPECT_FALSE(registry_.Add("", "echo:").ok());
  EXPECT_THAT(registry_.Add("e2", "echo:?delay=x").message(),
              HasSubstr("fetcher \"e2\": "));
  FetcherPolicy no_time;
  no_time.timeout = absl::ZeroDuration();
  EXPECT_FALSE(registry_.Add("e3", "echo:", no_time).ok());
}

}  // namespace
}  // namespace singleflight
