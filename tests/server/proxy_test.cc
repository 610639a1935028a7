// The proxy's pure pieces: the encoded upstream reply, method patterns and
// kinds, which metadata passes, flight keys, and its configuration.
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "server/coalesced_call.h"
#include "server/config.h"
#include "server/proxy_methods.h"
#include "server/proxy_reply.h"
#include "server/proxy_upstream.h"
#include "server/server.h"

namespace singleflight {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;

std::string WriteFile(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + "/proxy_test_" +
                     std::to_string(getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(ProxyReplyTest, RoundTripsMetadataDetailsAndMessage) {
  const std::string binary("\0\xff", 2);
  Metadata initial = {{"x-a", "1"}, {"x-bin", binary}};
  Metadata trailing = {{"x-t", ""}};
  std::string message(3000, 'm');
  std::string encoded = EncodeProxyReply(initial, trailing, "det", message);
  absl::StatusOr<ProxyReplyView> view = DecodeProxyReply(encoded);
  ASSERT_TRUE(view.ok()) << view.status();
  // Copied: gMock's string_view matchers do not own what they compare to.
  Metadata decoded_initial(view->initial.begin(), view->initial.end());
  EXPECT_EQ(decoded_initial, initial);
  EXPECT_THAT(view->trailing, ElementsAre(Pair("x-t", "")));
  EXPECT_EQ(view->details, "det");
  EXPECT_EQ(view->message, message);
}

TEST(ProxyReplyTest, TruncatedOrGarbledBytesAreRefusedNotOverread) {
  std::string encoded =
      EncodeProxyReply({{"name", "value"}}, {{"t", "v"}}, "details", "");
  // Every strict prefix lacks a part the encoding promised.
  for (size_t size = 0; size < encoded.size(); ++size) {
    EXPECT_FALSE(DecodeProxyReply(encoded.substr(0, size)).ok()) << size;
  }
  EXPECT_FALSE(
      DecodeProxyReply("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01").ok());
  EXPECT_FALSE(DecodeProxyReply("\x7f").ok());
}

TEST(ProxyReplyTest, AnUpstreamErrorCarriesItsReplyAndATiersErrorNone) {
  absl::Status error = ProxyErrorStatus(absl::StatusCode::kNotFound, "gone",
                                        {{"x-i", "1"}}, {{"x-t", "2"}}, "d");
  EXPECT_EQ(error.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(error.message(), "gone");
  std::optional<std::string> reply = ProxyReplyOf(error);
  ASSERT_TRUE(reply.has_value());
  absl::StatusOr<ProxyReplyView> view = DecodeProxyReply(*reply);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->details, "d");
  EXPECT_THAT(view->trailing, ElementsAre(Pair("x-t", "2")));
  EXPECT_FALSE(ProxyReplyOf(absl::DeadlineExceededError("late")).has_value());
}

TEST(MethodPatternTest, ParsesMethodsAndWholeServices) {
  for (const char* good : {"/a.B/C", "/B/C", "/pkg.v1.Svc/*", "/a_b.C1/D_2"}) {
    EXPECT_TRUE(MethodPattern::Parse(good).ok()) << good;
  }
  for (const char* bad :
       {"", "/", "a.B/C", "/a.B", "/a.B/", "/a.B/C/D", "/a.B/*x", "/*", "/.a/C",
        "/a./C", "/a b/C", "/a.B/C.D", "/a.B/**"}) {
    EXPECT_FALSE(MethodPattern::Parse(bad).ok()) << bad;
  }
}

TEST(MethodPatternTest, MatchesItsMethodOrEveryMethodOfItsServiceOnly) {
  MethodPattern one = *MethodPattern::Parse("/a.B/C");
  EXPECT_TRUE(one.Matches("/a.B/C"));
  EXPECT_FALSE(one.Matches("/a.B/CD"));
  MethodPattern all = *MethodPattern::Parse("/a.B/*");
  EXPECT_TRUE(all.Matches("/a.B/C"));
  EXPECT_FALSE(all.Matches("/a.B/"));
  EXPECT_FALSE(all.Matches("/a.BC/D"));
  EXPECT_FALSE(all.Matches("/a.B/C/D"));
  EXPECT_FALSE(all.Matches("/x.a.B/C"));
}

google::protobuf::FileDescriptorProto ShopFile() {
  google::protobuf::FileDescriptorProto file;
  file.set_name("shop.proto");
  file.set_package("shop.v1");
  auto* service = file.add_service();
  service->set_name("Inventory");
  auto add = [service](const char* name, bool client, bool server) {
    auto* method = service->add_method();
    method->set_name(name);
    method->set_client_streaming(client);
    method->set_server_streaming(server);
  };
  add("Get", false, false);
  add("Upload", true, false);
  add("Watch", false, true);
  add("Chat", true, true);
  return file;
}

TEST(UpstreamMethodsTest, KnowsTheKindOfEachMethod) {
  absl::StatusOr<UpstreamMethods> methods =
      UpstreamMethods::FromFileDescriptors({ShopFile().SerializeAsString()});
  ASSERT_TRUE(methods.ok()) << methods.status();
  EXPECT_THAT(
      methods->Paths(),
      ElementsAre("/shop.v1.Inventory/Chat", "/shop.v1.Inventory/Get",
                  "/shop.v1.Inventory/Upload", "/shop.v1.Inventory/Watch"));
  MethodKind kind;
  ASSERT_TRUE(methods->Find("/shop.v1.Inventory/Get", kind));
  EXPECT_EQ(kind, MethodKind::kUnary);
  ASSERT_TRUE(methods->Find("/shop.v1.Inventory/Upload", kind));
  EXPECT_EQ(kind, MethodKind::kClientStreaming);
  ASSERT_TRUE(methods->Find("/shop.v1.Inventory/Watch", kind));
  EXPECT_EQ(kind, MethodKind::kServerStreaming);
  ASSERT_TRUE(methods->Find("/shop.v1.Inventory/Chat", kind));
  EXPECT_EQ(kind, MethodKind::kBidi);
  EXPECT_FALSE(methods->Find("/shop.v1.Inventory/Nope", kind));
}

TEST(UpstreamMethodsTest, ReadsADescriptorSetFileOrSaysWhatIsWrong) {
  google::protobuf::FileDescriptorSet set;
  *set.add_file() = ShopFile();
  absl::StatusOr<UpstreamMethods> methods =
      UpstreamMethods::FromDescriptorSetFile(
          WriteFile("shop.pb", set.SerializeAsString()));
  ASSERT_TRUE(methods.ok()) << methods.status();
  EXPECT_EQ(methods->size(), 4);

  EXPECT_EQ(
      UpstreamMethods::FromDescriptorSetFile("/nonexistent.pb").status().code(),
      absl::StatusCode::kNotFound);
  EXPECT_EQ(UpstreamMethods::FromDescriptorSetFile(
                WriteFile("garbage.pb", "\xff\xff not protobuf"))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  google::protobuf::FileDescriptorSet empty;
  empty.add_file()->set_name("messages_only.proto");
  EXPECT_THAT(UpstreamMethods::FromDescriptorSetFile(
                  WriteFile("empty.pb", empty.SerializeAsString()))
                  .status()
                  .message(),
              HasSubstr("declares no service"));
}

TEST(ProxyMetadataTest, OnlyEndToEndMetadataPasses) {
  for (const char* passes : {"x-tenant", "authorization", "x-trace-bin"}) {
    EXPECT_TRUE(IsEndToEndMetadata(passes)) << passes;
  }
  for (const char* stops :
       {":authority", ":path", "te", "content-type", "user-agent",
        "grpc-timeout", "grpc-status", "grpc-message",
        "grpc-status-details-bin", "grpc-encoding", "grpc-accept-encoding",
        "connection", "host", "accept-encoding", ""}) {
    EXPECT_FALSE(IsEndToEndMetadata(stops)) << stops;
  }
}

TEST(ProxyFlightKeyTest, IsTheHexSha256OfTheRequestBytes) {
  EXPECT_EQ(ProxyFlightKey(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(ProxyFlightKey(std::string("a\0b", 3)).size(), 64);
  EXPECT_NE(ProxyFlightKey("a"), ProxyFlightKey("b"));
}

TEST(ProxyConfigTest, ReadsTheProxySection) {
  std::string path = WriteFile("proxy.yaml", R"(
proxy:
  upstream: 10.0.0.1:9090
  tls: true
  ca_file: /etc/ca.pem
  server_name: inventory.internal
  descriptor_set: /etc/inventory.pb
  coalesce:
    - /shop.v1.Catalog/*
    - method: /shop.v1.Inventory/Get
      timeout: 250ms
      max_concurrency: 8
      linger: 50ms
      key_metadata: [x-tenant]
      forward_metadata: [x-tenant]
)");
  absl::StatusOr<ServerConfig> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  const ProxyConfig& proxy = config->proxy;
  EXPECT_EQ(proxy.upstream, "10.0.0.1:9090");
  EXPECT_TRUE(proxy.tls);
  EXPECT_EQ(proxy.tls_files.ca_file, "/etc/ca.pem");
  EXPECT_EQ(proxy.tls_files.server_name, "inventory.internal");
  EXPECT_EQ(proxy.descriptor_set, "/etc/inventory.pb");
  ASSERT_EQ(proxy.coalesce.size(), 2);
  EXPECT_EQ(proxy.coalesce[0].method, "/shop.v1.Catalog/*");
  EXPECT_EQ(proxy.coalesce[0].origin, path + ":9");
  EXPECT_EQ(proxy.coalesce[1].method, "/shop.v1.Inventory/Get");
  EXPECT_EQ(proxy.coalesce[1].policy.timeout, absl::Milliseconds(250));
  EXPECT_EQ(proxy.coalesce[1].policy.max_concurrency, 8);
  EXPECT_EQ(proxy.coalesce[1].policy.linger, absl::Milliseconds(50));
  EXPECT_THAT(proxy.coalesce[1].policy.key_metadata, ElementsAre("x-tenant"));
  EXPECT_THAT(DescribeConfig(*config),
              HasSubstr("proxy upstream=10.0.0.1:9090 tls=on"));
}

TEST(ProxyConfigTest, BadSectionsAreRefusedWithTheirLine) {
  struct Bad {
    const char* text;
    const char* where;
  };
  for (const Bad& bad : {
           Bad{"proxy:\n  upstream: a:1\n  coalesce: /a.B/C\n",
               ":3: coalesce must be a list"},
           Bad{"proxy:\n  upstream: a:1\n  max_calls: lots\n",
               ":3: \"lots\" is not a whole number"},
           Bad{"proxy:\n  upstream: a:1\n  upstrem: b\n",
               ":3: unknown key \"upstrem\""},
           Bad{"proxy:\n  upstream: a:1\n  coalesce:\n    - timeout: 1s\n",
               ":4: a coalesce entry needs a method pattern"},
           Bad{"proxy:\n  upstream: a:1\n  coalesce:\n    - method: /a.B/C\n"
               "      uri: x\n",
               ":5: unknown key \"uri\""},
       }) {
    absl::StatusOr<ServerConfig> config =
        LoadConfigFile(WriteFile("bad.yaml", bad.text));
    ASSERT_FALSE(config.ok()) << bad.text;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(bad.where))
        << bad.text;
  }
}

TEST(ProxyConfigTest, FlagsSetTheUpstreamAndAddPatternsThatPolicyFlagsReach) {
  ServerConfig config;
  ConfigOverrides overrides;
  overrides.proxy_upstream = "127.0.0.1:9";
  overrides.proxy_coalesce = {"/a.B/C", "/a.B/*"};
  overrides.fetch_timeout = absl::Seconds(3);
  ASSERT_TRUE(ApplyOverrides(overrides, config).ok());
  EXPECT_EQ(config.proxy.upstream, "127.0.0.1:9");
  ASSERT_EQ(config.proxy.coalesce.size(), 2);
  EXPECT_EQ(config.proxy.coalesce[1].origin, "--proxy_coalesce=/a.B/*");
  EXPECT_EQ(config.proxy.coalesce[0].policy.timeout, absl::Seconds(3));
}

TEST(ProxyConfigTest, CheckRefusesWhatStartUpWould) {
  ServerConfig config;
  config.proxy.coalesce.push_back({"/a.B/C", {}, "--proxy_coalesce=/a.B/C"});
  EXPECT_THAT(std::string(SingleFlightServer::Check(config).message()),
              HasSubstr("need a proxy upstream"));
  config.proxy.upstream = "127.0.0.1:1";
  EXPECT_TRUE(SingleFlightServer::Check(config).ok());
  config.proxy.coalesce[0].policy.forward_metadata = {"authorization"};
  EXPECT_THAT(std::string(SingleFlightServer::Check(config).message()),
              StartsWith("--proxy_coalesce=/a.B/C: forward_metadata"));
  config.proxy.coalesce[0].policy.forward_metadata.clear();
  config.proxy.tls_files.ca_file = "/etc/ca.pem";
  EXPECT_THAT(std::string(SingleFlightServer::Check(config).message()),
              HasSubstr("need tls: true"));
}

TEST(ProxyConfigTest, TheExampleConfigIsValid) {
  absl::StatusOr<ServerConfig> config = LoadConfigFile(
      std::string(SF_SOURCE_DIR) + "/config/examples/proxy.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->proxy.coalesce.size(), 2);
  EXPECT_TRUE(SingleFlightServer::Check(*config).ok());
}

}  // namespace
}  // namespace singleflight
