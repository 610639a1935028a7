#ifndef SINGLEFLIGHT_CORE_RESULT_CACHE_H_
#define SINGLEFLIGHT_CORE_RESULT_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/flight_result.h"

namespace singleflight {

// A fetcher's freshness policy (FetcherPolicy::cache). Off unless `ttl` or
// `negative_ttl` (with negative_codes) is positive.
struct CachePolicy {
  // A value is fresh this long after its execution finished.
  absl::Duration ttl = absl::ZeroDuration();
  // Then, for this long, it is answered at once (stale) while one
  // background refresh runs.
  absl::Duration stale_while_revalidate = absl::ZeroDuration();
  // For this long after ttl, a failed execution (or refresh) answers with
  // the last good value instead of its error.
  absl::Duration stale_if_error = absl::ZeroDuration();
  // Outcomes with these codes are answers, kept `negative_ttl`; no other
  // error is ever kept.
  absl::Duration negative_ttl = absl::ZeroDuration();
  std::vector<absl::StatusCode> negative_codes;
  // Bytes of every entry of the fetcher together; the least recently used
  // go first. A value larger than a tenth of it is not kept.
  size_t max_bytes = size_t{64} << 20;
  // Refresh a fresh value before ttl, with a probability that rises toward
  // it (XFetch: Vattani, Chierichetti and Lowenstein, VLDB 2015).
  bool early_refresh = false;
  // Take the value's CacheDirectives (max-age, stale-while-revalidate,
  // stale-if-error, no-store, private) over the policy's, when present.
  bool respect_cache_control = false;

  bool enabled() const {
    return ttl > absl::ZeroDuration() ||
           (negative_ttl > absl::ZeroDuration() && !negative_codes.empty());
  }
};

// The values (and negative outcomes) of one fetcher's flights, kept by the
// flight's identity (scope, key) for its CachePolicy, in at most max_bytes,
// least recently used evicted first. Group::Do consults it before a flight
// and stores into it after one; it decides what is fresh, stale or gone, and
// which caller starts a refresh (at most one at a time per key).
//
// Thread-safe: every method may be called from any thread.
class ResultCache {
 public:
  enum class Kind {
    kMiss,   // Nothing usable: join or start a flight.
    kFresh,  // A value within its ttl, or a negative outcome.
    kStale,  // A value past its ttl: answer with it.
  };

  struct Found {
    Kind kind = Kind::kMiss;
    std::shared_ptr<const FlightResult> result;
    absl::Duration age = absl::ZeroDuration();
    // The caller is to start a background refresh (a flight whose outcome
    // it Stores, or reports with RefreshFailed).
    bool refresh = false;
  };

  // Counters, for metrics. Monotonic except `bytes`.
  struct Stats {
    uint64_t hits = 0;
    uint64_t stale_hits = 0;
    uint64_t misses = 0;
    uint64_t refreshes = 0;
    uint64_t refresh_failures = 0;
    uint64_t evictions = 0;
    uint64_t bytes = 0;
    uint64_t entries = 0;
  };

  explicit ResultCache(CachePolicy policy);
  ResultCache(const ResultCache&) = delete;
  ResultCache& operator=(const ResultCache&) = delete;

  const CachePolicy& policy() const { return policy_; }

  // What a caller of (scope, key) gets at `now`. A value past ttl + swr but
  // within stale_if_error is stale only while a flight for it runs (the
  // first caller after swr starts that flight: kMiss, and the entry is
  // marked refreshing until that flight ends).
  Found Find(absl::string_view scope, absl::string_view key, absl::Time now);

  // Whether an outcome with `status` is kept: OK, or a code in
  // negative_codes.
  bool Keeps(const absl::Status& status) const;

  // The current epoch: a flight takes it when it starts, and Store refuses
  // the results of flights that started before a Drop or DropPrefix (which
  // advance it), so that a dropped value does not come back.
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }

  // Keeps `result` (REQUIRES: Keeps(result->status)) as (scope, key)'s: the
  // result of a flight that started at `started` in `epoch` and finished at
  // `now`. Refused when a Drop came since `epoch`, or when the entry holds
  // a value stored after `started` (a newer flight's). Storing the result
  // an entry already holds only marks it used.
  void Store(absl::string_view scope, absl::string_view key,
             std::shared_ptr<const FlightResult> result, absl::Time started,
             absl::Time now, uint64_t epoch);

  // A flight for (scope, key) ended without a result to keep: the entry may
  // be refreshed again. `background`: it was a refresh nobody waited on.
  void RefreshFailed(absl::string_view scope, absl::string_view key,
                     bool background);

  // The last good value of (scope, key), if it is within stale_if_error at
  // `now`: what callers get instead of a failed flight's error.
  Found StaleIfError(absl::string_view scope, absl::string_view key,
                     absl::Time now);

  // Drops (scope, key)'s entry; returns whether there was one.
  bool Drop(absl::string_view scope, absl::string_view key);
  // Drops every entry whose key starts with `prefix`, whatever its scope;
  // returns how many.
  size_t DropPrefix(absl::string_view prefix);

  Stats stats() const;

 private:
  struct Entry {
    std::string scope;
    std::string key;
    std::shared_ptr<const FlightResult> result;
    absl::Time stored;
    absl::Duration fresh_for;
    absl::Duration stale_while_revalidate;
    absl::Duration stale_if_error;
    absl::Duration execution;
    bool negative = false;
    bool refreshing = false;
    size_t bytes = 0;
    std::list<std::string>::iterator lru;
  };

  // Unambiguous: the scope's length comes first.
  static std::string EntryKey(absl::string_view scope, absl::string_view key);
  // Whether XFetch says a fresh value of this age refreshes now.
  bool RefreshEarly(const Entry& entry, absl::Duration age) const;
  void EraseLocked(absl::flat_hash_map<std::string, Entry>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CachePolicy policy_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Entry keys, most recently used first.
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;

  std::atomic<uint64_t> epoch_{0};
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> stale_hits_{0};
  std::atomic<uint64_t> misses_{0};
  std::atomic<uint64_t> refreshes_{0};
  std::atomic<uint64_t> refresh_failures_{0};
  std::atomic<uint64_t> evictions_{0};
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_RESULT_CACHE_H_
