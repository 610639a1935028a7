#include "server/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "fetchers/builtin_fetchers.h"

namespace singleflight {
namespace {

// `name` (OK, NOT_FOUND, ..., in any case) as a code.
bool ParseStatusCode(absl::string_view name, absl::StatusCode& code) {
  for (int i = 0; i <= 16; ++i) {
    absl::StatusCode candidate = static_cast<absl::StatusCode>(i);
    std::string known = absl::StatusCodeToString(candidate);
    if (absl::EqualsIgnoreCase(name, known)) {
      code = candidate;
      return true;
    }
  }
  return false;
}

// A byte count: a whole number, optionally followed by KiB, MiB or GiB.
bool ParseByteSize(absl::string_view text, size_t& bytes) {
  uint64_t unit = 1;
  for (auto [suffix, size] : {std::pair{"KiB", uint64_t{1} << 10},
                              std::pair{"MiB", uint64_t{1} << 20},
                              std::pair{"GiB", uint64_t{1} << 30}}) {
    if (absl::ConsumeSuffix(&text, suffix)) {
      unit = size;
      break;
    }
  }
  uint64_t count = 0;
  if (!absl::SimpleAtoi(text, &count) || count > (uint64_t{1} << 50) / unit) {
    return false;
  }
  bytes = static_cast<size_t>(count * unit);
  return true;
}

// Reads one YAML document, turning every problem into an error that names
// FILE:LINE.
class ConfigReader {
 public:
  explicit ConfigReader(std::string path) : path_(std::move(path)) {}

