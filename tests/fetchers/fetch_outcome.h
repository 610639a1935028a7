#ifndef SINGLEFLIGHT_TESTS_FETCHERS_FETCH_OUTCOME_H_
#define SINGLEFLIGHT_TESTS_FETCHERS_FETCH_OUTCOME_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/fetcher.h"

namespace singleflight {

// Where the result of one Fetch lands, from whichever thread delivers it.
// Thread-safe.
class FetchOutcome : public std::enable_shared_from_this<FetchOutcome> {
 public:
  FetchCallback Callback() {
    return [self = shared_from_this()](absl::StatusOr<std::string> result) {
      absl::MutexLock lock(&self->mu_);
      ++self->calls_;
      self->result_ = std::move(result);
    };
  }

  // The result, or INTERNAL if none arrives within `timeout`.
  absl::StatusOr<std::string> Wait(absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto arrived = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return result_.has_value();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&arrived), timeout)) {
      return absl::InternalError(
          absl::StrCat("test: no result in ", absl::FormatDuration(timeout)));
    }
    return *result_;
  }

  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  std::optional<absl::StatusOr<std::string>> result_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_TESTS_FETCHERS_FETCH_OUTCOME_H_
