// Regression tests of the Group's flight life cycle (issue 9, defects 4-8):
// queue places, slot hand-over order and depth, what lingers, and the window
// between taking a slot and calling the fetcher.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "core/group.h"
#include "gtest/gtest.h"
#include "tests/core/test_fetchers.h"

namespace singleflight {
namespace {

// Holds the fetch of key "hold" until the test completes it; answers every
// other key at once, recording how deep in the stack each Fetch ran and
// whether the flights before it had told their waiters.
class HoldOneFetcher : public Fetcher {
 public:
  void Fetch(FetchRequest request, FetchCallback done) override {
    char marker;
    auto depth = reinterpret_cast<uintptr_t>(&marker);
    lowest_frame = std::min(lowest_frame, depth);
    highest_frame = std::max(highest_frame, depth);
    ++calls;
    if (request.key == "hold") {
      held = std::move(done);
      return;
    }
    if (before_fetch) before_fetch(request.key);
    done(request.key);
  }

  std::atomic<int> calls{0};
  FetchCallback held;
  uintptr_t lowest_frame = UINTPTR_MAX;
  uintptr_t highest_frame = 0;
  std::function<void(const std::string&)> before_fetch;
};

FetcherPolicy OneAtATime(int max_queue) {
  FetcherPolicy policy;
  policy.max_concurrency = 1;
  policy.max_queue = max_queue;
  return policy;
}

// Defect 4: a queued flight whose waiters all left gave up its queue place
// only when a slot freed; meanwhile new keys were refused.
TEST(GroupHardeningTest, AbandonedQueuedFlightGivesUpItsPlaceAtOnce) {
  TimerQueue timers;
  Group group(&timers);
  auto owned = std::make_unique<ManualFetcher>();
  ManualFetcher* manual = owned.get();
  NamedFetcher fetcher = Named("manual", std::move(owned), OneAtATime(1));
  Slot a, b, c;
  group.Do(fetcher, "a", "", a.AsWaiter());  // Runs, and hangs.
  Group::Ticket queued = group.Do(fetcher, "b", "", b.AsWaiter());
  EXPECT_EQ(fetcher.limiter->queued(), 1);
  ASSERT_TRUE(group.Leave(queued, absl::CancelledError("gone")));
  EXPECT_EQ(fetcher.limiter->queued(), 0);
  group.Do(fetcher, "c", "", c.AsWaiter());  // Takes b's place.
  EXPECT_EQ(c.calls, 0) << c.outcome.status();
  EXPECT_EQ(fetcher.limiter->queued(), 1);
  manual->Take().done(std::string("A"));
  ASSERT_EQ(manual->calls(), 2);
  EXPECT_EQ(manual->Take().request.key, "c");
}

// Defect 5: handing the slot on ran the next fetch before this flight's
// waiters were told, and recursed once per queued flight.
TEST(GroupHardeningTest, SlotGoesOnAfterTheWaitersInConstantStackDepth) {
  constexpr int kQueued = 5000;
  TimerQueue timers;
  Group group(&timers);
  auto owned = std::make_unique<HoldOneFetcher>();
  HoldOneFetcher* fetcher_impl = owned.get();
  NamedFetcher fetcher = Named("hold", std::move(owned), OneAtATime(kQueued));
  Slot held;
  group.Do(fetcher, "hold", "", held.AsWaiter());
  std::vector<Slot> slots(kQueued);
  for (int i = 0; i < kQueued; ++i) {
    group.Do(fetcher, "k" + std::to_string(i), "", slots[i].AsWaiter());
  }
  ASSERT_EQ(fetcher.limiter->queued(), kQueued);
  int told_before_next_fetch = 0;
  fetcher_impl->before_fetch = [&](const std::string& key) {
    int index = std::stoi(key.substr(1));
    bool previous_told =
        index == 0 ? held.calls == 1 : slots[index - 1].calls == 1;
    if (previous_told) ++told_before_next_fetch;
  };
  fetcher_impl->lowest_frame = UINTPTR_MAX;
  fetcher_impl->highest_frame = 0;
  std::move(fetcher_impl->held)(std::string("H"));
  EXPECT_EQ(fetcher_impl->calls.load(), kQueued + 1);
  for (const Slot& slot : slots) ASSERT_EQ(slot.calls, 1);
  EXPECT_EQ(told_before_next_fetch, kQueued);
  // Recursing once per flight would take hundreds of bytes each.
  EXPECT_LT(fetcher_impl->highest_frame - fetcher_impl->lowest_frame, 16384u);
  EXPECT_EQ(fetcher.limiter->running(), 0);
}

// Defect 6: a local refusal (queue full) or FailAll's UNAVAILABLE lingered
// as if the backend had returned it.
TEST(GroupHardeningTest, OnlyTheFetchersOwnResultsLinger) {
  TimerQueue timers;
  Group group(&timers);
  auto owned = std::make_unique<ManualFetcher>();
  ManualFetcher* manual = owned.get();
  FetcherPolicy policy = OneAtATime(0);
  policy.linger = absl::Hours(1);
  policy.linger_errors = true;
  NamedFetcher fetcher = Named("manual", std::move(owned), policy);
  Slot a, refused, again;
  group.Do(fetcher, "a", "", a.AsWaiter());
  group.Do(fetcher, "b", "", refused.AsWaiter());
  ASSERT_EQ(refused.calls, 1);
  EXPECT_EQ(refused.outcome.status().code(),
            absl::StatusCode::kResourceExhausted);
  manual->Take().done(std::string("A"));
  group.Do(fetcher, "b", "", again.AsWaiter());  // Not the lingering refusal.
  EXPECT_EQ(again.calls, 0);
  EXPECT_EQ(manual->calls(), 2);

  group.FailAll(absl::UnavailableError("stopping"));
  ASSERT_EQ(again.calls, 1);
  EXPECT_EQ(again.outcome.status().code(), absl::StatusCode::kUnavailable);
  Slot after;
  group.Do(fetcher, "b", "", after.AsWaiter());  // Not the lingering failure.
  EXPECT_EQ(after.calls, 0);
  EXPECT_EQ(manual->calls(), 3);
}

// Blocks inside Fetch until released, counting fetches being called at once.
class GateFetcher : public Fetcher {
 public:
  void Fetch(FetchRequest request, FetchCallback done) override {
    int now = ++in_fetch;
    int seen = max_in_fetch.load();
    while (now > seen && !max_in_fetch.compare_exchange_weak(seen, now)) {
    }
    ++calls;
    if (request.key == "gate") {
      entered.Notify();
      release.WaitForNotificationWithTimeout(absl::Seconds(10));
    }
    --in_fetch;
    pending.push_back(std::move(done));
  }

