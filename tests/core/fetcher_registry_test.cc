#include "core/fetcher_registry.h"

#include "fetchers/echo_fetcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(FetcherUriTest, SplitsSchemeTargetAndSettings) {
  absl::StatusOr<FetcherUri> uri =
      FetcherUri::Parse("HTTP://origin/{key}?a=1&b=x=y");
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(uri->scheme, "http");
  EXPECT_EQ(uri->target, "//origin/{key}");
  EXPECT_EQ(uri->query, "a=1&b=x=y");
  absl::StatusOr<FetcherUri::Settings> settings = uri->ParseSettings();
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->at("a"), "1");
  EXPECT_EQ(settings->at("b"), "x=y");
}

TEST(FetcherUriTest, RejectsMalformedUris) {
  EXPECT_FALSE(FetcherUri::Parse("no-scheme").ok());
  EXPECT_FALSE(FetcherUri::Parse(":x").ok());
  EXPECT_FALSE(FetcherUri::Parse("ec ho:").ok());
}

TEST(FetcherUriTest, AnyQueryParsesButSettingsAreStrict) {
  absl::StatusOr<FetcherUri> flag =
      FetcherUri::Parse("http://o/x?flag&id=1&id=2");
  ASSERT_TRUE(flag.ok()) << flag.status();  // A fine origin URL.
  EXPECT_FALSE(flag->ParseSettings().ok());
  EXPECT_FALSE(FetcherUri::Parse("echo:?a=1&a=2")->ParseSettings().ok());
  // Found by plugin_settings_fuzzer: "a\0x" reached a plugin as "a".
  EXPECT_FALSE(FetcherUri::Parse(std::string("echo:?a\0x=1&a=2", 15))
                   ->ParseSettings()
                   .ok());
}

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
