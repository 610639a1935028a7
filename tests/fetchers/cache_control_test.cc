#include "fetchers/cache_control.h"

#include "gtest/gtest.h"

namespace singleflight {
namespace {

TEST(CacheControlTest, ReadsWhatASharedCacheObeys) {
  CacheDirectives d = ParseCacheControl(
      "public, max-age=60, stale-while-revalidate=30, stale-if-error=\"600\"");
  EXPECT_EQ(d.max_age, absl::Seconds(60));
  EXPECT_EQ(d.stale_while_revalidate, absl::Seconds(30));
  EXPECT_EQ(d.stale_if_error, absl::Seconds(600));
  EXPECT_FALSE(d.no_store);
}

TEST(CacheControlTest, SharedMaxAgeWinsAndNoCacheIsNeverFresh) {
  EXPECT_EQ(ParseCacheControl("max-age=60, s-maxage=5").max_age,
            absl::Seconds(5));
  EXPECT_EQ(ParseCacheControl("S-MaxAge=5,MAX-AGE=60").max_age,
            absl::Seconds(5));
  EXPECT_EQ(ParseCacheControl("no-cache, max-age=60").max_age,
            absl::ZeroDuration());
}

TEST(CacheControlTest, NoStoreAndPrivateAreNotKept) {
  EXPECT_TRUE(ParseCacheControl("no-store").no_store);
  EXPECT_TRUE(ParseCacheControl("private, max-age=60").no_store);
}

TEST(CacheControlTest, MalformedDirectivesAreIgnored) {
  CacheDirectives d =
      ParseCacheControl(" , max-age=soon, stale-if-error=-1, =, max-age");
  EXPECT_FALSE(d.max_age.has_value());
  EXPECT_FALSE(d.stale_if_error.has_value());
  EXPECT_FALSE(d.no_store);
  EXPECT_EQ(ParseCacheControl("max-age=99999999999").max_age,
            absl::Seconds(int64_t{1} << 31));
}

}  // namespace
}  // namespace singleflight
