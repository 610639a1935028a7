#include "core/timer_queue.h"

namespace singleflight {

TimerQueue::TimerQueue() : thread_([this] { Run(); }) {}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  earliest_changed_.Signal();
  thread_.join();
}

TimerQueue::TimerId TimerQueue::Schedule(absl::Duration delay,
                                         absl::AnyInvocable<void()> callback) {
  absl::MutexLock lock(&mu_);
  TimerId id = next_id_++;
  absl::Time when = absl::Now() + delay;
  auto entry = due_.emplace(std::make_pair(when, id), std::move(callback));
  when_.emplace(id, when);
  if (entry.first == due_.begin()) earliest_changed_.Signal();
  return id;
}

bool TimerQueue::Cancel(TimerId id) {
  absl::AnyInvocable<void()> dropped;  // Destroyed outside the lock.
  absl::MutexLock lock(&mu_);
  auto it = when_.find(id);
  if (it == when_.end()) return false;
  auto entry = due_.find(std::make_pair(it->second, id));
  dropped = std::move(entry->second);
  due_.erase(entry);
  when_.erase(it);
  return true;
}

void TimerQueue::Run() {
  mu_.Lock();
  while (!stopping_) {
    if (due_.empty()) {
      earliest_changed_.Wait(&mu_);
      continue;
    }
    absl::Time earliest = due_.begin()->first.first;
    if (earliest > absl::Now()) {
      earliest_changed_.WaitWithDeadline(&mu_, earliest);
      continue;
    }
    auto first = due_.begin();
    when_.erase(first->first.second);
    absl::AnyInvocable<void()> callback = std::move(first->second);
    due_.erase(first);
    mu_.Unlock();
    callback();
    callback = nullptr;
    mu_.Lock();
  }
  auto drop = std::move(due_);
  when_.clear();
  mu_.Unlock();
}

}  // namespace singleflight
