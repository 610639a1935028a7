#include "fetchers/echo_fetcher.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace singleflight {

absl::StatusOr<std::unique_ptr<Fetcher>> EchoFetcher::Create(
    const FetcherUri& uri, const FetcherPolicy& policy,
    const FetcherEnvironment& environment) {
  if (!uri.target.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("echo takes no target (\"", uri.target,
                     "\"); use echo: or echo:?delay=1s"));
  }
  absl::StatusOr<FetcherUri::Settings> settings = uri.ParseSettings();
  if (!settings.ok()) return settings.status();
  absl::Duration delay = absl::ZeroDuration();
  for (const auto& [name, value] : *settings) {
    if (name != "delay") {
      return absl::InvalidArgumentError(
          absl::StrCat("echo has no setting \"", name, "\" (known: delay)"));
    }
    if (!absl::ParseDuration(value, &delay) || delay < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "echo: delay \"", value, "\" is not a duration like 250ms or 2s"));
    }
  }
  return std::make_unique<EchoFetcher>(environment.timers, delay);
}

EchoFetcher::EchoFetcher(TimerQueue* timers, absl::Duration delay)
    : timers_(timers), delay_(delay) {}

void EchoFetcher::Fetch(FetchRequest request, FetchCallback done) {
  std::string value = request.payload.empty() ? std::move(request.key)
                                              : std::move(request.payload);
  if (delay_ == absl::ZeroDuration()) {
    done(std::move(value));
    return;
  }
  TimerQueue::TimerId timer = timers_->Schedule(
      delay_, [done = std::move(done), value = std::move(value)]() mutable {
        done(std::move(value));
      });
  TimerQueue* timers = timers_;
  request.cancellation->OnCancel([timers, timer] { timers->Cancel(timer); });
}

}  // namespace singleflight
