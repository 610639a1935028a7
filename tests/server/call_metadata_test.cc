#include "server/call_metadata.h"

#include <map>

#include "gtest/gtest.h"

namespace singleflight {
namespace {

using ClientMetadata = std::multimap<grpc::string_ref, grpc::string_ref>;

FetcherPolicy Policy() {
  FetcherPolicy policy;
  policy.key_metadata = {"authorization", "x-tenant"};
  policy.forward_metadata = {"authorization"};
  return policy;
}

TEST(CallMetadataTest, ScopeSeparatesCallersThatDiffer) {
  ClientMetadata a = {{"x-tenant", "a"}, {"authorization", "t1"}};
  ClientMetadata b = {{"x-tenant", "b"}, {"authorization", "t1"}};
  ClientMetadata a_again = {
      {"authorization", "t1"}, {"x-tenant", "a"}, {"user-agent", "other"}};
  ClientMetadata none = {};
  std::string scope_a = ExtractCallMetadata(Policy(), a).scope;
  EXPECT_NE(scope_a, ExtractCallMetadata(Policy(), b).scope);
  EXPECT_EQ(scope_a, ExtractCallMetadata(Policy(), a_again).scope);
  EXPECT_NE(scope_a, ExtractCallMetadata(Policy(), none).scope);
}

TEST(CallMetadataTest, ScopeEncodingIsUnambiguous) {
  FetcherPolicy policy;
  policy.key_metadata = {"a", "b"};
  ClientMetadata one = {{"a", "x;1:b=y"}};
  ClientMetadata two = {{"a", "x"}, {"b", "y"}};
  EXPECT_NE(ExtractCallMetadata(policy, one).scope,
            ExtractCallMetadata(policy, two).scope);
}

TEST(CallMetadataTest, ForwardsOnlyTheNamedMetadata) {
  ClientMetadata metadata = {
      {"authorization", "Bearer t"}, {"x-tenant", "a"}, {"cookie", "secret"}};
  Metadata forwarded = ExtractCallMetadata(Policy(), metadata).forwarded;
  EXPECT_EQ(forwarded, (Metadata{{"authorization", "Bearer t"}}));
}

TEST(CallMetadataTest, NoPolicyMeansNoScope) {
  ClientMetadata metadata = {{"authorization", "Bearer t"}};
  CallMetadata result = ExtractCallMetadata(FetcherPolicy(), metadata);
  EXPECT_EQ(result.scope, "");
  EXPECT_TRUE(result.forwarded.empty());
}

}  // namespace
}  // namespace singleflight
