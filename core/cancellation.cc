#include "core/cancellation.h"

#include <utility>

namespace singleflight {

bool CancellationSignal::IsCancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void CancellationSignal::OnCancel(absl::AnyInvocable<void()> callback) {
  {
    absl::MutexLock lock(&mu_);
    if (!cancelled_) {
      callbacks_.push_back(std::move(callback));
      return;
    }
  }
  callback();
}

void CancellationSignal::Cancel() {
  std::vector<absl::AnyInvocable<void()>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    cancelled_ = true;
    callbacks.swap(callbacks_);
  }
  for (auto& callback : callbacks) callback();
}

}  // namespace singleflight
