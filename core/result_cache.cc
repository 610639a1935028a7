#include "core/result_cache.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace singleflight {
namespace {

// What an entry costs beyond its strings, measured (about): the map slot at
// its load factor, the list node, the FlightResult with its control block
// and directives.
constexpr size_t kEntryOverhead = 512;

}  // namespace

ResultCache::ResultCache(CachePolicy policy) : policy_(std::move(policy)) {}

std::string ResultCache::EntryKey(absl::string_view scope,
                                  absl::string_view key) {
  return absl::StrCat(scope.size(), ":", scope, key);
}

bool ResultCache::Keeps(const absl::Status& status) const {
  if (status.ok()) return policy_.ttl > absl::ZeroDuration();
  if (policy_.negative_ttl <= absl::ZeroDuration()) return false;
  return std::find(policy_.negative_codes.begin(), policy_.negative_codes.end(),
                   status.code()) != policy_.negative_codes.end();
}

bool ResultCache::RefreshEarly(const Entry& entry, absl::Duration age) const {
  // XFetch with beta = 1: refresh when delta * -ln(U) reaches the time
  // left, U uniform in (0, 1]; the longer the execution (delta) and the
  // closer the expiry, the likelier.
  thread_local absl::BitGen random;
  double u = absl::Uniform(absl::IntervalOpenClosed, random, 0.0, 1.0);
  absl::Duration left = entry.fresh_for - age;
  return entry.execution * -std::log(u) >= left;
}

ResultCache::Found ResultCache::Find(absl::string_view scope,
                                     absl::string_view key, absl::Time now) {
  Found found;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(EntryKey(scope, key));
  if (it == entries_.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return found;
  }
  Entry& entry = it->second;
  absl::Duration age = std::max(now - entry.stored, absl::ZeroDuration());
  found.result = entry.result;
  found.age = age;
  if (age < entry.fresh_for) {
    found.kind = Kind::kFresh;
    if (policy_.early_refresh && !entry.negative && !entry.refreshing &&
        RefreshEarly(entry, age)) {
      entry.refreshing = true;
      found.refresh = true;
      refreshes_.fetch_add(1, std::memory_order_relaxed);
    }
  } else if (!entry.negative &&
             age < entry.fresh_for + entry.stale_while_revalidate) {
    found.kind = Kind::kStale;
    if (!entry.refreshing) {
      entry.refreshing = true;
      found.refresh = true;
      refreshes_.fetch_add(1, std::memory_order_relaxed);
    }
  } else if (!entry.negative && age < entry.fresh_for + entry.stale_if_error) {
    // The first caller runs the flight; the others have the old value
    // meanwhile.
    if (entry.refreshing) {
      found.kind = Kind::kStale;
    } else {
      entry.refreshing = true;
      found.result = nullptr;
    }
  } else {
    EraseLocked(it);
    found.result = nullptr;
  }
  if (found.kind == Kind::kMiss) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return found;
  }
  (found.kind == Kind::kFresh ? hits_ : stale_hits_)
      .fetch_add(1, std::memory_order_relaxed);
  lru_.splice(lru_.begin(), lru_, entry.lru);
  return found;
}

