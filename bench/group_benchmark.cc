// Microbenchmarks of core::Group with in-memory fetchers: what coalescing
// itself costs, without gRPC.
//
//   group_benchmark --benchmark_filter=BM_FanOut
#include <malloc.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "core/fetcher.h"
#include "core/group.h"
#include "core/timer_queue.h"

namespace singleflight {
namespace {

// Completes every fetch at once, from inside Fetch: the value is the key.
// Thread-safe.
class ImmediateFetcher : public Fetcher {
 public:
  void Fetch(FetchRequest request, FetchCallback done) override {
    done(std::move(request.key));
  }
};

// Holds every fetch until ReleaseAll, so that its flight stays in progress.
// Thread-safe.
class HeldFetcher : public Fetcher {
 public:
  void Fetch(FetchRequest request, FetchCallback done) override {
    absl::MutexLock lock(&mu_);
    held_.push_back(std::move(done));
  }

  // Completes every fetch held so far, which answers their waiters.
  void ReleaseAll() {
    std::vector<FetchCallback> held;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
    }
    for (FetchCallback& done : held) done(std::string("value"));
  }

 private:
  absl::Mutex mu_;
  std::vector<FetchCallback> held_ ABSL_GUARDED_BY(mu_);
};

NamedFetcher Named(std::string name, std::unique_ptr<Fetcher> fetcher) {
  return NamedFetcher(std::move(name), "bench:", FetcherPolicy(),
                      std::move(fetcher));
}

// What every benchmark shares: one Group, as a server has.
struct Env {
  TimerQueue timers;
  Group group{&timers};
  NamedFetcher immediate =
      Named("immediate", std::make_unique<ImmediateFetcher>());
  HeldFetcher* held_fetcher = new HeldFetcher;
  NamedFetcher held = Named("held", std::unique_ptr<Fetcher>(held_fetcher));
};

// Call first in every benchmark: it also applies singleflightd's tuning
// (see server/main.cc), before any mutex is used.
Env& GetEnv() {
  static Env* env = [] {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    return new Env;
  }();
  return *env;
}

void IgnoreOutcome(Outcome outcome) {
  benchmark::DoNotOptimize(outcome.shared);
}

// Each Do starts a flight on a key no flight holds, and completes it at
// once: the whole life of an uncontended flight.
void BM_DoDistinctKeys(benchmark::State& state) {
  Env& env = GetEnv();
  constexpr size_t kKeys = 4096;  // Reused: each flight is over at once.
  std::vector<std::string> keys;
  for (size_t i = 0; i < kKeys; ++i) {
    keys.push_back(absl::StrCat("distinct-", state.thread_index(), "-", i));
  }
  size_t next = 0;
  for (auto _ : state) {
    env.group.Do(env.immediate, keys[next++ % kKeys], "", IgnoreOutcome);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DoDistinctKeys)->Threads(1)->Threads(2)->UseRealTime();

// Each Do joins one flight held in progress (every thread the same one), so
// its waiters pile up: the cost of a join. A fixed count bounds the memory
// the waiters take; they are answered after the timing.
void BM_HotKeyJoin(benchmark::State& state) {
  Env& env = GetEnv();
  if (state.thread_index() == 0) {
    env.group.Do(env.held, "hot", "", IgnoreOutcome);
  }
  for (auto _ : state) {
    env.group.Do(env.held, "hot", "", IgnoreOutcome);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) env.held_fetcher->ReleaseAll();
}
BENCHMARK(BM_HotKeyJoin)
    ->Iterations(200000)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// Completes a flight that N waiters share: only the completion is timed,
// and items are waiters, so the time per item is the fan-out cost of one
// waiter.
void BM_FanOut(benchmark::State& state) {
  Env& env = GetEnv();
  const int64_t waiters = state.range(0);
  for (auto _ : state) {
    for (int64_t i = 0; i < waiters; ++i) {
      env.group.Do(env.held, "fan-out", "", IgnoreOutcome);
    }
    auto start = std::chrono::steady_clock::now();
    env.held_fetcher->ReleaseAll();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  }
  state.SetItemsProcessed(state.iterations() * waiters);
}
BENCHMARK(BM_FanOut)->Arg(1)->Arg(100)->Arg(10000)->UseManualTime();

// Go's Forget in a loop: start a flight, forget it, complete it (a
// forgotten flight still answers its waiters). Each thread on a fetcher of
// its own.
void BM_ForgetChurn(benchmark::State& state) {
  Env& env = GetEnv();
  auto* fetcher = new HeldFetcher;
  NamedFetcher named = Named(absl::StrCat("churn-", state.thread_index()),
                             std::unique_ptr<Fetcher>(fetcher));
  for (auto _ : state) {
    env.group.Do(named, "churn", "", IgnoreOutcome);
    env.group.Forget(named.name, "churn");
    fetcher->ReleaseAll();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ForgetChurn)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace singleflight
