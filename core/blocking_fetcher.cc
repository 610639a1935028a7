#include "core/blocking_fetcher.h"

#include <exception>
#include <utility>

#include "absl/status/status.h"

namespace singleflight {

BlockingFetcher::BlockingFetcher(ThreadPool* pool, Function function)
    : pool_(pool), function_(std::move(function)) {}

void BlockingFetcher::Fetch(FetchRequest request, FetchCallback done) {
  auto shared_done = std::make_shared<FetchCallback>(std::move(done));
  absl::AnyInvocable<void()> task = [this, request = std::move(request),
                                     shared_done]() {
    if (request.cancellation->IsCancelled()) return;
    absl::StatusOr<std::string> value;
    try {
      value = function_(request);
    } catch (const std::exception& e) {
      value = absl::InternalError(e.what());
    } catch (...) {
      value = absl::InternalError("fetcher threw a non-standard exception");
    }
    (*shared_done)(std::move(value));
  };
  if (!pool_->TrySubmit(std::move(task))) {
    (*shared_done)(absl::ResourceExhaustedError(
        "too many blocking fetches are queued; try again later"));
  }
}

}  // namespace singleflight
