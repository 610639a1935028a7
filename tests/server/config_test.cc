#include "server/config.h"

#include <stdlib.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"

namespace singleflight {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Writes `text` to a fresh file under the test's temporary directory.
std::string WriteConfig(const std::string& text) {
  static int count = 0;
  std::string path = ::testing::TempDir() + "/config_test_" +
                     std::to_string(getpid()) + "_" + std::to_string(++count) +
                     ".yaml";
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigTest, ReadsEverySetting) {
  setenv("SF_TEST_API_KEY", "k123", 1);
  std::string path = WriteConfig(R"(
listen: 127.0.0.1:6000
default_fetcher: web
drain_timeout: 3s
fetchers:
  web:
    uri: http://origin/{key}?v=${SF_TEST_API_KEY}
    timeout: 1500ms
    max_concurrency: 4
    max_queue: 10
    linger: 100ms
    linger_errors: true
    key_metadata: [Authorization, x-tenant]
    forward_metadata: [authorization]
    headers:
      x-api-key: ${SF_TEST_API_KEY}
    max_value_bytes: 1024
  quick: "echo:"
)");
  absl::StatusOr<ServerConfig> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "127.0.0.1:6000");
  EXPECT_EQ(config->default_fetcher, "web");
  EXPECT_EQ(config->drain_timeout, absl::Seconds(3));
  ASSERT_EQ(config->fetchers.size(), 2u);
  const FetcherConfig& web = config->fetchers[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.uri, "http://origin/{key}?v=k123");
  EXPECT_EQ(web.origin, path + ":6");
  EXPECT_EQ(web.policy.timeout, absl::Milliseconds(1500));
  EXPECT_EQ(web.policy.max_concurrency, 4);
  EXPECT_EQ(web.policy.max_queue, 10);
  EXPECT_EQ(web.policy.linger, absl::Milliseconds(100));
  EXPECT_TRUE(web.policy.linger_errors);
  EXPECT_EQ(web.policy.key_metadata,
            (std::vector<std::string>{"Authorization", "x-tenant"}));
  EXPECT_EQ(web.policy.forward_metadata,
            (std::vector<std::string>{"authorization"}));
  EXPECT_EQ(web.policy.headers, (Metadata{{"x-api-key", "k123"}}));
  EXPECT_EQ(web.policy.max_value_bytes, 1024u);
  EXPECT_EQ(config->fetchers[1].name, "quick");
  EXPECT_EQ(config->fetchers[1].uri, "echo:");
}

// Each bad file names its line and its reason.
struct BadConfig {
  const char* text;
  const char* where;  // ":LINE: ..." after the path
};

class BadConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, IsRefusedWithLineAndReason) {
  std::string path = WriteConfig(GetParam().text);
  absl::StatusOr<ServerConfig> config = LoadConfigFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              StartsWith(path + GetParam().where));
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadConfigTest,
    ::testing::Values(
        BadConfig{"listen: x\nport: 5\n", ":2: unknown key \"port\""},
        BadConfig{"fetchers:\n  a:\n    uri: \"echo:\"\n    tiemout: 2s\n",
                  ":4: unknown key \"tiemout\""},
        BadConfig{"fetchers:\n  a:\n    uri: \"echo:\"\n    timeout: soon\n",
                  ":4: \"soon\" is not a duration"},
        BadConfig{"drain_timeout: -1s\n", ":1: \"-1s\" is not a duration"},
        BadConfig{
            "fetchers:\n  a: \"echo:\"\n  b: \"echo:\"\n  a: echo:?delay=1s\n",
            ":4: fetcher \"a\" is defined twice"},
        BadConfig{"fetchers:\n  a:\n    timeout: 1s\n",
                  ":3: a fetcher needs a uri"},
        BadConfig{"fetchers:\n  a:\n    uri: \"echo:\"\n    max_queue: many\n",
                  ":4: \"many\" is not a whole number"},
        BadConfig{"fetchers:\n  a:\n    uri: http://x/${SF_TEST_UNSET_VAR}\n",
                  ":3: environment variable SF_TEST_UNSET_VAR is not set"},
        BadConfig{"listen: [unclosed\n", ":"},
        BadConfig{"- a\n- b\n", ":1: the file must be a YAML mapping"}));

TEST(ConfigTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadConfigFile("/nonexistent/singleflight.yaml").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ConfigTest, BadUriIsReportedAtItsLineWhenTheServerStarts) {
  std::string path = WriteConfig(
      "fetchers:\n  good: \"echo:\"\n  bad:\n    uri: gopher://x/{key}\n");
  absl::StatusOr<ServerConfig> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  config->listen = "127.0.0.1:0";
  auto server = SingleFlightServer::Start(*config);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              StartsWith(path + ":3: "));
  EXPECT_THAT(server.status().message(), HasSubstr("unknown scheme"));
}

TEST(ConfigTest, ForwardingWithoutKeyingIsRefused) {
  std::string path = WriteConfig(R"(fetchers:
  web:
    uri: http://127.0.0.1:1/{key}
    key_metadata: [x-tenant]
    forward_metadata: [authorization]
)");
  absl::StatusOr<ServerConfig> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  config->listen = "127.0.0.1:0";
  auto server = SingleFlightServer::Start(*config);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              StartsWith(path + ":2: "));
  EXPECT_THAT(server.status().message(),
              HasSubstr("\"authorization\" is not in key_metadata"));
}

class ExampleConfigTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ExampleConfigTest, LoadsAndStartsAServer) {
  setenv("ORIGIN_API_KEY", "example-key", 1);
  setenv("SF_PLUGIN_DIR", SF_PLUGIN_DIR, 1);
  std::string path =
      std::string(SF_SOURCE_DIR) + "/config/examples/" + GetParam();
  absl::StatusOr<ServerConfig> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->fetchers.empty());
  config->listen = "127.0.0.1:0";
  auto server = SingleFlightServer::Start(*config);
  ASSERT_TRUE(server.ok()) << server.status();
  for (const FetcherConfig& fetcher : config->fetchers) {
    EXPECT_TRUE((*server)->registry().Find(fetcher.name).ok()) << fetcher.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Examples, ExampleConfigTest,
                         ::testing::Values("echo.yaml", "http.yaml",
                                           "grpc.yaml", "plugin.yaml"));

}  // namespace
}  // namespace singleflight
