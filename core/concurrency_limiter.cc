#include "core/concurrency_limiter.h"

#include <utility>

namespace singleflight {
namespace {

// One RunTasks loop in progress on this thread: Releases of its limiter made
// from inside its tasks are counted here instead of recursing.
struct RunFrame {
  const ConcurrencyLimiter* limiter;
  int released;
  RunFrame* outer;
};
thread_local RunFrame* innermost_frame = nullptr;

}  // namespace

ConcurrencyLimiter::ConcurrencyLimiter(int max_running, int max_queued)
    : max_running_(max_running), max_queued_(max_queued) {}

bool ConcurrencyLimiter::Acquire(Task task, QueueTicket* queued_as) {
  {
    absl::MutexLock lock(&mu_);
    if (running_ >= max_running_) {
      if (queue_.size() >= max_queued_) return false;
      QueueTicket ticket = ++last_ticket_;
      queue_.emplace(ticket, std::move(task));
      if (queued_as != nullptr) *queued_as = ticket;
      return true;
    }
    ++running_;
  }
  if (queued_as != nullptr) *queued_as = 0;
  RunTasks(std::move(task));
  return true;
}

bool ConcurrencyLimiter::Withdraw(QueueTicket ticket) {
  Task withdrawn;  // Destroyed outside the lock.
  absl::MutexLock lock(&mu_);
  auto it = queue_.find(ticket);
  if (it == queue_.end()) return false;
  withdrawn = std::move(it->second);
  queue_.erase(it);
  return true;
}

void ConcurrencyLimiter::Release() {
  for (RunFrame* frame = innermost_frame; frame != nullptr;
       frame = frame->outer) {
    if (frame->limiter == this) {
      ++frame->released;  // That loop hands the slot on when the task returns.
      return;
    }
  }
  Task next;
  {
    absl::MutexLock lock(&mu_);
    if (queue_.empty()) {
      --running_;
      return;
    }
    next = std::move(queue_.begin()->second);
    queue_.erase(queue_.begin());
  }
  RunTasks(std::move(next));
}

void ConcurrencyLimiter::RunTasks(Task task) {
  RunFrame frame{this, 0, innermost_frame};
  innermost_frame = &frame;
  // Even if a task throws, no later Release on this thread may reach the
  // frame once this loop is gone.
  struct Unlink {
    RunFrame* frame;
    ~Unlink() { innermost_frame = frame->outer; }
  } unlink{&frame};
  int slots_in_hand = 1;
  while (true) {
    if (task()) --slots_in_hand;
    slots_in_hand += std::exchange(frame.released, 0);
    if (slots_in_hand == 0) break;
    Task next;
    {
      absl::MutexLock lock(&mu_);
      if (queue_.empty()) {
        running_ -= slots_in_hand;
        break;
      }
      next = std::move(queue_.begin()->second);
      queue_.erase(queue_.begin());
    }
    task = std::move(next);  // The task that ran is destroyed unlocked.
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
