// The Group under a fetcher's policy: max_concurrency with its queue, linger,
// scopes (key_metadata) and forwarded metadata.
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "core/group.h"
#include "gtest/gtest.h"
#include "tests/core/test_fetchers.h"

namespace singleflight {
namespace {

class GroupPolicyTest : public ::testing::Test {
 protected:
  NamedFetcher Manual(FetcherPolicy policy, std::string name = "manual") {
    auto fetcher = std::make_unique<ManualFetcher>();
    manual_ = fetcher.get();
    return Named(std::move(name), std::move(fetcher), std::move(policy));
  }

  // The timers go first (declared last): a timer's callback may still be
  // running in the Group when a test ends, and the TimerQueue's destructor
  // waits for it (Group's REQUIRES: it outlives `timers`).
  Group group_{&timers_};
  TimerQueue timers_;
  ManualFetcher* manual_ = nullptr;
};

TEST_F(GroupPolicyTest, MaxConcurrencyQueuesFlightsThatStillCoalesce) {
  FetcherPolicy policy;
  policy.max_concurrency = 1;
  policy.max_queue = 1;
  NamedFetcher fetcher = Manual(policy);
  Slot a, b1, b2, c;
  group_.Do(fetcher, "a", "", a.AsWaiter());
  group_.Do(fetcher, "b", "", b1.AsWaiter());  // Queued.
  group_.Do(fetcher, "b", "", b2.AsWaiter());  // Joins the queued flight.
  group_.Do(fetcher, "c", "", c.AsWaiter());   // Queue full.
  EXPECT_EQ(manual_->calls(), 1);
  ASSERT_EQ(c.calls, 1);
  EXPECT_EQ(c.outcome.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(group_.InFlight().size(), 2u);  // a running, b waiting.

  manual_->Take().done(std::string("A"));
  EXPECT_EQ(a.outcome.value(), "A");
  ASSERT_EQ(manual_->calls(), 2);  // b started when a finished.
  ManualFetcher::Pending b = manual_->Take();
  EXPECT_EQ(b.request.key, "b");
  b.done(std::string("B"));
  EXPECT_EQ(b1.outcome.value(), "B");
  EXPECT_EQ(b2.outcome.value(), "B");
  EXPECT_TRUE(b2.outcome.shared);
}

TEST_F(GroupPolicyTest, AbandonedQueuedFlightNeverRunsAndFreesItsPlace) {
  FetcherPolicy policy;
  policy.max_concurrency = 1;
  policy.max_queue = 4;
  NamedFetcher fetcher = Manual(policy);
  Slot a, b, c;
  group_.Do(fetcher, "a", "", a.AsWaiter());
  Group::Ticket queued = group_.Do(fetcher, "b", "", b.AsWaiter());
  group_.Do(fetcher, "c", "", c.AsWaiter());
  EXPECT_TRUE(group_.Leave(queued, absl::CancelledError("gone")));
  manual_->Take().done(std::string("A"));
  ASSERT_EQ(manual_->calls(), 2);
  EXPECT_EQ(manual_->Take().request.key, "c");  // b was skipped.
}

TEST_F(GroupPolicyTest, TimedOutExecutionFreesItsSlot) {
  FetcherPolicy policy;
  policy.max_concurrency = 1;
  policy.timeout = absl::Milliseconds(30);
  NamedFetcher fetcher = Manual(policy);
  absl::Notification a_done;
  group_.Do(fetcher, "a", "", [&](Outcome) { a_done.Notify(); });
  Slot b;
  group_.Do(fetcher, "b", "", b.AsWaiter());
  ASSERT_TRUE(a_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(manual_->WaitForCalls(2));
  // b's flight ends before the fetcher (a local) goes.
  manual_->Take();
  manual_->Take().done(std::string("B"));
  EXPECT_EQ(b.outcome.value(), "B");
}

TEST_F(GroupPolicyTest, LingerServesLateArrivalsWithoutAnExecution) {
  FetcherPolicy policy;
  policy.linger = absl::Seconds(1);
  NamedFetcher fetcher = Manual(policy);
  Slot first, late;
  group_.Do(fetcher, "k", "", first.AsWaiter());
  manual_->Take().done(std::string("v"));
  EXPECT_FALSE(first.outcome.shared);
  group_.Do(fetcher, "k", "", late.AsWaiter());
  ASSERT_EQ(late.calls, 1);
  EXPECT_EQ(late.outcome.value(), "v");
  EXPECT_TRUE(late.outcome.shared);
  EXPECT_EQ(manual_->calls(), 1);
  EXPECT_TRUE(group_.InFlight().empty());  // A lingering value is no flight.

  absl::SleepFor(absl::Milliseconds(1200));  // The linger is over.
  Slot after;
  group_.Do(fetcher, "k", "", after.AsWaiter());
  EXPECT_EQ(manual_->calls(), 2);
  EXPECT_EQ(after.calls, 0);
}

TEST_F(GroupPolicyTest, ErrorsLingerOnlyWhenAsked) {
  FetcherPolicy policy;
  policy.linger = absl::Seconds(10);
  NamedFetcher keeps_values = Manual(policy);
  ManualFetcher* values_fetcher = manual_;
  Slot failed, retry;
  group_.Do(keeps_values, "k", "", failed.AsWaiter());
  values_fetcher->Take().done(absl::UnavailableError("down"));
  group_.Do(keeps_values, "k", "", retry.AsWaiter());
  EXPECT_EQ(values_fetcher->calls(), 2);

  policy.linger_errors = true;
  NamedFetcher keeps_errors = Manual(policy, "keeps_errors");
  Slot failed2, late;
  group_.Do(keeps_errors, "k", "", failed2.AsWaiter());
  manual_->Take().done(absl::UnavailableError("down"));
  group_.Do(keeps_errors, "k", "", late.AsWaiter());
  EXPECT_EQ(manual_->calls(), 1);
  EXPECT_EQ(late.outcome.status(), absl::UnavailableError("down"));
}

TEST_F(GroupPolicyTest, ForgetDropsALingeringValue) {
  FetcherPolicy policy;
  policy.linger = absl::Seconds(10);
  NamedFetcher fetcher = Manual(policy);
  Slot first, after;
  group_.Do(fetcher, "k", "", first.AsWaiter());
  manual_->Take().done(std::string("v"));
  EXPECT_FALSE(group_.Forget("manual", "k"));  // Nothing was in progress.
  group_.Do(fetcher, "k", "", after.AsWaiter());
  EXPECT_EQ(manual_->calls(), 2);
}

TEST_F(GroupPolicyTest, ForgottenFlightDoesNotLinger) {
  FetcherPolicy policy;
  policy.linger = absl::Seconds(10);
  NamedFetcher fetcher = Manual(policy);
  Slot first, second;
  group_.Do(fetcher, "k", "", first.AsWaiter());
  group_.Forget("manual", "k");
  manual_->Take().done(std::string("old"));
  group_.Do(fetcher, "k", "", second.AsWaiter());
  EXPECT_EQ(manual_->calls(), 2);
}

TEST_F(GroupPolicyTest, DifferentScopesNeverShare) {
  NamedFetcher fetcher = Manual({});
  Slot tenant_a, tenant_b, tenant_a_again;
  group_.Do(fetcher, Call{"k", "", "tenant=a", nullptr}, tenant_a.AsWaiter());
  group_.Do(fetcher, Call{"k", "", "tenant=b", nullptr}, tenant_b.AsWaiter());
  group_.Do(fetcher, Call{"k", "", "tenant=a", nullptr},
            tenant_a_again.AsWaiter());
  EXPECT_EQ(manual_->calls(), 2);
  EXPECT_FALSE(group_.Forget("manual", "k"));  // No unscoped flight.
  EXPECT_TRUE(group_.Forget("manual", "k", "tenant=b"));
}

TEST_F(GroupPolicyTest, StartersMetadataReachesTheFetch) {
  NamedFetcher fetcher = Manual({});
  Metadata starter = {{"authorization", "Bearer a"}};
  Metadata joiner = {{"authorization", "Bearer b"}};
  Slot a, b;
  group_.Do(fetcher, Call{"k", "", "", &starter}, a.AsWaiter());
  group_.Do(fetcher, Call{"k", "", "", &joiner}, b.AsWaiter());
  EXPECT_EQ(manual_->Take().request.metadata, starter);
}

TEST_F(GroupPolicyTest, MaxFlightsAndMaxWaitersRefuseBeyondTheLimit) {
  FetcherPolicy policy;
  policy.max_flights = 2;
  policy.max_waiters = 3;
  NamedFetcher fetcher = Manual(policy);
  std::vector<Slot> slots(6);
  group_.Do(fetcher, "a", "", slots[0].AsWaiter());
  group_.Do(fetcher, "b", "", slots[1].AsWaiter());
  group_.Do(fetcher, "c", "", slots[2].AsWaiter());  // A third flight.
  ASSERT_EQ(slots[2].calls, 1);
  EXPECT_EQ(slots[2].outcome.status().code(),
            absl::StatusCode::kResourceExhausted);
  group_.Do(fetcher, "a", "", slots[3].AsWaiter());
  group_.Do(fetcher, "a", "", slots[4].AsWaiter());
  group_.Do(fetcher, "a", "", slots[5].AsWaiter());  // A fourth waiter.
  ASSERT_EQ(slots[5].calls, 1);
  EXPECT_EQ(slots[5].outcome.status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(manual_->calls(), 2);

  manual_->Take().done(std::string("A"));  // Frees a flight.
  Slot c;
  group_.Do(fetcher, "c", "", c.AsWaiter());
  EXPECT_EQ(manual_->calls(), 3);
  EXPECT_EQ(fetcher.flights.load(), 2);
}

// Counts what the Group reports.
class CountingObserver : public FlightObserver {
 public:
  void ExecutionStarted(const NamedFetcher&) override { ++started; }
  void ExecutionEnded(const NamedFetcher&, const absl::Status& status,
                      absl::Duration duration) override {
    ended.push_back(status.code());
    EXPECT_GE(duration, absl::ZeroDuration());
  }
  void Joined(const NamedFetcher&) override { ++joined; }
  void Rejected(const NamedFetcher&, const char* limit) override {
    rejected.push_back(limit);
  }

  int started = 0;
  int joined = 0;
  std::vector<std::string> rejected;
  std::vector<absl::StatusCode> ended;
};

TEST(GroupObserverTest, ReportsExecutionsJoinsAndEnds) {
  TimerQueue timers;
  CountingObserver observer;
  Group group(&timers, &observer);
  auto owned = std::make_unique<ManualFetcher>();
  ManualFetcher* manual = owned.get();
  FetcherPolicy policy;
  policy.max_concurrency = 1;
  policy.max_queue = 0;
  NamedFetcher fetcher = Named("manual", std::move(owned), policy);

  std::vector<Slot> slots(4);
  group.Do(fetcher, "k", "", slots[0].AsWaiter());
  group.Do(fetcher, "k", "", slots[1].AsWaiter());
  group.Do(fetcher, "k", "", slots[2].AsWaiter());
  group.Do(fetcher, "other", "", slots[3].AsWaiter());  // Refused: no start.
  EXPECT_EQ(observer.started, 1);
  EXPECT_EQ(observer.joined, 2);
  EXPECT_EQ(observer.rejected, (std::vector<std::string>{"max_queue"}));
  manual->Take().done(std::string("v"));
  EXPECT_EQ(observer.ended,
            (std::vector<absl::StatusCode>{absl::StatusCode::kOk}));

  Slot left;
  Group::Ticket ticket = group.Do(fetcher, "k", "", left.AsWaiter());
  group.Leave(ticket, absl::CancelledError("gone"));
  EXPECT_EQ(observer.started, 2);
  EXPECT_EQ(observer.ended.back(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace singleflight