void ResultCache::Store(absl::string_view scope, absl::string_view key,
                        std::shared_ptr<const FlightResult> result,
                        absl::Time started, absl::Time now, uint64_t epoch) {
  const absl::Duration execution = now - started;
  const bool negative = !result->status.ok();
  absl::Duration fresh_for = negative ? policy_.negative_ttl : policy_.ttl;
  absl::Duration stale_while_revalidate =
      negative ? absl::ZeroDuration() : policy_.stale_while_revalidate;
  absl::Duration stale_if_error =
      negative ? absl::ZeroDuration() : policy_.stale_if_error;
  if (!negative && policy_.respect_cache_control &&
      result->directives.has_value()) {
    const CacheDirectives& said = *result->directives;
    if (said.no_store) {
      // Nothing to keep, but the old value may be refreshed again.
      RefreshFailed(scope, key, /*background=*/false);
      return;
    }
    fresh_for = said.max_age.value_or(fresh_for);
    stale_while_revalidate =
        said.stale_while_revalidate.value_or(stale_while_revalidate);
    stale_if_error = said.stale_if_error.value_or(stale_if_error);
  }
  std::string entry_key = EntryKey(scope, key);
  // The key is held three times (map, LRU list, entry).
  size_t bytes = 3 * entry_key.size() + result->value.size() +
                 result->status.message().size() + kEntryOverhead;
  absl::MutexLock lock(&mu_);
  if (epoch != epoch_.load(std::memory_order_relaxed)) return;
  auto it = entries_.find(entry_key);
  if (it != entries_.end()) {
    if (it->second.result == result) {
      it->second.refreshing = false;
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return;
    }
    // A newer flight's value stays.
    if (it->second.stored > started) return;
    EraseLocked(it);
  }
  // A value never fresh is still kept for its stale windows (max-age=0 or
  // no-cache with stale-while-revalidate or stale-if-error).
  absl::Duration kept_for =
      fresh_for + std::max(stale_while_revalidate, stale_if_error);
  if (kept_for <= absl::ZeroDuration() || bytes > policy_.max_bytes / 10) {
    return;
  }
  while (bytes_ + bytes > policy_.max_bytes && !lru_.empty()) {
    EraseLocked(entries_.find(lru_.back()));
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  lru_.push_front(entry_key);
  Entry& entry = entries_[entry_key];
  entry.scope = std::string(scope);
  entry.key = std::string(key);
  entry.result = std::move(result);
  entry.stored = now;
  entry.fresh_for = fresh_for;
  entry.stale_while_revalidate = stale_while_revalidate;
  entry.stale_if_error = stale_if_error;
  entry.execution = execution;
  entry.negative = negative;
  entry.bytes = bytes;
  entry.lru = lru_.begin();
  bytes_ += bytes;
}

void ResultCache::RefreshFailed(absl::string_view scope, absl::string_view key,
                                bool background) {
  if (background) refresh_failures_.fetch_add(1, std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(EntryKey(scope, key));
  if (it != entries_.end()) it->second.refreshing = false;
}

ResultCache::Found ResultCache::StaleIfError(absl::string_view scope,
                                             absl::string_view key,
                                             absl::Time now) {
  Found found;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(EntryKey(scope, key));
  if (it == entries_.end() || it->second.negative) return found;
  const Entry& entry = it->second;
  absl::Duration age = std::max(now - entry.stored, absl::ZeroDuration());
  if (age >= entry.fresh_for + entry.stale_if_error) return found;
  found.kind = Kind::kStale;
  found.result = entry.result;
  found.age = age;
  stale_hits_.fetch_add(1, std::memory_order_relaxed);
  return found;
}

bool ResultCache::Drop(absl::string_view scope, absl::string_view key) {
  absl::MutexLock lock(&mu_);
  epoch_.fetch_add(1, std::memory_order_release);
  auto it = entries_.find(EntryKey(scope, key));
  if (it == entries_.end()) return false;
  EraseLocked(it);
  return true;
}

size_t ResultCache::DropPrefix(absl::string_view prefix) {
  absl::MutexLock lock(&mu_);
  epoch_.fetch_add(1, std::memory_order_release);
  std::vector<std::string> doomed;
  for (const auto& [entry_key, entry] : entries_) {
    if (absl::StartsWith(entry.key, prefix)) doomed.push_back(entry_key);
  }
  for (const std::string& entry_key : doomed) {
    EraseLocked(entries_.find(entry_key));
  }
  return doomed.size();
}

void ResultCache::EraseLocked(
    absl::flat_hash_map<std::string, Entry>::iterator it) {
  bytes_ -= it->second.bytes;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

ResultCache::Stats ResultCache::stats() const {
  Stats stats;
  stats.hits = hits_.load(std::memory_order_relaxed);
  stats.stale_hits = stale_hits_.load(std::memory_order_relaxed);
  stats.misses = misses_.load(std::memory_order_relaxed);
  stats.refreshes = refreshes_.load(std::memory_order_relaxed);
  stats.refresh_failures = refresh_failures_.load(std::memory_order_relaxed);
  stats.evictions = evictions_.load(std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  stats.bytes = bytes_;
  stats.entries = entries_.size();
  return stats;
}

}  // namespace singleflight