  absl::Notification entered;
  absl::Notification release;
  std::atomic<int> in_fetch{0};
  std::atomic<int> max_in_fetch{0};
  std::atomic<int> calls{0};
  std::vector<FetchCallback> pending;  // Touched by one thread at a time.
};

class StartEndObserver : public FlightObserver {
 public:
  void ExecutionStarted(const NamedFetcher&) override { EXPECT_GE(++open, 1); }
  void ExecutionEnded(const NamedFetcher&, const absl::Status&,
                      absl::Duration) override {
    EXPECT_GE(--open, 0) << "an execution ended before it started";
  }
  void Joined(const NamedFetcher&) override {}
  void Rejected(const NamedFetcher&, const char*) override {}
  std::atomic<int> open{0};
};

// Defect 7: every waiter leaving while the fetcher was being called gave the
// slot back at once, so a second fetch ran beyond max_concurrency (and an
// execution could be reported started without its end).
TEST(GroupHardeningTest, LeavingDuringFetchDoesNotFreeTheSlotEarly) {
  TimerQueue timers;
  StartEndObserver observer;
  Group group(&timers, &observer);
  auto owned = std::make_unique<GateFetcher>();
  GateFetcher* gate = owned.get();
  NamedFetcher fetcher = Named("gate", std::move(owned), OneAtATime(10));
  // The flight is queued first, so that its fetch is started by the thread
  // that frees the slot while the test holds the ticket.
  Slot first, waiter, next;
  group.Do(fetcher, "first", "", first.AsWaiter());
  Group::Ticket ticket = group.Do(fetcher, "gate", "", waiter.AsWaiter());
  FetchCallback first_done = std::move(gate->pending.front());
  gate->pending.clear();
  std::thread releaser([&] { std::move(first_done)(std::string("F")); });
  ASSERT_TRUE(gate->entered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(group.Leave(ticket, absl::CancelledError("gone")));
  group.Do(fetcher, "next", "", next.AsWaiter());  // Must wait for the slot.
  EXPECT_EQ(gate->calls.load(), 2);
  gate->release.Notify();
  releaser.join();
  EXPECT_EQ(gate->max_in_fetch.load(), 1);
  EXPECT_EQ(gate->calls.load(), 3);  // "next" started once "gate" returned.
  EXPECT_EQ(observer.open.load(), 1);
}

// Defect 8: FailAll read a flight's linger state without its shard's lock
// (found by ThreadSanitizer when flights finish during FailAll).
TEST(GroupHardeningTest, FailAllRacesWithFinishingFlights) {
  TimerQueue timers;
  Group group(&timers);
  auto owned = std::make_unique<HoldOneFetcher>();
  FetcherPolicy policy;
  policy.linger = absl::Hours(1);  // Only FailAll drops them.
  NamedFetcher fetcher = Named("quick", std::move(owned), policy);
  std::atomic<bool> caller_done{false};
  std::atomic<int> outcomes{0};
  std::thread caller([&] {
    for (int i = 0; i < 5000; ++i) {
      group.Do(fetcher, "k" + std::to_string(i % 8), "",
               [&](Outcome) { ++outcomes; });
    }
    caller_done = true;
  });
  for (int i = 0; i < 1000000 && !caller_done; ++i) {
    group.FailAll(absl::UnavailableError("stop"));
  }
  caller.join();
  EXPECT_EQ(outcomes.load(), 5000);
}

}  // namespace
}  // namespace singleflight
