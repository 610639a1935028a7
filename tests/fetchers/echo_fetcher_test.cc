#include "fetchers/echo_fetcher.h"

#include <atomic>
#include <string>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<std::unique_ptr<Fetcher>> Build(TimerQueue& timers,
                                               const std::string& text) {
  absl::StatusOr<FetcherUri> uri = FetcherUri::Parse(text);
  if (!uri.ok()) return uri.status();
  return EchoFetcher::Create(*uri, FetcherPolicy(),
                             FetcherEnvironment{&timers});
}

FetchRequest Request(std::string key, std::string payload) {
  FetchRequest request;
  request.key = std::move(key);
  request.payload = std::move(payload);
  request.cancellation = std::make_shared<CancellationSignal>();
  return request;
}

TEST(EchoFetcherTest, ValueIsThePayloadOrElseTheKey) {
  TimerQueue timers;
  auto echo = Build(timers, "echo:");
  ASSERT_TRUE(echo.ok()) << echo.status();
  std::string value;
  (*echo)->Fetch(Request("key", "payload"),
                 [&](absl::StatusOr<std::string> v) { value = *v; });
  EXPECT_EQ(value, "payload");
  (*echo)->Fetch(Request("key", ""),
                 [&](absl::StatusOr<std::string> v) { value = *v; });
  EXPECT_EQ(value, "key");
}

TEST(EchoFetcherTest, DelayAnswersLaterWithoutAThread) {
  absl::Notification answered;
  TimerQueue timers;
  auto echo = Build(timers, "echo:?delay=200ms");
  ASSERT_TRUE(echo.ok()) << echo.status();
  absl::Time start = absl::Now();
  (*echo)->Fetch(Request("key", ""), [&](absl::StatusOr<std::string> v) {
    EXPECT_EQ(*v, "key");
    answered.Notify();
  });
  EXPECT_FALSE(answered.HasBeenNotified());
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
}

TEST(EchoFetcherTest, CancellationStopsTheDelay) {
  absl::Notification later;
  TimerQueue timers;
  auto echo = Build(timers, "echo:?delay=300ms");
  ASSERT_TRUE(echo.ok());
  FetchRequest request = Request("key", "");
  auto signal = request.cancellation;
  std::atomic<bool> answered{false};
  (*echo)->Fetch(std::move(request),
                 [&](absl::StatusOr<std::string>) { answered = true; });
  signal->Cancel();
  timers.Schedule(absl::Milliseconds(500), [&] { later.Notify(); });
  ASSERT_TRUE(later.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(answered);
}

TEST(EchoFetcherTest, RejectsBadSettings) {
  TimerQueue timers;
  EXPECT_THAT(Build(timers, "echo:?delay=soon").status().message(),
              HasSubstr("not a duration"));
  EXPECT_THAT(Build(timers, "echo:?pause=1s").status().message(),
              HasSubstr("no setting \"pause\""));
  EXPECT_EQ(Build(timers, "echo:somewhere").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace singleflight
