// Many threads, few keys, with Forgets, leaves, errors and throws mixed in:
// every waiter gets exactly one outcome and no execution is lost.
#include <atomic>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/group.h"
#include "gtest/gtest.h"
#include "tests/core/test_fetchers.h"

namespace singleflight {
namespace {

// Answers after a short random delay on the timer thread, fails or throws
// now and then, and counts how each execution ended.
class ChaosFetcher : public Fetcher {
 public:
  explicit ChaosFetcher(TimerQueue* timers) : timers_(timers) {}

  void Fetch(FetchRequest request, FetchCallback done) override {
    int roll;
    {
      absl::MutexLock lock(&mu_);
      roll = std::uniform_int_distribution<int>(0, 99)(random_);
    }
    started_++;
    if (roll < 5) {
      finished_++;
      throw std::runtime_error("chaos");
    }
    if (roll < 10) {
      finished_++;
      done(absl::UnavailableError("chaos"));
      return;
    }
    auto ended = std::make_shared<std::atomic<bool>>(false);
    TimerQueue::TimerId timer = timers_->Schedule(
        absl::Microseconds(roll * 20),
        [this, ended, key = request.key, done = std::move(done)]() mutable {
          if (!ended->exchange(true)) finished_++;
          done(key);
        });
    request.cancellation->OnCancel([this, ended, timer] {
      timers_->Cancel(timer);
      if (!ended->exchange(true)) cancelled_++;
    });
  }

  std::atomic<int> started_{0};
  std::atomic<int> finished_{0};
  std::atomic<int> cancelled_{0};

 private:
  TimerQueue* const timers_;
  absl::Mutex mu_;
  std::mt19937 random_ ABSL_GUARDED_BY(mu_){42};
};

// Policies to stress: plain singleflight, a concurrency limit with a short
// queue (so that some flights are refused), and a brief linger.
FetcherPolicy Plain() { return FetcherPolicy(); }
FetcherPolicy Limited() {
  FetcherPolicy policy;
  policy.max_concurrency = 2;
  policy.max_queue = 2;
  return policy;
}
FetcherPolicy Lingering() {
  FetcherPolicy policy;
  policy.linger = absl::Microseconds(300);
  policy.linger_errors = true;
  return policy;
}

class GroupStressTest : public ::testing::TestWithParam<FetcherPolicy (*)()> {};

// Names the cases by index, not by the function's address, which may
// differ between the run that lists the tests for ctest and the run that
// runs one.
std::string PolicyName(
    const ::testing::TestParamInfo<FetcherPolicy (*)()>& info) {
  static const char* const kNames[] = {"Plain", "Limited", "Lingering"};
  return kNames[info.index];
}

INSTANTIATE_TEST_SUITE_P(Policies, GroupStressTest,
                         ::testing::Values(&Plain, &Limited, &Lingering),
                         PolicyName);

TEST_P(GroupStressTest, EveryWaiterGetsExactlyOneOutcome) {
  constexpr int kThreads = 8;
  constexpr int kCallsPerThread = 1500;
  constexpr int kKeys = 4;
  TimerQueue timers;
  Group group(&timers);
  auto owned = std::make_unique<ChaosFetcher>(&timers);
  ChaosFetcher* chaos = owned.get();
  NamedFetcher fetcher = Named("chaos", std::move(owned), GetParam()());

  std::vector<std::atomic<int>> outcomes(kThreads * kCallsPerThread);
  std::atomic<int> wrong_values{0};
  std::atomic<int> shared{0};
  std::atomic<int> left{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(t);
      std::vector<Group::Ticket> tickets;
      for (int i = 0; i < kCallsPerThread; ++i) {
        int slot = t * kCallsPerThread + i;
        std::string key = "k" + std::to_string(random() % kKeys);
        tickets.push_back(group.Do(fetcher, key, "", [&, slot, key](Outcome o) {
          outcomes[slot]++;
          if (o.status().ok() && o.value() != key) wrong_values++;
          if (o.shared) shared++;
        }));
        switch (random() % 10) {
          case 0:
            group.Forget("chaos", key);
            break;
          case 1:
          case 2:
            if (group.Leave(tickets[random() % tickets.size()],
                            absl::CancelledError("left"))) {
              left++;
            }
            break;
          default:
            break;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  // Every flight ends within its fetcher's delay; wait for the last ones.
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  auto all_answered = [&] {
    for (const auto& count : outcomes) {
      if (count.load() == 0) return false;
    }
    return true;
  };
  while (!all_answered() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  for (size_t slot = 0; slot < outcomes.size(); ++slot) {
    ASSERT_EQ(outcomes[slot].load(), 1) << "waiter " << slot;
  }
  EXPECT_EQ(wrong_values.load(), 0);
  EXPECT_TRUE(group.InFlight().empty());
  // No execution lost: each one finished or was told to stop.
  EXPECT_EQ(chaos->started_.load(),
            chaos->finished_.load() + chaos->cancelled_.load());
  // The mix really happened: joins, and waiters who left.
  EXPECT_GT(shared.load(), 0);
  EXPECT_GT(left.load(), 0);
  EXPECT_LT(chaos->started_.load(), kThreads * kCallsPerThread);
}

}  // namespace
}  // namespace singleflight
