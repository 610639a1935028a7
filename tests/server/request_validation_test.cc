#include "server/request_validation.h"

#include <string>

#include "fetchers/builtin_fetchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace {

using ::testing::HasSubstr;

class ResolveRequestTest : public ::testing::Test {
 protected:
  ResolveRequestTest() {
    RegisterBuiltinSchemes(registry_);
    EXPECT_TRUE(registry_.Add("echo", "echo:").ok());
  }
  TimerQueue timers_;
  FetcherRegistry registry_{FetcherEnvironment{&timers_}};
};

TEST_F(ResolveRequestTest, KeyMustHaveOneTo4096Bytes) {
  EXPECT_EQ(ResolveRequest(registry_, "", "").status(),
            absl::InvalidArgumentError("key is required"));
  EXPECT_TRUE(ResolveRequest(registry_, "", std::string(4096, 'k')).ok());
  absl::Status too_long =
      ResolveRequest(registry_, "", std::string(4097, 'k')).status();
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_long.message(), HasSubstr("4097 bytes; the limit is 4096"));
}

TEST_F(ResolveRequestTest, EmptyFetcherIsTheDefault) {
  absl::StatusOr<const NamedFetcher*> fetcher =
      ResolveRequest(registry_, "", "k");
  ASSERT_TRUE(fetcher.ok());
  EXPECT_EQ((*fetcher)->name, "echo");
}

TEST_F(ResolveRequestTest, UnknownFetcherIsNotFound) {
  absl::Status status = ResolveRequest(registry_, "nope", "k").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("(known: echo)"));
}

}  // namespace
}  // namespace singleflight
