// ResultCache on its own (explicit times), and the Group with a cache policy.
#include "core/result_cache.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "core/group.h"
#include "fetchers/echo_fetcher.h"
#include "gtest/gtest.h"
#include "tests/core/test_fetchers.h"

namespace singleflight {
namespace {

using Kind = ResultCache::Kind;

const absl::Time kT0 = absl::FromUnixSeconds(1000000);

std::shared_ptr<const FlightResult> Value(std::string value) {
  return std::make_shared<const FlightResult>(
      FlightResult{absl::OkStatus(), std::move(value)});
}

std::shared_ptr<const FlightResult> Error(absl::Status status) {
  return std::make_shared<const FlightResult>(
      FlightResult{std::move(status), ""});
}

// Stores as a flight of `execution` finishing at `now` would.
void Put(ResultCache& cache, absl::string_view scope, absl::string_view key,
         std::shared_ptr<const FlightResult> result, absl::Time now,
         absl::Duration execution) {
  cache.Store(scope, key, std::move(result), now - execution, now,
              cache.epoch());
}

CachePolicy Policy() {
  CachePolicy policy;
  policy.ttl = absl::Seconds(5);
  policy.stale_while_revalidate = absl::Seconds(10);
  policy.stale_if_error = absl::Seconds(60);
  return policy;
}

TEST(ResultCacheTest,
     FreshThenStaleWithOneRefreshThenStaleOnlyWhileRefreshing) {
  ResultCache cache(Policy());
  EXPECT_EQ(cache.Find("", "k", kT0).kind, Kind::kMiss);
  Put(cache, "", "k", Value("v"), kT0, absl::Milliseconds(20));

  ResultCache::Found fresh = cache.Find("", "k", kT0 + absl::Seconds(4));
  EXPECT_EQ(fresh.kind, Kind::kFresh);
  EXPECT_EQ(fresh.result->value, "v");
  EXPECT_EQ(fresh.age, absl::Seconds(4));
  EXPECT_FALSE(fresh.refresh);

  // Past ttl, within stale_while_revalidate: stale at once; only the first
  // caller refreshes.
  ResultCache::Found first = cache.Find("", "k", kT0 + absl::Seconds(6));
  EXPECT_EQ(first.kind, Kind::kStale);
  EXPECT_TRUE(first.refresh);
  ResultCache::Found second = cache.Find("", "k", kT0 + absl::Seconds(7));
  EXPECT_EQ(second.kind, Kind::kStale);
  EXPECT_FALSE(second.refresh);
  // The refresh failed: the next caller may refresh again.
  cache.RefreshFailed("", "k", /*background=*/true);
  EXPECT_TRUE(cache.Find("", "k", kT0 + absl::Seconds(8)).refresh);
  cache.RefreshFailed("", "k", /*background=*/true);

  // Past swr, within stale_if_error: the first caller runs a flight (a
  // miss); while it runs, the others get the old value.
  EXPECT_EQ(cache.Find("", "k", kT0 + absl::Seconds(20)).kind, Kind::kMiss);
  EXPECT_EQ(cache.Find("", "k", kT0 + absl::Seconds(21)).kind, Kind::kStale);
  ResultCache::Found instead =
      cache.StaleIfError("", "k", kT0 + absl::Seconds(22));
  EXPECT_EQ(instead.kind, Kind::kStale);
  EXPECT_EQ(instead.result->value, "v");
  // Past stale_if_error: gone.
  EXPECT_EQ(cache.StaleIfError("", "k", kT0 + absl::Seconds(66)).kind,
            Kind::kMiss);
  EXPECT_EQ(cache.Find("", "k", kT0 + absl::Seconds(66)).kind, Kind::kMiss);
  EXPECT_EQ(cache.stats().entries, 0);

  ResultCache::Stats stats = cache.stats();
  EXPECT_EQ(stats.hits, 1);
  EXPECT_EQ(stats.refreshes, 2);
  EXPECT_EQ(stats.refresh_failures, 2);
}

TEST(ResultCacheTest, KeepsOnlyValuesAndTheNegativeCodesNamed) {
  CachePolicy policy = Policy();
  policy.negative_ttl = absl::Seconds(1);
  policy.negative_codes = {absl::StatusCode::kNotFound};
  ResultCache cache(policy);
  EXPECT_TRUE(cache.Keeps(absl::OkStatus()));
  EXPECT_TRUE(cache.Keeps(absl::NotFoundError("no")));
  EXPECT_FALSE(cache.Keeps(absl::UnavailableError("down")));
  EXPECT_FALSE(cache.Keeps(absl::DeadlineExceededError("late")));

  Put(cache, "", "missing", Error(absl::NotFoundError("no")), kT0,
      absl::ZeroDuration());
  ResultCache::Found negative =
      cache.Find("", "missing", kT0 + absl::Milliseconds(900));
  EXPECT_EQ(negative.kind, Kind::kFresh);
  EXPECT_EQ(negative.result->status.code(), absl::StatusCode::kNotFound);
  // A negative outcome is never stale, nor served instead of an error.
  EXPECT_EQ(cache.Find("", "missing", kT0 + absl::Seconds(2)).kind,
            Kind::kMiss);
  EXPECT_EQ(cache.StaleIfError("", "missing", kT0).kind, Kind::kMiss);
}

TEST(ResultCacheTest, ScopesNeverShareAndPurgeReachesEveryScope) {
  ResultCache cache(Policy());
  Put(cache, "tenant-a", "user:1", Value("a1"), kT0, absl::ZeroDuration());
  Put(cache, "tenant-b", "user:1", Value("b1"), kT0, absl::ZeroDuration());
  Put(cache, "tenant-a", "order:1", Value("o1"), kT0, absl::ZeroDuration());
  EXPECT_EQ(cache.Find("tenant-a", "user:1", kT0).result->value, "a1");
  EXPECT_EQ(cache.Find("tenant-b", "user:1", kT0).result->value, "b1");
  EXPECT_EQ(cache.Find("", "user:1", kT0).kind, Kind::kMiss);
  EXPECT_TRUE(cache.Drop("tenant-a", "order:1"));
  EXPECT_FALSE(cache.Drop("tenant-a", "order:1"));
  EXPECT_EQ(cache.DropPrefix("user:"), 2);
  EXPECT_EQ(cache.stats().entries, 0);
  EXPECT_EQ(cache.stats().bytes, 0);
}

TEST(ResultCacheTest, StaysWithinMaxBytesEvictingTheLeastRecentlyUsed) {
  CachePolicy policy = Policy();
  policy.max_bytes = 20000;
  ResultCache cache(policy);
  Put(cache, "", "big", Value(std::string(2001, 'x')), kT0,
      absl::ZeroDuration());
  EXPECT_EQ(cache.stats().entries, 0);  // Over a tenth of max_bytes.
  for (int i = 0; i < 100; ++i) {
    Put(cache, "", "k" + std::to_string(i), Value(std::string(300, 'v')), kT0,
        absl::ZeroDuration());
    // k0 stays the most recently used.
    cache.Find("", "k0", kT0);
    EXPECT_LE(cache.stats().bytes, policy.max_bytes);
  }
  EXPECT_EQ(cache.Find("", "k0", kT0).kind, Kind::kFresh);
  EXPECT_EQ(cache.Find("", "k1", kT0).kind, Kind::kMiss);
  EXPECT_EQ(cache.Find("", "k99", kT0).kind, Kind::kFresh);
  EXPECT_GT(cache.stats().evictions, 60);
}

TEST(ResultCacheTest, CacheControlOverridesThePolicyWhenRespected) {
  CachePolicy policy = Policy();
  policy.respect_cache_control = true;
  ResultCache cache(policy);
  auto with = [](CacheDirectives directives) {
    return std::make_shared<const FlightResult>(
        FlightResult{absl::OkStatus(), "v", directives});
  };
  CacheDirectives short_lived;
  short_lived.max_age = absl::Seconds(1);
  short_lived.stale_while_revalidate = absl::ZeroDuration();
  Put(cache, "", "short", with(short_lived), kT0, absl::ZeroDuration());
  EXPECT_EQ(cache.Find("", "short", kT0 + absl::Seconds(2)).kind, Kind::kMiss);
  CacheDirectives no_store;
  no_store.no_store = true;
  Put(cache, "", "private", with(no_store), kT0, absl::ZeroDuration());
  EXPECT_EQ(cache.Find("", "private", kT0).kind, Kind::kMiss);

  // Not respected: the policy's ttl.
  ResultCache ignoring(Policy());
  Put(ignoring, "", "short", with(short_lived), kT0, absl::ZeroDuration());
  EXPECT_EQ(ignoring.Find("", "short", kT0 + absl::Seconds(2)).kind,
            Kind::kFresh);
}

TEST(ResultCacheTest, ADroppedOrOlderValueDoesNotComeBack) {
  ResultCache cache(Policy());
  // A flight starts, its key is forgotten, then it finishes: not kept.
  uint64_t epoch = cache.epoch();
  cache.Drop("", "k");
  cache.Store("", "k", Value("old"), kT0, kT0 + absl::Seconds(1), epoch);
  EXPECT_EQ(cache.Find("", "k", kT0 + absl::Seconds(1)).kind, Kind::kMiss);
  // A flight that started before the value held was stored does not
  // replace it.
  Put(cache, "", "k", Value("new"), kT0 + absl::Seconds(2),
      absl::Milliseconds(10));
  cache.Store("", "k", Value("older"), kT0, kT0 + absl::Seconds(3),
              cache.epoch());
  EXPECT_EQ(cache.Find("", "k", kT0 + absl::Seconds(3)).result->value, "new");
}

TEST(ResultCacheTest, AValueNeverFreshIsKeptForItsStaleWindows) {
  CachePolicy policy = Policy();
  policy.respect_cache_control = true;
  ResultCache cache(policy);
  CacheDirectives no_cache;
  no_cache.max_age = absl::ZeroDuration();
  Put(cache, "", "k",
      std::make_shared<const FlightResult>(
          FlightResult{absl::OkStatus(), "v", no_cache}),
      kT0, absl::ZeroDuration());
  ResultCache::Found found = cache.Find("", "k", kT0 + absl::Seconds(1));
  EXPECT_EQ(found.kind, Kind::kStale);
  EXPECT_TRUE(found.refresh);
}

TEST(ResultCacheTest, EarlyRefreshComesCloserToTheTtlAndOnlyOnce) {
  CachePolicy policy = Policy();
  policy.early_refresh = true;
  ResultCache cache(policy);
  // An execution as long as the ttl: early refresh is near certain at the
  // end of it, rare at its start.
  int early = 0;
  for (int i = 0; i < 200; ++i) {
    cache.Drop("", "k");
    Put(cache, "", "k", Value(std::to_string(i)), kT0, absl::Seconds(5));
    if (cache.Find("", "k", kT0 + absl::Milliseconds(4990)).refresh) ++early;
  }
  EXPECT_GT(early, 190);
  early = 0;
  for (int i = 0; i < 200; ++i) {
    cache.Drop("", "k");
    Put(cache, "", "k", Value("again" + std::to_string(i)), kT0,
        absl::Milliseconds(1));
    if (cache.Find("", "k", kT0).refresh) ++early;
  }
  EXPECT_EQ(early, 0);
  // While one refresh runs, no other starts.
  cache.Drop("", "k");
  Put(cache, "", "k", Value("last"), kT0, absl::Seconds(5));
  int refreshes = 0;
  for (int i = 0; i < 100; ++i) {
    if (cache.Find("", "k", kT0 + absl::Milliseconds(4999)).refresh) {
      ++refreshes;
    }
  }
  EXPECT_EQ(refreshes, 1);
}

// Waits (bounded) until `answered` reaches `n`.
bool PollUntilAnswered(const std::atomic<int>& answered, int n) {
  absl::Time end = absl::Now() + absl::Seconds(30);
  while (answered.load() < n) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

class GroupCacheTest : public ::testing::Test {
 protected:
  NamedFetcher Manual(CachePolicy cache) {
    auto fetcher = std::make_unique<ManualFetcher>();
    manual_ = fetcher.get();
    FetcherPolicy policy;
    policy.cache = std::move(cache);
    return Named("cached", std::move(fetcher), std::move(policy));
  }

  Group group_{&timers_};
  TimerQueue timers_;
  ManualFetcher* manual_ = nullptr;
};

TEST_F(GroupCacheTest, AFreshValueAnswersWithoutAFlight) {
  NamedFetcher fetcher = Manual(Policy());
  Slot first, second;
  group_.Do(fetcher, "k", "", first.AsWaiter());
  manual_->Take().done(std::string("v"));
  EXPECT_EQ(first.outcome.value(), "v");
  EXPECT_EQ(first.outcome.age, absl::ZeroDuration());
  group_.Do(fetcher, "k", "", second.AsWaiter());
  ASSERT_EQ(second.calls, 1);
  EXPECT_EQ(second.outcome.value(), "v");
  EXPECT_TRUE(second.outcome.shared);
  EXPECT_FALSE(second.outcome.stale);
  EXPECT_EQ(manual_->calls(), 1);
  // Forget drops the value too.
  group_.Forget(fetcher, "k", "");
  Slot third;
  group_.Do(fetcher, "k", "", third.AsWaiter());
  EXPECT_EQ(manual_->calls(), 2);
  manual_->Take().done(std::string("v2"));
  EXPECT_EQ(third.outcome.value(), "v2");
}

TEST_F(GroupCacheTest, AStaleValueAnswersAtOnceAndOneRefreshRuns) {
  CachePolicy policy = Policy();
  policy.ttl = absl::Milliseconds(50);
  NamedFetcher fetcher = Manual(policy);
  Slot first;
  group_.Do(fetcher, "k", "", first.AsWaiter());
  manual_->Take().done(std::string("old"));
  absl::SleepFor(absl::Milliseconds(80));
  Slot a, b;
  group_.Do(fetcher, "k", "", a.AsWaiter());
  group_.Do(fetcher, "k", "", b.AsWaiter());
  ASSERT_EQ(a.calls, 1);
  ASSERT_EQ(b.calls, 1);
  EXPECT_EQ(a.outcome.value(), "old");
  EXPECT_TRUE(a.outcome.stale);
  EXPECT_GE(a.outcome.age, absl::Milliseconds(80));
  EXPECT_EQ(manual_->calls(), 2);  // One refresh for both.
  manual_->Take().done(std::string("new"));
  Slot c;
  group_.Do(fetcher, "k", "", c.AsWaiter());
  EXPECT_EQ(c.outcome.value(), "new");
  EXPECT_FALSE(c.outcome.stale);
  EXPECT_EQ(manual_->calls(), 2);
}

TEST_F(GroupCacheTest, AFailedFlightAnswersWithTheLastGoodValue) {
  CachePolicy policy = Policy();
  policy.ttl = absl::Milliseconds(20);
  policy.stale_while_revalidate = absl::ZeroDuration();
  NamedFetcher fetcher = Manual(policy);
  Slot first;
  group_.Do(fetcher, "k", "", first.AsWaiter());
  manual_->Take().done(std::string("good"));
  absl::SleepFor(absl::Milliseconds(40));
  Slot starter, meanwhile;
  group_.Do(fetcher, "k", "", starter.AsWaiter());
  EXPECT_EQ(starter.calls, 0);  // It runs the flight.
  group_.Do(fetcher, "k", "", meanwhile.AsWaiter());
  ASSERT_EQ(meanwhile.calls, 1);  // The others have the old value.
  EXPECT_TRUE(meanwhile.outcome.stale);
  manual_->Take().done(absl::UnavailableError("origin down"));
  ASSERT_EQ(starter.calls, 1);
  EXPECT_TRUE(starter.outcome.status().ok());
  EXPECT_EQ(starter.outcome.value(), "good");
  EXPECT_TRUE(starter.outcome.stale);
}

TEST_F(GroupCacheTest, AHangingBackendIsHiddenByTheLastGoodValueToo) {
  CachePolicy cache = Policy();
  cache.ttl = absl::Milliseconds(20);
  cache.stale_while_revalidate = absl::ZeroDuration();
  auto manual = std::make_unique<ManualFetcher>();
  ManualFetcher* backend = manual.get();
  FetcherPolicy policy;
  policy.cache = cache;
  // Long enough that the first execution, answered at once, never times
  // out first, even under a sanitizer on a busy machine.
  policy.timeout = absl::Milliseconds(300);
  NamedFetcher fetcher = Named("hanging", std::move(manual), policy);
  Slot first;
  group_.Do(fetcher, "k", "", first.AsWaiter());
  backend->Take().done(std::string("good"));
  ASSERT_EQ(first.outcome.value(), "good");
  absl::SleepFor(absl::Milliseconds(40));
  absl::Notification told;
  Outcome outcome;
  // This flight's backend never answers: it times out.
  group_.Do(fetcher, "k", "", [&](Outcome o) {
    outcome = std::move(o);
    told.Notify();
  });
  ASSERT_TRUE(told.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(outcome.status().ok()) << outcome.status();
  EXPECT_EQ(outcome.value(), "good");
  EXPECT_TRUE(outcome.stale);
  backend->Take();
}

TEST_F(GroupCacheTest, ConcurrentCallersRefreshesAndPurgesAgree) {
  // For ThreadSanitizer: callers on several threads, values that expire
  // within the run, refreshes answered on the timer thread, early refresh,
  // evictions and purges, all at once.
  CachePolicy cache;
  cache.ttl = absl::Milliseconds(2);
  cache.stale_while_revalidate = absl::Milliseconds(2);
  cache.stale_if_error = absl::Milliseconds(5);
  cache.early_refresh = true;
  cache.max_bytes = 4000;
  FetcherPolicy policy;
  policy.cache = cache;
  NamedFetcher fetcher = Named(
      "echo", std::make_unique<EchoFetcher>(&timers_, absl::Microseconds(300)),
      policy);
  std::atomic<int> answered{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 1500; ++i) {
        std::string key = "k" + std::to_string((i * 7 + t) % 30);
        group_.Do(fetcher, Call{key, key, t % 2 == 0 ? "a" : "b", nullptr},
                  [&answered, key](Outcome outcome) {
                    EXPECT_TRUE(outcome.status().ok());
                    EXPECT_EQ(outcome.value(), key);
                    answered.fetch_add(1);
                  });
        if (i % 500 == 0) fetcher.cache->DropPrefix("k1");
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  ASSERT_TRUE(PollUntilAnswered(answered, 4 * 1500));
  EXPECT_LE(fetcher.cache->stats().bytes, cache.max_bytes);
}

TEST_F(GroupCacheTest, TheTiersOwnErrorsAreNeverKept) {
  CachePolicy policy = Policy();
  policy.negative_ttl = absl::Seconds(30);
  policy.negative_codes = {absl::StatusCode::kNotFound,
                           absl::StatusCode::kCancelled};
  NamedFetcher fetcher = Manual(policy);
  Slot leaver, next;
  // A caller who leaves gets CANCELLED from the tier, not the fetcher.
  Group::Ticket ticket = group_.Do(fetcher, "k", "", leaver.AsWaiter());
  ASSERT_TRUE(group_.Leave(ticket, absl::CancelledError("gone")));
  group_.Do(fetcher, "k", "", next.AsWaiter());
  EXPECT_EQ(next.calls, 0);  // Not answered from the cache: a new flight.
  EXPECT_EQ(manual_->calls(), 2);
  manual_->Take();
  manual_->Take().done(std::string("v"));
  EXPECT_EQ(next.outcome.value(), "v");
}

TEST_F(GroupCacheTest, LingerIsOffWithACache) {
  CachePolicy cache = Policy();
  cache.ttl = absl::Milliseconds(20);
  auto manual = std::make_unique<ManualFetcher>();
  ManualFetcher* backend = manual.get();
  FetcherPolicy policy;
  policy.cache = cache;
  policy.linger = absl::Seconds(30);
  NamedFetcher fetcher = Named("lingering", std::move(manual), policy);
  Slot first;
  group_.Do(fetcher, "k", "", first.AsWaiter());
  backend->Take().done(std::string("old"));
  absl::SleepFor(absl::Milliseconds(40));
  // Stale: the refresh is a real execution, not the lingering value.
  Slot stale;
  group_.Do(fetcher, "k", "", stale.AsWaiter());
  EXPECT_TRUE(stale.outcome.stale);
  ASSERT_EQ(backend->calls(), 2);
  backend->Take().done(std::string("new"));
  Slot after;
  group_.Do(fetcher, "k", "", after.AsWaiter());
  EXPECT_EQ(after.outcome.value(), "new");
}

TEST_F(GroupCacheTest, WithoutAPolicyNothingIsKept) {
  NamedFetcher fetcher = Manual(CachePolicy());
  EXPECT_EQ(fetcher.cache, nullptr);
  Slot first, second;
  group_.Do(fetcher, "k", "", first.AsWaiter());
  manual_->Take().done(std::string("v"));
  group_.Do(fetcher, "k", "", second.AsWaiter());
  EXPECT_EQ(manual_->calls(), 2);
  manual_->Take().done(std::string("v"));
}

}  // namespace
}  // namespace singleflight