  absl::Status Read(const YAML::Node& root, ServerConfig& config) {
    if (root.IsNull()) return absl::OkStatus();
    if (!root.IsMap()) return Error(root, "the file must be a YAML mapping");
    absl::Status status = CheckKeys(
        root, {"listen", "metrics_listen", "default_fetcher", "drain_timeout",
               "drain_grace", "max_stream_pending", "max_stream_buffer_bytes",
               "max_message_bytes", "max_concurrent_streams", "tls", "tokens",
               "log", "fetchers", "proxy"});
    if (!status.ok()) return status;
    if (root["listen"])
      status.Update(ReadString(root["listen"], config.listen));
    if (root["metrics_listen"]) {
      status.Update(ReadString(root["metrics_listen"], config.metrics_listen));
    }
    if (root["default_fetcher"]) {
      status.Update(
          ReadString(root["default_fetcher"], config.default_fetcher));
    }
    if (root["drain_timeout"]) {
      status.Update(ReadDuration(root["drain_timeout"], config.drain_timeout));
    }
    if (root["drain_grace"]) {
      status.Update(ReadDuration(root["drain_grace"], config.drain_grace));
    }
    if (root["max_stream_pending"]) {
      status.Update(
          ReadInteger(root["max_stream_pending"], config.max_stream_pending));
    }
    if (root["max_stream_buffer_bytes"]) {
      status.Update(ReadInteger(root["max_stream_buffer_bytes"],
                                config.max_stream_buffer_bytes));
    }
    if (root["max_message_bytes"]) {
      status.Update(
          ReadInteger(root["max_message_bytes"], config.max_message_bytes));
    }
    if (root["max_concurrent_streams"]) {
      status.Update(ReadInteger(root["max_concurrent_streams"],
                                config.max_concurrent_streams));
    }
    if (!status.ok()) return status;
    status = ReadSection(root["tls"], {{"cert", &config.tls_cert},
                                       {"key", &config.tls_key},
                                       {"client_ca", &config.tls_client_ca}});
    if (!status.ok()) return status;
    status =
        ReadSection(root["tokens"], {{"caller_file", &config.caller_token_file},
                                     {"admin_file", &config.admin_token_file}});
    if (!status.ok()) return status;
    if (const YAML::Node log = root["log"]) {
      if (!log.IsMap()) return Error(log, "log must be a mapping");
      status = CheckKeys(log, {"level", "json"});
      if (status.ok() && log["level"]) {
        status = ReadString(log["level"], config.log_level);
      }
      if (status.ok() && log["json"]) {
        status = ReadBool(log["json"], config.log_json);
      }
      if (!status.ok()) return status;
    }
    if (const YAML::Node proxy = root["proxy"]) {
      status = ReadProxy(proxy, config.proxy);
      if (!status.ok()) return status;
    }
    const YAML::Node fetchers = root["fetchers"];
    if (!fetchers) return absl::OkStatus();
    if (!fetchers.IsMap()) {
      return Error(fetchers, "fetchers must map names to fetcher settings");
    }
    std::set<std::string> names;
    for (const auto& entry : fetchers) {
      FetcherConfig fetcher;
      status = ReadString(entry.first, fetcher.name);
      if (!status.ok()) return status;
      if (!names.insert(fetcher.name).second) {
        return Error(entry.first, absl::StrCat("fetcher \"", fetcher.name,
                                               "\" is defined twice"));
      }
      status = ReadFetcher(entry.second, fetcher);
      if (!status.ok()) return status;
      fetcher.origin = Where(entry.first);
      config.fetchers.push_back(std::move(fetcher));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status ReadFetcher(const YAML::Node& node, FetcherConfig& fetcher) {
    if (node.IsScalar()) {  // `name: URI` is short for `name: {uri: URI}`.
      return ReadExpanded(node, fetcher.uri);
    }
    if (!node.IsMap()) {
      return Error(node, "a fetcher is a URI or a mapping of settings");
    }
    std::vector<const char*> keys = PolicyKeys();
    keys.push_back("uri");
    keys.push_back("tls");
    absl::Status status = CheckKeys(node, keys);
    if (!status.ok()) return status;
    if (!node["uri"]) return Error(node, "a fetcher needs a uri");
    FetcherPolicy& policy = fetcher.policy;
    status.Update(ReadExpanded(node["uri"], fetcher.uri));
    if (status.ok()) {
      status =
          ReadSection(node["tls"], {{"ca_file", &policy.tls.ca_file},
                                    {"cert_file", &policy.tls.cert_file},
                                    {"key_file", &policy.tls.key_file},
                                    {"server_name", &policy.tls.server_name}});
    }
    if (!status.ok()) return status;
    return ReadPolicy(node, policy);
  }

  absl::Status ReadProxy(const YAML::Node& node, ProxyConfig& proxy) {
    if (!node.IsMap()) return Error(node, "proxy must be a mapping");
    absl::Status status = CheckKeys(
        node, {"upstream", "tls", "ca_file", "cert_file", "key_file",
               "server_name", "descriptor_set", "max_calls", "coalesce"});
    if (!status.ok()) return status;
    // The upstream may come from --proxy_upstream; start-up refuses
    // patterns without one.
    if (node["upstream"]) {
      status.Update(ReadExpanded(node["upstream"], proxy.upstream));
    }
    if (node["tls"]) status.Update(ReadBool(node["tls"], proxy.tls));
    if (node["max_calls"]) {
      status.Update(ReadInteger(node["max_calls"], proxy.max_calls));
    }
    for (auto [key, out] :
         {std::pair{"ca_file", &proxy.tls_files.ca_file},
          std::pair{"cert_file", &proxy.tls_files.cert_file},
          std::pair{"key_file", &proxy.tls_files.key_file},
          std::pair{"server_name", &proxy.tls_files.server_name},
          std::pair{"descriptor_set", &proxy.descriptor_set}}) {
      if (node[key]) status.Update(ReadExpanded(node[key], *out));
    }
    if (!status.ok()) return status;
    const YAML::Node coalesce = node["coalesce"];
    if (!coalesce) return absl::OkStatus();
    if (!coalesce.IsSequence()) {
      return Error(coalesce,
                   "coalesce must be a list of {method: PATTERN, ...}");
    }
    for (const YAML::Node& entry : coalesce) {
      ProxyCoalesceConfig pattern;
      pattern.origin = Where(entry);
      if (entry.IsScalar()) {  // `- PATTERN` is short for `- {method: ...}`.
        status = ReadString(entry, pattern.method);
      } else if (!entry.IsMap()) {
        return Error(entry, "a coalesce entry is a pattern or a mapping");
      } else {
        std::vector<const char*> keys = PolicyKeys();
        keys.push_back("method");
        status = CheckKeys(entry, keys);
        if (status.ok() && !entry["method"]) {
          return Error(entry, "a coalesce entry needs a method pattern");
        }
        if (status.ok()) status = ReadString(entry["method"], pattern.method);
        if (status.ok()) status = ReadPolicy(entry, pattern.policy);
      }
      if (!status.ok()) return status;
      proxy.coalesce.push_back(std::move(pattern));
    }
    return absl::OkStatus();
  }

  // The keys of a fetcher's policy, shared by fetchers and proxy patterns.
  static std::vector<const char*> PolicyKeys() {
    return {"timeout",       "max_concurrency", "max_queue",
            "max_flights",   "max_waiters",     "linger",
            "linger_errors", "key_metadata",    "forward_metadata",
            "headers",       "max_value_bytes", "cache"};
  }

  // A fetcher's freshness policy (docs/CONFIG.md, "Freshness").
  absl::Status ReadCache(const YAML::Node& node, CachePolicy& cache) {
    if (!node.IsMap()) return Error(node, "cache must be a mapping");
    absl::Status status =
        CheckKeys(node, {"ttl", "stale_while_revalidate", "stale_if_error",
                         "negative_ttl", "negative_codes", "max_bytes",
                         "early_refresh", "respect_cache_control"});
    if (!status.ok()) return status;
    for (auto [key, out] :
         {std::pair{"ttl", &cache.ttl},
          std::pair{"stale_while_revalidate", &cache.stale_while_revalidate},
          std::pair{"stale_if_error", &cache.stale_if_error},
          std::pair{"negative_ttl", &cache.negative_ttl}}) {
      if (node[key]) status.Update(ReadDuration(node[key], *out));
    }
    if (node["early_refresh"]) {
      status.Update(ReadBool(node["early_refresh"], cache.early_refresh));
    }
    if (node["respect_cache_control"]) {
      status.Update(
          ReadBool(node["respect_cache_control"], cache.respect_cache_control));
    }
    if (!status.ok()) return status;
    if (const YAML::Node codes = node["negative_codes"]) {
      if (!codes.IsSequence()) {
        return Error(codes, "negative_codes is a list of gRPC code names");
      }
      for (const YAML::Node& item : codes) {
        absl::StatusCode code;
        if (!item.IsScalar() || !ParseStatusCode(item.Scalar(), code) ||
            code == absl::StatusCode::kOk) {
          return Error(item, absl::StrCat("\"", item.Scalar(),
                                          "\" is not a gRPC error code name "
                                          "like NOT_FOUND"));
        }
        cache.negative_codes.push_back(code);
      }
    }
    if (const YAML::Node bytes = node["max_bytes"]) {
      if (!bytes.IsScalar() ||
          !ParseByteSize(bytes.Scalar(), cache.max_bytes) ||
          cache.max_bytes == 0) {
        return Error(bytes, absl::StrCat("\"", bytes.Scalar(),
                                         "\" is not a size like 64MiB or "
                                         "1048576"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadPolicy(const YAML::Node& node, FetcherPolicy& policy) {
    absl::Status status;
    if (node["timeout"])
      status.Update(ReadDuration(node["timeout"], policy.timeout));
    if (node["max_concurrency"]) {
      status.Update(
          ReadInteger(node["max_concurrency"], policy.max_concurrency));
    }
    if (node["max_queue"]) {
      status.Update(ReadInteger(node["max_queue"], policy.max_queue));
    }
    if (node["max_flights"]) {
      status.Update(ReadInteger(node["max_flights"], policy.max_flights));
    }
    if (node["max_waiters"]) {
      status.Update(ReadInteger(node["max_waiters"], policy.max_waiters));
    }
    if (node["linger"])
      status.Update(ReadDuration(node["linger"], policy.linger));
    if (node["linger_errors"]) {
      status.Update(ReadBool(node["linger_errors"], policy.linger_errors));
    }
    if (node["key_metadata"]) {
      status.Update(ReadStrings(node["key_metadata"], policy.key_metadata));
    }
    if (node["forward_metadata"]) {
      status.Update(
          ReadStrings(node["forward_metadata"], policy.forward_metadata));
    }
    if (node["headers"])
      status.Update(ReadHeaders(node["headers"], policy.headers));
    if (status.ok() && node["cache"]) {
      status = ReadCache(node["cache"], policy.cache);
    }
    if (node["max_value_bytes"]) {
      int64_t bytes = 0;
      status.Update(ReadInteger(node["max_value_bytes"], bytes));
      if (status.ok() && bytes <= 0) {
        return Error(node["max_value_bytes"],
                     "max_value_bytes must be positive");
      }
      policy.max_value_bytes = static_cast<size_t>(bytes);
    }
    return status;
  }

  absl::Status CheckKeys(const YAML::Node& map,
                         absl::Span<const char* const> known) {
    std::set<std::string> seen;
    for (const auto& entry : map) {
      std::string key = entry.first.Scalar();
      bool is_known = false;
      for (const char* name : known) is_known = is_known || key == name;
      if (!is_known) {
        return Error(entry.first,
                     absl::StrCat("unknown key \"", key, "\" (known: ",
                                  absl::StrJoin(known, ", "), ")"));
      }
      if (!seen.insert(key).second) {
        return Error(entry.first, absl::StrCat("\"", key, "\" is given twice"));
      }
    }
    return absl::OkStatus();
  }

  // A mapping of string settings (file paths, with ${NAME} expanded): each
  // key, if present, sets its string. An absent section sets nothing.
  absl::Status ReadSection(
      const YAML::Node& node,
      std::initializer_list<std::pair<const char*, std::string*>> keys) {
    if (!node) return absl::OkStatus();
    if (!node.IsMap()) return Error(node, "expected a mapping");
    std::vector<const char*> names;
    for (const auto& [name, out] : keys) names.push_back(name);
    absl::Status status = CheckKeys(node, names);
    for (const auto& [name, out] : keys) {
      if (status.ok() && node[name]) status = ReadExpanded(node[name], *out);
    }
    return status;
  }

  absl::Status ReadString(const YAML::Node& node, std::string& out) {
    if (!node.IsScalar()) return Error(node, "expected a string");
    out = node.Scalar();
    return absl::OkStatus();
  }

  // A string in which ${NAME} is replaced by the environment variable NAME.
  absl::Status ReadExpanded(const YAML::Node& node, std::string& out) {
    std::string text;
    absl::Status status = ReadString(node, text);
    if (!status.ok()) return status;
    out.clear();
    size_t at = 0;
    while (true) {
      size_t start = text.find("${", at);
      if (start == std::string::npos) break;
      size_t end = text.find('}', start);
      if (end == std::string::npos) {
        return Error(node, "unterminated ${ in \"" + text + "\"");
      }
      std::string name = text.substr(start + 2, end - start - 2);
      const char* value = std::getenv(name.c_str());
      if (value == nullptr) {
        return Error(
            node, absl::StrCat("environment variable ", name, " is not set"));
      }
      out += text.substr(at, start - at);
      out += value;
      at = end + 1;
    }
    out += text.substr(at);
    return absl::OkStatus();
  }

  absl::Status ReadDuration(const YAML::Node& node, absl::Duration& out) {
    if (!node.IsScalar() || !absl::ParseDuration(node.Scalar(), &out) ||
        out < absl::ZeroDuration()) {
      return Error(node, absl::StrCat("\"", node.Scalar(),
                                      "\" is not a duration like 250ms or 2s"));
    }
    return absl::OkStatus();
  }

  template <typename Int>
  absl::Status ReadInteger(const YAML::Node& node, Int& out) {
    try {
      out = node.as<Int>();
    } catch (const YAML::Exception&) {
      return Error(
          node, absl::StrCat("\"", node.Scalar(), "\" is not a whole number"));
    }
    return absl::OkStatus();
  }

  absl::Status ReadBool(const YAML::Node& node, bool& out) {
    try {
      out = node.as<bool>();
    } catch (const YAML::Exception&) {
      return Error(
          node, absl::StrCat("\"", node.Scalar(), "\" is not true or false"));
    }
    return absl::OkStatus();
  }

  absl::Status ReadStrings(const YAML::Node& node,
                           std::vector<std::string>& out) {
    if (!node.IsSequence()) return Error(node, "expected a list of names");
    for (const auto& item : node) {
      std::string value;
      absl::Status status = ReadString(item, value);
      if (!status.ok()) return status;
      out.push_back(std::move(value));
    }
    return absl::OkStatus();
  }

  absl::Status ReadHeaders(const YAML::Node& node, Metadata& out) {
    if (!node.IsMap()) return Error(node, "headers map names to values");
    for (const auto& entry : node) {
      std::string name, value;
      absl::Status status = ReadString(entry.first, name);
      status.Update(ReadExpanded(entry.second, value));
      if (!status.ok()) return status;
      out.emplace_back(std::move(name), std::move(value));
    }
    return absl::OkStatus();
  }

  std::string Where(const YAML::Node& node) const {
    return absl::StrCat(path_, ":", node.Mark().line + 1);
  }

  absl::Status Error(const YAML::Node& node, const std::string& reason) const {
    return absl::InvalidArgumentError(absl::StrCat(Where(node), ": ", reason));
  }

  const std::string path_;
};

}  // namespace

absl::StatusOr<ServerConfig> LoadConfigFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  }
  YAML::Node root;
  try {
    root = YAML::Load(file);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", e.mark.line + 1, ": malformed YAML: ", e.msg));
  }
  ServerConfig config;
  absl::Status status = ConfigReader(path).Read(root, config);
  if (!status.ok()) return status;
  return config;
}

absl::Status ApplyOverrides(const ConfigOverrides& overrides,
                            ServerConfig& config) {
  auto set = [](const auto& value, auto& field) {
    if (value.has_value()) field = *value;
  };
  set(overrides.listen, config.listen);
  set(overrides.metrics_listen, config.metrics_listen);
  set(overrides.default_fetcher, config.default_fetcher);
  set(overrides.drain_timeout, config.drain_timeout);
  set(overrides.drain_grace, config.drain_grace);
  set(overrides.tls_cert, config.tls_cert);
  set(overrides.tls_key, config.tls_key);
  set(overrides.tls_client_ca, config.tls_client_ca);
  set(overrides.caller_token_file, config.caller_token_file);
  set(overrides.admin_token_file, config.admin_token_file);
  set(overrides.log_level, config.log_level);
  set(overrides.log_json, config.log_json);
  set(overrides.max_message_bytes, config.max_message_bytes);
  set(overrides.max_concurrent_streams, config.max_concurrent_streams);
  set(overrides.max_stream_pending, config.max_stream_pending);
  set(overrides.max_stream_buffer_bytes, config.max_stream_buffer_bytes);
  for (const std::string& flag : overrides.fetchers) {
    size_t equals = flag.find('=');
    if (equals == std::string::npos || equals == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--fetcher wants NAME=URI, got \"", flag, "\""));
    }
    std::string name = flag.substr(0, equals);
    auto it = std::find_if(
        config.fetchers.begin(), config.fetchers.end(),
        [&name](const FetcherConfig& fetcher) { return fetcher.name == name; });
    if (it == config.fetchers.end()) {
      it = config.fetchers.insert(config.fetchers.end(),
                                  FetcherConfig{name, "", {}, ""});
    }
    it->uri = flag.substr(equals + 1);
    it->origin = "--fetcher=" + flag;
  }
  set(overrides.proxy_upstream, config.proxy.upstream);
  set(overrides.proxy_upstream_tls, config.proxy.tls);
  set(overrides.proxy_ca_file, config.proxy.tls_files.ca_file);
  set(overrides.proxy_descriptor_set, config.proxy.descriptor_set);
  for (const std::string& pattern : overrides.proxy_coalesce) {
    config.proxy.coalesce.push_back(
        {pattern, {}, "--proxy_coalesce=" + pattern});
  }
  for (ProxyCoalesceConfig& pattern : config.proxy.coalesce) {
    set(overrides.fetch_timeout, pattern.policy.timeout);
    set(overrides.max_flights, pattern.policy.max_flights);
    set(overrides.max_waiters, pattern.policy.max_waiters);
  }
  AddEmbeddedFetcher(config);
  for (FetcherConfig& fetcher : config.fetchers) {
    set(overrides.fetch_timeout, fetcher.policy.timeout);
    set(overrides.max_flights, fetcher.policy.max_flights);
    set(overrides.max_waiters, fetcher.policy.max_waiters);
  }
  return absl::OkStatus();
}

void AddEmbeddedFetcher(ServerConfig& config) {
  for (const FetcherConfig& fetcher : config.fetchers) {
    if (fetcher.name == kDefaultFetcherName) return;
  }
  config.fetchers.push_back(
      {kDefaultFetcherName, kDefaultFetcherUri, {}, "the embedded default"});
}

std::string DescribeConfig(const ServerConfig& config) {
  std::string tls = config.tls_cert.empty()        ? "off"
                    : config.tls_client_ca.empty() ? "on"
                                                   : "mutual";
  std::string description = absl::StrCat(
      "listen=", config.listen, " tls=", tls, " tokens=",
      config.caller_token_file.empty() && config.admin_token_file.empty()
          ? "environment-or-none"
          : "files",
      " max_message_bytes=", config.max_message_bytes,
      " max_concurrent_streams=", config.max_concurrent_streams,
      " max_stream_pending=", config.max_stream_pending,
      " max_stream_buffer_bytes=", config.max_stream_buffer_bytes,
      " drain_grace=", absl::FormatDuration(config.drain_grace),
      " drain_timeout=", absl::FormatDuration(config.drain_timeout));
  if (!config.proxy.upstream.empty()) {
    std::vector<std::string> patterns;
    for (const ProxyCoalesceConfig& pattern : config.proxy.coalesce) {
      patterns.push_back(pattern.method);
    }
    absl::StrAppend(
        &description, "; proxy upstream=", config.proxy.upstream,
        " tls=", config.proxy.tls ? "on" : "off", " descriptor_set=",
        config.proxy.descriptor_set.empty() ? "(reflection)"
                                            : config.proxy.descriptor_set,
        " coalesce=[", absl::StrJoin(patterns, ","), "]");
  }
  for (const FetcherConfig& fetcher : config.fetchers) {
    const FetcherPolicy& policy = fetcher.policy;
    std::vector<std::string> headers;
    for (const auto& header : policy.headers) {
      headers.push_back(header.first + "=***");
    }
    size_t query = fetcher.uri.find('?');
    absl::StrAppend(
        &description, "; fetcher ", fetcher.name, "=",
        fetcher.uri.substr(0, query), query == std::string::npos ? "" : "?***",
        " timeout=", absl::FormatDuration(policy.timeout),
        " max_concurrency=", policy.max_concurrency,
        " max_queue=", policy.max_queue, " max_flights=", policy.max_flights,
        " max_waiters=", policy.max_waiters,
        " linger=", absl::FormatDuration(policy.linger), " key_metadata=[",
        absl::StrJoin(policy.key_metadata, ","), "] forward_metadata=[",
        absl::StrJoin(policy.forward_metadata, ","), "] headers=[",
        absl::StrJoin(headers, ","), "]");
    if (policy.cache.enabled()) {
      const CachePolicy& cache = policy.cache;
      absl::StrAppend(
          &description, " cache={ttl=", absl::FormatDuration(cache.ttl),
          " stale_while_revalidate=",
          absl::FormatDuration(cache.stale_while_revalidate),
          " stale_if_error=", absl::FormatDuration(cache.stale_if_error),
          " negative_ttl=", absl::FormatDuration(cache.negative_ttl),
          " max_bytes=", cache.max_bytes,
          " early_refresh=", cache.early_refresh ? "true" : "false",
          " respect_cache_control=",
          cache.respect_cache_control ? "true" : "false", "}");
    }
  }
  return description;
}

}  // namespace singleflight
