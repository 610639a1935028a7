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

TEST(ConfigTest, ReadsTlsTokensLoggingAndLimits) {
  setenv("SF_TEST_SECRETS", "/run/secrets", 1);
  std::string path = WriteConfig(R"(
max_message_bytes: 1048576
max_concurrent_streams: 100
tls:
  cert: ${SF_TEST_SECRETS}/tls.crt
  key: ${SF_TEST_SECRETS}/tls.key
  client_ca: /etc/ca.pem
tokens:
  caller_file: /run/secrets/caller
  admin_file: /run/secrets/admin
log:
  level: warning
  json: true
fetchers:
  web:
    uri: https://origin/{key}
    max_flights: 3
    max_waiters: 4
    tls:
      ca_file: /etc/origin-ca.pem
      cert_file: ${SF_TEST_SECRETS}/client.pem
      key_file: ${SF_TEST_SECRETS}/client.key
      server_name: origin.internal
)");
  absl::StatusOr<ServerConfig> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->max_message_bytes, 1048576);
  EXPECT_EQ(config->max_concurrent_streams, 100);
  EXPECT_EQ(config->tls_cert, "/run/secrets/tls.crt");
  EXPECT_EQ(config->tls_key, "/run/secrets/tls.key");
  EXPECT_EQ(config->tls_client_ca, "/etc/ca.pem");
  EXPECT_EQ(config->caller_token_file, "/run/secrets/caller");
  EXPECT_EQ(config->admin_token_file, "/run/secrets/admin");
  EXPECT_EQ(config->log_level, "warning");
  EXPECT_TRUE(config->log_json);
  ASSERT_EQ(config->fetchers.size(), 1u);
  EXPECT_EQ(config->fetchers[0].policy.max_flights, 3);
  EXPECT_EQ(config->fetchers[0].policy.max_waiters, 4);
  const BackendTls& tls = config->fetchers[0].policy.tls;
  EXPECT_EQ(tls.ca_file, "/etc/origin-ca.pem");
  EXPECT_EQ(tls.cert_file, "/run/secrets/client.pem");
  EXPECT_EQ(tls.key_file, "/run/secrets/client.key");
  EXPECT_EQ(tls.server_name, "origin.internal");

  std::string unknown = WriteConfig("tls:\n  certificate: x.pem\n");
  absl::StatusOr<ServerConfig> refused = LoadConfigFile(unknown);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr(unknown + ":2: unknown key \"certificate\""));
}

TEST(ConfigOverridesTest, GivenFlagsReplaceTheFilesValuesAndOnlyThose) {
  ServerConfig config;
  config.listen = "127.0.0.1:6000";
  config.metrics_listen = "127.0.0.1:9000";
  config.max_stream_pending = 7;
  ConfigOverrides overrides;
  overrides.listen = "0.0.0.0:7000";
  overrides.drain_grace = absl::Seconds(2);
  overrides.max_message_bytes = 1024;
  overrides.max_stream_buffer_bytes = int64_t{1} << 33;
  overrides.tls_cert = "cert.pem";
  overrides.log_json = true;
  ASSERT_TRUE(ApplyOverrides(overrides, config).ok());
  EXPECT_TRUE(config.log_json);
  EXPECT_EQ(config.log_level, "info");
  EXPECT_EQ(config.listen, "0.0.0.0:7000");
  EXPECT_EQ(config.metrics_listen, "127.0.0.1:9000");
  EXPECT_EQ(config.max_stream_pending, 7);
  EXPECT_EQ(config.drain_grace, absl::Seconds(2));
  EXPECT_EQ(config.max_message_bytes, 1024);
  EXPECT_EQ(config.max_stream_buffer_bytes, int64_t{1} << 33);
  EXPECT_EQ(config.tls_cert, "cert.pem");
  EXPECT_EQ(config.tls_key, "");
}

TEST(ConfigOverridesTest, FetcherFlagReplacesTheUriOfItsNameOrAddsOne) {
  ServerConfig config;
  FetcherPolicy policy;
  policy.linger = absl::Milliseconds(50);
  config.fetchers.push_back({"web", "http://a/{key}", policy, "f.yaml:3"});
  ConfigOverrides overrides;
  overrides.fetchers = {"web=http://b/{key}", "slow=echo:?delay=1s"};
  ASSERT_TRUE(ApplyOverrides(overrides, config).ok());
  ASSERT_EQ(config.fetchers.size(), 3u);  // web, slow, echo.
  EXPECT_EQ(config.fetchers[0].uri, "http://b/{key}");
  EXPECT_EQ(config.fetchers[0].policy.linger, absl::Milliseconds(50));
  EXPECT_EQ(config.fetchers[0].origin, "--fetcher=web=http://b/{key}");
  EXPECT_EQ(config.fetchers[1].name, "slow");
  EXPECT_EQ(config.fetchers[1].uri, "echo:?delay=1s");
  EXPECT_EQ(config.fetchers[2].name, "echo");
  EXPECT_EQ(config.fetchers[2].uri, "echo:");
}

