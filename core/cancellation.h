#ifndef SINGLEFLIGHT_CORE_CANCELLATION_H_
#define SINGLEFLIGHT_CORE_CANCELLATION_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace singleflight {

// A one-shot signal that tells a fetcher its execution is no longer wanted
// (every waiter left, the execution timed out, or the server is stopping).
//
// Thread-safe: any method may be called from any thread.
class CancellationSignal {
 public:
  CancellationSignal() = default;
  CancellationSignal(const CancellationSignal&) = delete;
  CancellationSignal& operator=(const CancellationSignal&) = delete;

  bool IsCancelled() const;

  // Runs `callback` once, on the thread that calls Cancel(); at once, on the
  // calling thread, if the signal was already raised. Callbacks must be short
  // and must not block.
  void OnCancel(absl::AnyInvocable<void()> callback);

  // Raises the signal and runs the registered callbacks. Later calls do
  // nothing.
  void Cancel();

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<absl::AnyInvocable<void()>> callbacks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_CANCELLATION_H_
