#ifndef SINGLEFLIGHT_CORE_CONCURRENCY_LIMITER_H_
#define SINGLEFLIGHT_CORE_CONCURRENCY_LIMITER_H_

#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace singleflight {

// Bounds how many executions of one fetcher run at once (a fetcher's
// max_concurrency); the others wait, first in first out, in a queue of
// bounded length (max_queue).
//
// A task is started by Acquire or Release and returns whether it took the
// slot: a task whose work is no longer wanted returns false, and the slot
// goes to the next task at once. A queued task that is no longer wanted can
// also be withdrawn, so that it gives up its place in the queue at once.
//
// Tasks must not throw. They run outside the limiter's lock, on the thread of
// the Acquire or
// Release that started them. Handing slots on never recurses: a Release
// called from inside a task that this limiter started (say, a fetch that
// answers at once) is taken over by the loop that runs the tasks, so a queue
// of any length drains in constant stack depth.
//
// Thread-safe.
class ConcurrencyLimiter {
 public:
  using Task = absl::AnyInvocable<bool()>;
  // Names a queued task, for Withdraw. Never 0.
  using QueueTicket = uint64_t;

  // REQUIRES: max_running > 0, max_queued >= 0.
  ConcurrencyLimiter(int max_running, int max_queued);
  ConcurrencyLimiter(const ConcurrencyLimiter&) = delete;
  ConcurrencyLimiter& operator=(const ConcurrencyLimiter&) = delete;

  // Starts `task` if a slot is free (and sets `*queued_as` to 0), or queues
  // it (and sets `*queued_as` to its ticket). Returns false, without running
  // or keeping `task`, if the queue is full. `queued_as` may be null.
  bool Acquire(Task task, QueueTicket* queued_as = nullptr);

  // Takes a queued task out of the queue without running it. Returns false
  // if it is no longer queued (it is running or has run).
  bool Withdraw(QueueTicket ticket);

  // Gives back the slot of a task that returned true: starts queued tasks
  // until one takes it.
  void Release();

  int running() const;
  int queued() const;

 private:
  // Runs `task` with a slot the caller holds, then hands that slot (and any
  // released meanwhile on this thread) to queued tasks until each is taken
  // or the queue is empty.
  void RunTasks(Task task);

  const int max_running_;
  const size_t max_queued_;
  mutable absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  QueueTicket last_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  // Ordered by ticket: first in, first out.
  std::map<QueueTicket, Task> queue_ ABSL_GUARDED_BY(mu_);
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_CONCURRENCY_LIMITER_H_
