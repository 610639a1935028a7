// Go's singleflight_test.go, ported to the asynchronous Group, plus what the
// Group adds: waiters that leave, cancellation of abandoned flights, timeouts.
#include "core/group.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "core/blocking_fetcher.h"
#include "core/thread_pool.h"
#include "fetchers/echo_fetcher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/test_fetchers.h"

namespace singleflight {
namespace {

using ::testing::HasSubstr;

// Records the Outcome a waiter receives, and how many it received.
class Recorder {
 public:
  Waiter AsWaiter() {
    return [this](Outcome outcome) {
      absl::MutexLock lock(&mu_);
      outcome_ = std::move(outcome);
      ++calls_;
    };
  }
  bool Called() {
    absl::MutexLock lock(&mu_);
    return calls_ > 0;
  }
  bool WaitCalled() {
    absl::MutexLock lock(&mu_);
    auto called = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return calls_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&called), absl::Seconds(10));
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  Outcome outcome() {
    absl::MutexLock lock(&mu_);
    return outcome_;
  }

 private:
  absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  Outcome outcome_ ABSL_GUARDED_BY(mu_);
};

class GroupTest : public ::testing::Test {
 protected:
  NamedFetcher Manual(std::string name = "manual", FetcherPolicy policy = {}) {
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

// Go: TestDo.
TEST_F(GroupTest, DoReturnsTheValue) {
  NamedFetcher echo = Named(
      "echo", std::make_unique<EchoFetcher>(&timers_, absl::ZeroDuration()));
  Outcome outcome = group_.DoSync(echo, "key", "bar");
  ASSERT_TRUE(outcome.status().ok()) << outcome.status();
  EXPECT_EQ(outcome.value(), "bar");
  EXPECT_FALSE(outcome.shared);
}

// Go: TestDoErr.
TEST_F(GroupTest, DoReturnsTheError) {
  NamedFetcher manual = Manual();
  Recorder recorder;
  group_.Do(manual, "key", "", recorder.AsWaiter());
  manual_->Take().done(absl::UnavailableError("some error"));
  ASSERT_TRUE(recorder.Called());
  EXPECT_EQ(recorder.outcome().status(), absl::UnavailableError("some error"));
  EXPECT_EQ(recorder.outcome().value(), "");
}

// Go: TestDoDupSuppress. Ten callers, one execution, one shared value.
TEST_F(GroupTest, DuplicateCallersShareOneExecution) {
  NamedFetcher manual = Manual();
  std::vector<Recorder> recorders(10);
  for (Recorder& recorder : recorders) {
    group_.Do(manual, "key", "", recorder.AsWaiter());
  }
  EXPECT_EQ(manual_->calls(), 1);
  for (Recorder& recorder : recorders) EXPECT_FALSE(recorder.Called());
  manual_->Take().done(std::string("bar"));
  for (Recorder& recorder : recorders) {
    ASSERT_EQ(recorder.calls(), 1);
    EXPECT_EQ(recorder.outcome().value(), "bar");
    EXPECT_TRUE(recorder.outcome().shared);
  }
  EXPECT_EQ(manual_->calls(), 1);
}

// Go: TestDoDupSuppress with real concurrency: callers on many threads.
TEST_F(GroupTest, ConcurrentCallersShareOneExecution) {
  NamedFetcher manual = Manual();
  constexpr int kCallers = 32;
  std::vector<Recorder> recorders(kCallers);
  std::vector<std::thread> threads;
  for (Recorder& recorder : recorders) {
    threads.emplace_back(
        [&] { group_.Do(manual, "key", "", recorder.AsWaiter()); });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(manual_->calls(), 1);
  manual_->Take().done(std::string("v"));
  for (Recorder& recorder : recorders) {
    EXPECT_EQ(recorder.calls(), 1);
    EXPECT_EQ(recorder.outcome().value(), "v");
  }
}

TEST_F(GroupTest, StarterIsSharedOnlyIfSomeoneJoined) {
  NamedFetcher manual = Manual();
  Recorder alone;
  group_.Do(manual, "a", "", alone.AsWaiter());
  manual_->Take().done(std::string("1"));
  EXPECT_FALSE(alone.outcome().shared);

  Recorder starter, joiner;
  group_.Do(manual, "b", "", starter.AsWaiter());
  group_.Do(manual, "b", "", joiner.AsWaiter());
  manual_->Take().done(std::string("2"));
  EXPECT_TRUE(starter.outcome().shared);
  EXPECT_TRUE(joiner.outcome().shared);
}

TEST_F(GroupTest, OnlyTheStartersPayloadIsUsed) {
  NamedFetcher manual = Manual();
  Recorder first, second;
  group_.Do(manual, "key", "first", first.AsWaiter());
  group_.Do(manual, "key", "second", second.AsWaiter());
  ManualFetcher::Pending pending = manual_->Take();
  EXPECT_EQ(pending.request.key, "key");
  EXPECT_EQ(pending.request.payload, "first");
}

TEST_F(GroupTest, AFinishedFlightIsGone) {
  NamedFetcher manual = Manual();
  Recorder first, second;
  group_.Do(manual, "key", "", first.AsWaiter());
  manual_->Take().done(std::string("1"));
  group_.Do(manual, "key", "", second.AsWaiter());
  EXPECT_EQ(manual_->calls(), 2);
  manual_->Take().done(std::string("2"));
  EXPECT_EQ(second.outcome().value(), "2");
  EXPECT_FALSE(second.outcome().shared);
}

TEST_F(GroupTest, FetchersWithDifferentNamesDoNotShare) {
  NamedFetcher a = Manual("a");
  ManualFetcher* manual_a = manual_;
  NamedFetcher b = Manual("b");
  ManualFetcher* manual_b = manual_;
  Recorder ra, rb;
  group_.Do(a, "key", "", ra.AsWaiter());
  group_.Do(b, "key", "", rb.AsWaiter());
  EXPECT_EQ(manual_a->calls(), 1);
  EXPECT_EQ(manual_b->calls(), 1);
}

// Go: TestForget. The forgotten flight goes on; the next caller starts a new
// flight; the forgotten one, finishing, must not remove the newer one.
TEST_F(GroupTest, ForgetTimeline) {
  NamedFetcher manual = Manual();
  Recorder first;
  group_.Do(manual, "key", "", first.AsWaiter());
  EXPECT_TRUE(group_.Forget("manual", "key"));

  Recorder second;
  group_.Do(manual, "key", "", second.AsWaiter());
  EXPECT_EQ(manual_->calls(), 2);

  manual_->Take().done(std::string("1"));  // The forgotten flight finishes.
  EXPECT_EQ(first.outcome().value(), "1");

  Recorder third;  // Joins the second flight, which still owns the key.
  group_.Do(manual, "key", "", third.AsWaiter());
  EXPECT_EQ(manual_->calls(), 2);

  manual_->Take().done(std::string("2"));
  EXPECT_EQ(second.outcome().value(), "2");
  EXPECT_EQ(third.outcome().value(), "2");
  EXPECT_TRUE(third.outcome().shared);
}

TEST_F(GroupTest, ForgottenFlightStillAnswersItsWaiters) {
  NamedFetcher manual = Manual();
  Recorder a, b;
  group_.Do(manual, "key", "", a.AsWaiter());
  group_.Do(manual, "key", "", b.AsWaiter());
  EXPECT_TRUE(group_.Forget("manual", "key"));
  EXPECT_FALSE(group_.Forget("manual", "key"));  // Already forgotten.
  manual_->Take().done(std::string("v"));
  EXPECT_EQ(a.outcome().value(), "v");
  EXPECT_EQ(b.outcome().value(), "v");
}

TEST_F(GroupTest, ForgetOfAnIdleKeyReturnsFalse) {
  EXPECT_FALSE(group_.Forget("manual", "nothing"));
}

// Go: TestDoChan. Here every waiter is a callback; it runs on the thread
// that completes the flight, not on the caller's.
TEST_F(GroupTest, WaiterRunsOnTheCompletingThread) {
  NamedFetcher manual = Manual();
  Recorder recorder;
  group_.Do(manual, "key", "", recorder.AsWaiter());
  std::thread completer([&] { manual_->Take().done(std::string("bar")); });
  completer.join();
  EXPECT_EQ(recorder.outcome().value(), "bar");
}

// Go: TestPanicDo / TestPanicDoChan. A throwing fetcher fails the flight with
// INTERNAL for every waiter; nothing hangs; the next call runs again.
TEST_F(GroupTest, ThrowingFetcherFailsEveryWaiterWithInternal) {
  NamedFetcher thrower = Named("thrower", std::make_unique<ThrowingFetcher>());
  Outcome outcome = group_.DoSync(thrower, "key", "");
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(outcome.status().message(), "fetcher exploded on key");
  EXPECT_TRUE(group_.InFlight().empty());
  EXPECT_EQ(group_.DoSync(thrower, "key", "").status().code(),
            absl::StatusCode::kInternal);
}

TEST_F(GroupTest, ThrowOnAPoolThreadFailsEveryWaiter) {
  absl::Notification release;
  ThreadPool pool(2, 16);
  NamedFetcher blocking =
      Named("blocking",
            std::make_unique<BlockingFetcher>(
                &pool, [&](const FetchRequest&) -> absl::StatusOr<std::string> {
                  release.WaitForNotification();
                  throw std::logic_error("boom");
                }));
  std::vector<Recorder> recorders(5);
  for (Recorder& recorder : recorders) {
    group_.Do(blocking, "key", "", recorder.AsWaiter());
  }
  release.Notify();
  for (Recorder& recorder : recorders) {
    ASSERT_TRUE(recorder.WaitCalled());
    EXPECT_EQ(recorder.outcome().status(), absl::InternalError("boom"));
  }
}

TEST_F(GroupTest, ImmediateResultIsDeliveredInsideDo) {
  NamedFetcher echo = Named(
      "echo", std::make_unique<EchoFetcher>(&timers_, absl::ZeroDuration()));
  Recorder recorder;
  group_.Do(echo, "key", "", recorder.AsWaiter());
  EXPECT_EQ(recorder.calls(), 1);
  EXPECT_EQ(recorder.outcome().value(), "key");
}

// Beyond Go, 7: a waiter leaves at once; the others are not disturbed.
TEST_F(GroupTest, LeavingWaiterGetsItsStatusAtOnce) {
  NamedFetcher manual = Manual();
  Recorder stays, leaves;
  group_.Do(manual, "key", "", stays.AsWaiter());
  Group::Ticket ticket = group_.Do(manual, "key", "", leaves.AsWaiter());
  EXPECT_TRUE(group_.Leave(ticket, absl::DeadlineExceededError("late")));
  EXPECT_EQ(leaves.outcome().status(), absl::DeadlineExceededError("late"));
  EXPECT_FALSE(stays.Called());
  EXPECT_FALSE(group_.Leave(ticket, absl::CancelledError("again")));

  ManualFetcher::Pending pending = manual_->Take();
  EXPECT_FALSE(pending.request.cancellation->IsCancelled());
  pending.done(std::string("v"));
  EXPECT_EQ(stays.outcome().value(), "v");
  EXPECT_EQ(leaves.calls(), 1);
}

TEST_F(GroupTest, LeaveAfterTheOutcomeDoesNothing) {
  NamedFetcher manual = Manual();
  Recorder recorder;
  Group::Ticket ticket = group_.Do(manual, "key", "", recorder.AsWaiter());
  manual_->Take().done(std::string("v"));
  EXPECT_FALSE(group_.Leave(ticket, absl::CancelledError("late")));
  EXPECT_EQ(recorder.calls(), 1);
  EXPECT_TRUE(recorder.outcome().status().ok());
  EXPECT_FALSE(group_.Leave(Group::Ticket(), absl::CancelledError("empty")));
}

// Beyond Go, 8: when the last waiter leaves, the fetcher is told and the key
// is free; the abandoned execution's late result goes nowhere.
TEST_F(GroupTest, LastWaiterLeavingCancelsTheFlight) {
  NamedFetcher manual = Manual();
  Recorder a, b;
  Group::Ticket ta = group_.Do(manual, "key", "", a.AsWaiter());
  Group::Ticket tb = group_.Do(manual, "key", "", b.AsWaiter());
  ManualFetcher::Pending first = manual_->Take();
  std::atomic<bool> told{false};
  first.request.cancellation->OnCancel([&] { told = true; });

  group_.Leave(ta, absl::CancelledError("a left"));
  EXPECT_FALSE(told);
  group_.Leave(tb, absl::CancelledError("b left"));
  EXPECT_TRUE(told);
  EXPECT_TRUE(group_.InFlight().empty());

  Recorder c;
  group_.Do(manual, "key", "", c.AsWaiter());
  EXPECT_EQ(manual_->calls(), 2);
  first.done(std::string("stale"));  // Must not reach the new flight.
  EXPECT_FALSE(c.Called());
  manual_->Take().done(std::string("fresh"));
  EXPECT_EQ(c.outcome().value(), "fresh");
  EXPECT_EQ(a.calls(), 1);
  EXPECT_EQ(b.calls(), 1);
}

TEST_F(GroupTest, LastWaiterLeavingAForgottenFlightKeepsTheNewerOne) {
  NamedFetcher manual = Manual();
  Recorder old_waiter, new_waiter;
  Group::Ticket old_ticket =
      group_.Do(manual, "key", "", old_waiter.AsWaiter());
  group_.Forget("manual", "key");
  group_.Do(manual, "key", "", new_waiter.AsWaiter());
  group_.Leave(old_ticket, absl::CancelledError("gone"));
  std::vector<FlightInfo> flights = group_.InFlight();
  ASSERT_EQ(flights.size(), 1u);
  EXPECT_FALSE(flights[0].forgotten);
  EXPECT_EQ(flights[0].waiters, 1u);
}

// Beyond Go, 9: every execution has a timeout.
TEST_F(GroupTest, ExecutionTimeoutFailsEveryWaiterAndCancelsTheFetch) {
  FetcherPolicy policy;
  policy.timeout = absl::Milliseconds(50);
  NamedFetcher manual = Manual("manual", policy);
  Recorder a, b;
  group_.Do(manual, "key", "", a.AsWaiter());
  group_.Do(manual, "key", "", b.AsWaiter());
  ManualFetcher::Pending pending = manual_->Take();
  ASSERT_TRUE(a.WaitCalled());
  ASSERT_TRUE(b.WaitCalled());
  EXPECT_EQ(a.outcome().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(a.outcome().status().message(), HasSubstr("timed out"));
  EXPECT_EQ(b.outcome().status(), a.outcome().status());
  EXPECT_TRUE(pending.request.cancellation->IsCancelled());
  EXPECT_TRUE(group_.InFlight().empty());
  pending.done(std::string("too late"));
  EXPECT_EQ(a.calls(), 1);
}

TEST_F(GroupTest, InFlightDescribesEachFlight) {
  NamedFetcher manual = Manual();
  std::vector<Recorder> recorders(3);
  group_.Do(manual, "a", "", recorders[0].AsWaiter());
  group_.Do(manual, "a", "", recorders[1].AsWaiter());
  group_.Do(manual, "b", "", recorders[2].AsWaiter());
  group_.Forget("manual", "b");
  std::vector<FlightInfo> flights = group_.InFlight();
  ASSERT_EQ(flights.size(), 2u);
  std::sort(
      flights.begin(), flights.end(),
      [](const FlightInfo& x, const FlightInfo& y) { return x.key < y.key; });
  EXPECT_EQ(flights[0].fetcher, "manual");
  EXPECT_EQ(flights[0].key, "a");
  EXPECT_EQ(flights[0].waiters, 2u);
  EXPECT_FALSE(flights[0].forgotten);
  EXPECT_GE(flights[0].age, absl::ZeroDuration());
  EXPECT_EQ(flights[1].key, "b");
  EXPECT_EQ(flights[1].waiters, 1u);
  EXPECT_TRUE(flights[1].forgotten);
}

TEST_F(GroupTest, FailAllEndsEveryFlightAndCancelsItsFetch) {
  NamedFetcher manual = Manual();
  Recorder a, b, c;
  group_.Do(manual, "a", "", a.AsWaiter());
  group_.Do(manual, "a", "", b.AsWaiter());
  group_.Do(manual, "b", "", c.AsWaiter());
  group_.Forget("manual", "b");
  ManualFetcher::Pending first = manual_->Take();
  group_.FailAll(absl::UnavailableError("stopping"));
  for (Recorder* recorder : {&a, &b, &c}) {
    ASSERT_EQ(recorder->calls(), 1);
    EXPECT_EQ(recorder->outcome().status(), absl::UnavailableError("stopping"));
  }
  EXPECT_TRUE(first.request.cancellation->IsCancelled());
  EXPECT_TRUE(group_.InFlight().empty());
}

TEST_F(GroupTest, ValueIsSharedWithoutCopies) {
  NamedFetcher manual = Manual();
  Recorder a, b;
  group_.Do(manual, "key", "", a.AsWaiter());
  group_.Do(manual, "key", "", b.AsWaiter());
  manual_->Take().done(std::string(1 << 20, 'x'));
  EXPECT_EQ(a.outcome().result.get(), b.outcome().result.get());
}

}  // namespace
}  // namespace singleflight
