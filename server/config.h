#ifndef SINGLEFLIGHT_SERVER_CONFIG_H_
#define SINGLEFLIGHT_SERVER_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/fetcher.h"

namespace singleflight {

// One fetcher as configured, and where (for error messages).
struct FetcherConfig {
  std::string name;
  std::string uri;
  FetcherPolicy policy;
  // "FILE:LINE" for the config file, "--fetcher" for a flag.
  std::string origin;
};

// One proxy coalesce pattern, with the policy of the methods it names.
struct ProxyCoalesceConfig {
  // "/package.Service/Method" or "/package.Service/*".
  std::string method;
  FetcherPolicy policy;
  // "FILE:LINE" for the config file, "--proxy_coalesce" for a flag.
  std::string origin;
};

// Proxy mode (ProxyService): where to forward the methods the server does
// not serve itself, and which unary methods to coalesce.
struct ProxyConfig {
  // HOST:PORT of the upstream; empty for no proxy.
  std::string upstream;
  // TLS to the upstream, checked against tls_files.ca_file (or the system's
  // roots); tls_files may also name a client certificate and a server name.
  bool tls = false;
  BackendTls tls_files;
  // A FileDescriptorSet naming the upstream's methods; empty to ask the
  // upstream's reflection service instead.
  std::string descriptor_set;
  std::vector<ProxyCoalesceConfig> coalesce;
  // Proxied calls open at once, at most (0: no limit); beyond it, new ones
  // get RESOURCE_EXHAUSTED.
  int max_calls = 10000;
};

// Everything singleflightd is told at start-up, by its config file and then
// its flags.
struct ServerConfig {
  // HOST:PORT; port 0 picks a free port.
  std::string listen = "127.0.0.1:50051";
  // The embedded `echo` fetcher is added unless one of these takes its name.
  std::vector<FetcherConfig> fetchers;
  // Empty: `echo`.
  std::string default_fetcher;
  // HOST:PORT of the Prometheus /metrics endpoint; empty for none.
  std::string metrics_listen;
  // On SIGINT/SIGTERM, how long calls in progress may take to finish.
  absl::Duration drain_timeout = absl::Seconds(10);
  // On SIGINT/SIGTERM, how long health reports NOT_SERVING while calls are
  // still accepted, before the drain starts (for load balancers to notice).
  absl::Duration drain_grace = absl::ZeroDuration();

  // TLS, from PEM files: the server's certificate chain and key; with
  // tls_client_ca, clients must present a certificate signed by it (mTLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Bearer tokens (see AccessControl): files holding them; empty to take
  // them from the environment, or to have none.
  std::string caller_token_file;
  std::string admin_token_file;

  // Logging: trace, debug, info, warning, error or off; JSON lines or text.
  std::string log_level = "info";
  bool log_json = false;

  // Limits against abuse (0: none). Per fetcher limits are in its policy.
  int max_message_bytes = 4 << 20;  // Largest request message.
  int max_concurrent_streams = 0;   // Calls at once on one connection.
  // Items of one DoStream not yet written (waiting on a flight or on the
  // client to read); at the limit, the stream stops reading requests.
  int max_stream_pending = 10000;
  // Bytes of one DoStream's replies not yet written and of its requests
  // still waiting on a flight; over it, the stream stops reading requests.
  int64_t max_stream_buffer_bytes = int64_t{16} << 20;

  ProxyConfig proxy;
};

// Reads a YAML config file (the schema is in docs/CONFIG.md). `${NAME}` in a
// URI or header value is replaced by the environment variable NAME.
// Fails with INVALID_ARGUMENT, naming the file, the line and the reason, on
// malformed YAML, an unknown key, a bad value or duration, an unset
// environment variable, or a fetcher defined twice; NOT_FOUND if the file
// cannot be read. Fetcher URIs are checked when the fetchers are built
// (SingleFlightServer::Start), with the same FILE:LINE in the message.
absl::StatusOr<ServerConfig> LoadConfigFile(const std::string& path);

// What singleflightd's flags say: each field is set only when its flag was
// given, and then wins over the config file.
struct ConfigOverrides {
  std::optional<std::string> listen;
  std::optional<std::string> metrics_listen;
  std::optional<std::string> default_fetcher;
  std::optional<absl::Duration> drain_timeout;
  std::optional<absl::Duration> drain_grace;
  // NAME=URI, in the order given.
  std::vector<std::string> fetchers;
  // These replace every fetcher's own.
  std::optional<absl::Duration> fetch_timeout;
  std::optional<int> max_flights;
  std::optional<int> max_waiters;

  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  std::optional<std::string> tls_client_ca;
  std::optional<std::string> caller_token_file;
  std::optional<std::string> admin_token_file;
  std::optional<std::string> log_level;
  std::optional<bool> log_json;
  std::optional<int> max_message_bytes;
  std::optional<int> max_concurrent_streams;
  std::optional<int> max_stream_pending;
  std::optional<int64_t> max_stream_buffer_bytes;

  std::optional<std::string> proxy_upstream;
  std::optional<bool> proxy_upstream_tls;
  std::optional<std::string> proxy_ca_file;
  std::optional<std::string> proxy_descriptor_set;
  // Patterns added, with the default policy (and the fetch_timeout,
  // max_flights and max_waiters overrides).
  std::vector<std::string> proxy_coalesce;
};

// Applies `overrides` to `config`: each given field replaces the config's;
// each NAME=URI replaces the URI of the fetcher of that name, or adds one
// (its origin "--fetcher=NAME=URI"); then the embedded fetcher is added
// (AddEmbeddedFetcher), and fetch_timeout, max_flights and max_waiters
// replace the policy of every fetcher, the embedded one too. Fails with
// INVALID_ARGUMENT on a fetcher that is not NAME=URI, leaving `config`
// unspecified.
absl::Status ApplyOverrides(const ConfigOverrides& overrides,
                            ServerConfig& config);

// Adds the embedded `echo` fetcher (echo:) unless a fetcher takes its name:
// the one place where that rule lives.
void AddEmbeddedFetcher(ServerConfig& config);

// One line saying what the server was told, for the log, with secrets left
// out: URIs lose their query, headers their values, and token files are only
// said to be there.
std::string DescribeConfig(const ServerConfig& config);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_CONFIG_H_
