#include "core/fetcher_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace singleflight {
namespace {

bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.';
  });
}

}  // namespace

absl::Status ValidatePolicy(FetcherPolicy& policy) {
  if (policy.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout must be positive");
  }
  if (policy.max_concurrency < 0 || policy.max_queue < 0 ||
      policy.max_flights < 0 || policy.max_waiters < 0) {
    return absl::InvalidArgumentError(
        "max_concurrency, max_queue, max_flights and max_waiters must not be "
        "negative");
  }
  if (policy.linger < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("linger must not be negative");
  }
  const CachePolicy& cache = policy.cache;
  for (absl::Duration duration : {cache.ttl, cache.stale_while_revalidate,
                                  cache.stale_if_error, cache.negative_ttl}) {
    if (duration < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("cache durations must not be negative");
    }
  }
  if (cache.max_bytes == 0) {
    return absl::InvalidArgumentError("cache max_bytes must be positive");
  }
  if (cache.negative_ttl > absl::ZeroDuration() &&
      cache.negative_codes.empty()) {
    return absl::InvalidArgumentError(
        "cache negative_ttl needs negative_codes (which errors to keep)");
  }
  for (auto* names : {&policy.key_metadata, &policy.forward_metadata}) {
    for (std::string& metadata_name : *names) {
      metadata_name = absl::AsciiStrToLower(metadata_name);
    }
  }
  for (auto& header : policy.headers) {
    header.first = absl::AsciiStrToLower(header.first);
  }
  // Forwarding what is not part of the flight's identity would hand one
  // caller's answer (fetched with its credentials) to another caller.
  for (const std::string& forwarded : policy.forward_metadata) {
    if (std::find(policy.key_metadata.begin(), policy.key_metadata.end(),
                  forwarded) == policy.key_metadata.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "forward_metadata \"", forwarded,
          "\" is not in key_metadata: callers that differ in it would share "
          "one caller's answer"));
    }
  }
  return absl::OkStatus();
}

FetcherRegistry::FetcherRegistry(FetcherEnvironment environment)
    : environment_(environment) {}

void FetcherRegistry::RegisterScheme(std::string scheme,
                                     FetcherFactory factory) {
  factories_[std::move(scheme)] = std::move(factory);
}

absl::Status FetcherRegistry::Add(absl::string_view name,
                                  absl::string_view uri_text,
                                  FetcherPolicy policy) {
  if (!IsValidName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fetcher name \"", name, "\" must be 1..128 of [A-Za-z0-9_.-]"));
  }
  if (fetchers_.contains(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("fetcher \"", name, "\" is defined twice"));
  }
  absl::Status valid = ValidatePolicy(policy);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("fetcher \"", name, "\": ", valid.message()));
  }
  absl::StatusOr<FetcherUri> uri = FetcherUri::Parse(uri_text);
  if (!uri.ok()) return uri.status();
  auto factory = factories_.find(uri->scheme);
  if (factory == factories_.end()) {
    std::vector<std::string> schemes;
    for (const auto& entry : factories_) schemes.push_back(entry.first + ":");
    std::sort(schemes.begin(), schemes.end());
    return absl::InvalidArgumentError(
        absl::StrCat("fetcher \"", name, "\": unknown scheme \"", uri->scheme,
                     ":\" (known: ", absl::StrJoin(schemes, ", "), ")"));
  }
  absl::StatusOr<std::unique_ptr<Fetcher>> fetcher =
      factory->second(*uri, policy, environment_);
  if (!fetcher.ok()) {
    return absl::Status(
        fetcher.status().code(),
        absl::StrCat("fetcher \"", name, "\": ", fetcher.status().message()));
  }
  auto named = std::make_unique<NamedFetcher>(
      std::string(name), std::string(uri_text), policy, *std::move(fetcher));
  if (default_name_.empty()) default_name_ = named->name;
  fetchers_.emplace(named->name, std::move(named));
  return absl::OkStatus();
}

absl::Status FetcherRegistry::SetDefault(absl::string_view name) {
  absl::StatusOr<const NamedFetcher*> fetcher = Find(name);
  if (!fetcher.ok()) return fetcher.status();
  default_name_ = (*fetcher)->name;
  return absl::OkStatus();
}

absl::StatusOr<const NamedFetcher*> FetcherRegistry::Find(
    absl::string_view name) const {
  if (name.empty()) name = default_name_;
  auto it = fetchers_.find(name);
  if (it == fetchers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("unknown fetcher \"", name,
                     "\" (known: ", absl::StrJoin(Names(), ", "), ")"));
  }
  return it->second.get();
}

std::vector<std::string> FetcherRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& entry : fetchers_) names.push_back(entry.first);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace singleflight
