#ifndef SINGLEFLIGHT_CORE_CONCURRENCY_LIMITER_H_
#define SINGLEFLIGHT_CORE_CONCURRENCY_LIMITER_H_

#include <cstddef>
#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace singleflight {

// Bounds how many executions of one fetcher run at once (a fetcher's
// max_concurrency); the others wait, first in first out, in a queue of
// bounded length (max_queue).
//
// A task is started by Acquire or Release and returns whether it took the
// slot: a task whose work is no longer wanted (its flight was cancelled while
// it waited) returns false, and the slot goes to the next task at once.
// Tasks run outside the limiter's lock, on the thread of the Acquire or
// Release that started them.
//
// Thread-safe.
class ConcurrencyLimiter {
 public:
  using Task = absl::AnyInvocable<bool()>;

  // REQUIRES: max_running > 0, max_queued >= 0.
  ConcurrencyLimiter(int max_running, int max_queued);
  ConcurrencyLimiter(const ConcurrencyLimiter&) = delete;
  ConcurrencyLimiter& operator=(const ConcurrencyLimiter&) = delete;

  // Starts `task` if a slot is free, or queues it. Returns false, without
  // running or keeping `task`, if the queue is full.
  bool Acquire(Task task);

  // Gives back the slot of a task that returned true: starts queued tasks
  // until one takes it.
  void Release();

  int running() const;
  int queued() const;

 private:
  // Runs tasks, starting with `task`, until one takes the slot it was given
  // or none is left.
  void StartFrom(Task task);

  const int max_running_;
  const size_t max_queued_;
  mutable absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_CONCURRENCY_LIMITER_H_
