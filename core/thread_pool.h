#ifndef SINGLEFLIGHT_CORE_THREAD_POOL_H_
#define SINGLEFLIGHT_CORE_THREAD_POOL_H_

#include <cstddef>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace singleflight {

// A fixed number of threads running tasks from a bounded queue: where
// blocking work goes, so that it never runs on gRPC's threads and the number
// of threads stays bounded whatever the load.
//
// Thread-safe.
class ThreadPool {
 public:
  // REQUIRES: threads > 0, max_queued > 0.
  ThreadPool(int threads, size_t max_queued);
  // Runs the tasks already queued, then joins the threads.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `task` and returns true, or returns false, leaving `task`
  // untouched, if `max_queued` tasks are already waiting.
  bool TrySubmit(absl::AnyInvocable<void()>&& task);

 private:
  void Work();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  }

  const size_t max_queued_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_THREAD_POOL_H_