TEST(ConfigOverridesTest, FetcherFlagWithoutNameAndUriIsRefused) {
  for (const char* flag : {"web", "=http://b/{key}"}) {
    ServerConfig config;
    ConfigOverrides overrides;
    overrides.fetchers = {flag};
    absl::Status status = ApplyOverrides(overrides, config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << flag;
    EXPECT_THAT(std::string(status.message()), HasSubstr("NAME=URI")) << flag;
  }
}

TEST(ConfigOverridesTest, PolicyFlagsApplyToEveryFetcherTheEmbeddedOneToo) {
  ServerConfig config;
  config.fetchers.push_back({"web", "http://a/{key}", {}, "f.yaml:3"});
  ConfigOverrides overrides;
  overrides.fetch_timeout = absl::Seconds(3);
  overrides.max_flights = 5;
  overrides.max_waiters = 6;
  ASSERT_TRUE(ApplyOverrides(overrides, config).ok());
  ASSERT_EQ(config.fetchers.size(), 2u);
  for (const FetcherConfig& fetcher : config.fetchers) {
    EXPECT_EQ(fetcher.policy.timeout, absl::Seconds(3)) << fetcher.name;
    EXPECT_EQ(fetcher.policy.max_flights, 5) << fetcher.name;
    EXPECT_EQ(fetcher.policy.max_waiters, 6) << fetcher.name;
  }
}

TEST(ConfigOverridesTest, AFetcherNamedEchoReplacesTheEmbeddedOne) {
  ServerConfig config;
  config.fetchers.push_back({"echo", "echo:?delay=1ms", {}, "f.yaml:3"});
  AddEmbeddedFetcher(config);
  ASSERT_EQ(config.fetchers.size(), 1u);
  EXPECT_EQ(config.fetchers[0].uri, "echo:?delay=1ms");
  ServerConfig empty;
  AddEmbeddedFetcher(empty);
  AddEmbeddedFetcher(empty);
  ASSERT_EQ(empty.fetchers.size(), 1u);
  EXPECT_EQ(empty.fetchers[0].name, "echo");
}

TEST(DescribeConfigTest, LeavesSecretsOut) {
  ServerConfig config;
  config.tls_cert = "cert.pem";
  config.admin_token_file = "/run/secrets/admin";
  FetcherPolicy policy;
  policy.headers = {{"authorization", "Bearer s3cret"}};
  config.fetchers.push_back(
      {"web", "http://origin/{key}?api_key=s3cret", policy, "f.yaml:3"});
  std::string description = DescribeConfig(config);
  EXPECT_THAT(description, HasSubstr("tls=on"));
  EXPECT_THAT(description, HasSubstr("tokens=files"));
  EXPECT_THAT(description, HasSubstr("fetcher web=http://origin/{key}?***"));
  EXPECT_THAT(description, HasSubstr("headers=[authorization=***]"));
  EXPECT_THAT(description, ::testing::Not(HasSubstr("s3cret")));
  EXPECT_THAT(description, ::testing::Not(HasSubstr("/run/secrets")));
}

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

TEST(ConfigTest, ReadsAFetchersCachePolicy) {
  std::string path = WriteConfig(R"(
fetchers:
  users:
    uri: http://origin/users/{key}
    cache:
      ttl: 5s
      stale_while_revalidate: 30s
      stale_if_error: 5m
      negative_ttl: 1s
      negative_codes: [NOT_FOUND, permission_denied]
      max_bytes: 256MiB
      early_refresh: true
      respect_cache_control: true
)");
  absl::StatusOr<ServerConfig> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  const CachePolicy& cache = config->fetchers[0].policy.cache;
  EXPECT_EQ(cache.ttl, absl::Seconds(5));
  EXPECT_EQ(cache.stale_while_revalidate, absl::Seconds(30));
  EXPECT_EQ(cache.stale_if_error, absl::Minutes(5));
  EXPECT_EQ(cache.negative_ttl, absl::Seconds(1));
  EXPECT_EQ(cache.negative_codes, (std::vector<absl::StatusCode>{
                                      absl::StatusCode::kNotFound,
                                      absl::StatusCode::kPermissionDenied}));
  EXPECT_EQ(cache.max_bytes, size_t{256} << 20);
  EXPECT_TRUE(cache.early_refresh);
  EXPECT_TRUE(cache.respect_cache_control);
  EXPECT_TRUE(cache.enabled());
  EXPECT_THAT(DescribeConfig(*config), HasSubstr("cache={ttl=5s"));
}

TEST(ConfigTest, BadCacheSettingsAreRefusedWithTheirLine) {
  struct Bad {
    const char* cache;
    const char* where;
  };
  for (const Bad& bad : {
           Bad{"      ttl: soon\n", ":5: \"soon\" is not a duration"},
           Bad{"      negative_codes: [NOT_A_CODE]\n",
               ":5: \"NOT_A_CODE\" is not a gRPC error code name"},
           Bad{"      negative_codes: [OK]\n", ":5: \"OK\" is not a gRPC"},
           Bad{"      max_bytes: 12XB\n", ":5: \"12XB\" is not a size"},
           Bad{"      ttl_s: 5\n", ":5: unknown key \"ttl_s\""},
       }) {
    std::string text =
        std::string("fetchers:\n  a:\n    uri: \"echo:\"\n    cache:\n") +
        bad.cache;
    absl::StatusOr<ServerConfig> config = LoadConfigFile(WriteConfig(text));
    ASSERT_FALSE(config.ok()) << text;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(bad.where))
        << text;
  }
  // negative_ttl without the codes it keeps: refused when the fetcher is
  // built.
  ServerConfig config;
  FetcherPolicy policy;
  policy.cache.negative_ttl = absl::Seconds(1);
  config.fetchers.push_back({"a", "echo:", policy, "test"});
  EXPECT_THAT(std::string(SingleFlightServer::Check(config).message()),
              HasSubstr("negative_ttl needs negative_codes"));
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
