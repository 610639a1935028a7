#include "core/concurrency_limiter.h"

#include <utility>

namespace singleflight {

ConcurrencyLimiter::ConcurrencyLimiter(int max_running, int max_queued)
    : max_running_(max_running), max_queued_(max_queued) {}

bool ConcurrencyLimiter::Acquire(Task task) {
  {
    absl::MutexLock lock(&mu_);
    if (running_ >= max_running_) {
      if (queue_.size() >= max_queued_) return false;
      queue_.push_back(std::move(task));
      return true;
    }
    ++running_;
  }
  StartFrom(std::move(task));
  return true;
}

void ConcurrencyLimiter::Release() {
  Task next;
  {
    absl::MutexLock lock(&mu_);
    if (queue_.empty()) {
      --running_;
      return;
    }
    next = std::move(queue_.front());
    queue_.pop_front();
  }
  StartFrom(std::move(next));
}

void ConcurrencyLimiter::StartFrom(Task task) {
  // The caller holds a slot for `task`; it passes down the queue until taken.
  while (!task()) {
    absl::MutexLock lock(&mu_);
    if (queue_.empty()) {
      --running_;
      return;
    }
    task = std::move(queue_.front());
    queue_.pop_front();
  }
}

int ConcurrencyLimiter::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

int ConcurrencyLimiter::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

}  // namespace singleflight
