#ifndef SINGLEFLIGHT_TESTS_CORE_TEST_FETCHERS_H_
#define SINGLEFLIGHT_TESTS_CORE_TEST_FETCHERS_H_

#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/fetcher.h"
#include "core/group.h"

namespace singleflight {

// A fetcher the test drives by hand: each Fetch is held until the test
// completes it, like Go's tests block fn on a channel.
// Thread-safe.
class ManualFetcher : public Fetcher {
 public:
  struct Pending {
    FetchRequest request;
    FetchCallback done;
  };

  void Fetch(FetchRequest request, FetchCallback done) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    pending_.push_back(Pending{std::move(request), std::move(done)});
  }

  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  // Waits (bounded) until `n` executions have started.
  bool WaitForCalls(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return calls_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(10));
  }

  // Takes the oldest execution not yet completed.
  Pending Take() {
    absl::MutexLock lock(&mu_);
    Pending next = std::move(pending_.front());
    pending_.pop_front();
    return next;
  }

 private:
  absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
};

// A fetcher that throws from Fetch, like a panicking fn in Go.
class ThrowingFetcher : public Fetcher {
 public:
  void Fetch(FetchRequest request, FetchCallback done) override {
    throw std::runtime_error("fetcher exploded on " + request.key);
  }
};

// Where a waiter's outcome lands, for tests whose outcomes arrive on the
// test's own thread. Not thread-safe.
struct Slot {
  Waiter AsWaiter() {
    return [this](Outcome o) {
      outcome = std::move(o);
      ++calls;
    };
  }
  Outcome outcome;
  int calls = 0;  // Exactly one, once the outcome is known.
};

// Wraps a Fetcher into a NamedFetcher for Group::Do.
inline NamedFetcher Named(std::string name, std::unique_ptr<Fetcher> fetcher,
                          FetcherPolicy policy = {}) {
  return NamedFetcher(std::move(name), "test:", std::move(policy),
                      std::move(fetcher));
}

}  // namespace singleflight

#endif  // SINGLEFLIGHT_TESTS_CORE_TEST_FETCHERS_H_
