#ifndef SINGLEFLIGHT_CORE_TIMER_QUEUE_H_
#define SINGLEFLIGHT_CORE_TIMER_QUEUE_H_

#include <cstdint>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace singleflight {

// Runs callbacks at given times on one dedicated thread, so that nothing else
// has to sleep: fetch timeouts and delayed fetchers wait here as entries, not
// as threads.
//
// Thread-safe. Callbacks run one at a time on the timer thread; they must be
// short and must not block. A callback may schedule or cancel timers.
class TimerQueue {
 public:
  using TimerId = uint64_t;

  TimerQueue();
  // Stops the thread; callbacks not yet run are destroyed without running.
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Runs `callback` once `delay` has passed.
  TimerId Schedule(absl::Duration delay, absl::AnyInvocable<void()> callback);

  // Drops the timer. Returns true if it had not started to run.
  bool Cancel(TimerId id);

 private:
  struct Entry {
    absl::Time when;
    absl::AnyInvocable<void()> callback;
  };

  void Run();

  absl::Mutex mu_;
  absl::CondVar earliest_changed_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Ordered by (time, id); ids break ties in scheduling order.
  std::map<std::pair<absl::Time, TimerId>, absl::AnyInvocable<void()>> due_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TimerId, absl::Time> when_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_TIMER_QUEUE_H_
