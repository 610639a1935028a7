#include "core/fetcher_uri.h"

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

}  // namespace
}  // namespace singleflight
