#include "bench/load_driver.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/call_transport.h"
#include "bench/load_stats.h"
#include "bench/stream_transport.h"
#include "bench/unary_transport.h"

namespace singleflight {
namespace bench {
namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
// How long cancelled calls may take to end.
constexpr absl::Duration kCancelGrace = absl::Seconds(10);

// The run's clock: monotonic nanoseconds.
uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The wall-clock time of `ns` on the run's clock, for absl's timed waits.
absl::Time WallTimeOf(uint64_t ns) {
  if (ns == kNever) return absl::InfiniteFuture();
  return absl::Now() + absl::Nanoseconds(static_cast<int64_t>(ns) -
                                         static_cast<int64_t>(NowNs()));
}

uint64_t ToNs(absl::Duration duration) {
  return static_cast<uint64_t>(absl::ToInt64Nanoseconds(duration));
}

absl::Status Validate(const LoadOptions& options) {
  auto invalid = [](absl::string_view message) {
    return absl::InvalidArgumentError(message);
  };
  if (options.target.empty()) return invalid("no target");
  if (options.keys == nullptr) return invalid("no key space");
  if (options.channels < 1 || options.channels > 1024) {
    return invalid("channels must be in [1, 1024]");
  }
  if (options.concurrency < 1 || options.concurrency > 100'000) {
    return invalid("concurrency must be in [1, 100000]");
  }
  if (!(options.rate >= 0) || !std::isfinite(options.rate)) {
    return invalid("rate must be a finite number >= 0");
  }
  if (options.duration <= absl::ZeroDuration()) {
    return invalid("duration must be positive");
  }
  if (options.duration == absl::InfiniteDuration() && options.calls == 0) {
    return invalid("the run needs a bound: a duration or a number of calls");
  }
  if (options.warmup < absl::ZeroDuration() ||
      options.warmup == absl::InfiniteDuration()) {
    return invalid("warmup must be finite and >= 0");
  }
  if (options.deadline <= absl::ZeroDuration() ||
      options.deadline == absl::InfiniteDuration()) {
    return invalid("deadline must be finite and positive");
  }
  return absl::OkStatus();
}

// One connection each (GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL), all connected.
absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> Connect(
    const LoadOptions& options) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  auto deadline = std::chrono::system_clock::now() +
                  absl::ToChronoMilliseconds(options.connect_timeout);
  for (int i = 0; i < options.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(grpc::CreateCustomChannel(
        options.target, grpc::InsecureChannelCredentials(), args));
    if (!channels.back()->WaitForConnected(deadline)) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", options.target, " within ",
                       absl::FormatDuration(options.connect_timeout)));
    }
  }
  return channels;
}

// The state of one run. RunLoad owns it and destroys it, with its
// channels, on its own thread once every call's completion callback has
// been destroyed (AwaitAllEnded): never from within a gRPC callback.
//
// Thread-safe. Closed loop: each caller starts its next call from the
// completion of its last one. Open loop: Schedule starts calls on one
// thread. Calls stop starting at the end time, at the call bound, or on
// Stop(); once Stop() has returned, no Start is in progress or will begin.
class LoadRun {
 public:
  LoadRun(const LoadOptions& options,
          std::vector<std::unique_ptr<CallTransport>> transports,
          uint64_t measure_start_ns, uint64_t end_ns)
      : options_(options),
        transports_(std::move(transports)),
        measure_start_ns_(measure_start_ns),
        end_ns_(end_ns),
        active_(options.rate > 0 ? 1 : options.concurrency) {
    for (size_t i = 0; i < transports_.size(); ++i) {
      stats_.push_back(std::make_unique<LoadStats>());
    }
  }

  // Closed loop: starts every caller.
  void StartCallers() {
    for (int i = 0; i < options_.concurrency; ++i) {
      std::seed_seq seed{options_.seed, static_cast<uint64_t>(i)};
      callers_.push_back(Caller{i % transports_.size(), std::mt19937_64(seed)});
    }
    for (Caller& caller : callers_) Call(caller);
  }

  // Open loop: starts calls on schedule until the end, the call bound, or
  // Stop(). Call on a thread of its own.
  void Schedule() {
    std::mt19937_64 rng(options_.seed);
    const double period_ns = 1e9 / options_.rate;
    const uint64_t start = NowNs();
    for (uint64_t k = 0;; ++k) {
      uint64_t due = start + static_cast<uint64_t>(k * period_ns);
      if (due >= end_ns_) break;
      bool measured = due >= measure_start_ns_;
      if (measured && !TakeTicket()) break;
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithDeadline(absl::Condition(&stopping_), WallTimeOf(due));
        mu_.Await(absl::Condition(this, &LoadRun::CanStartCall));
        if (stopping_) break;
        ++outstanding_;
        // Under mu_, so that Stop() sees it.
        starting_.fetch_add(1);
      }
      size_t channel = k % transports_.size();
      transports_[channel]->Start(
          options_.keys->Key(options_.keys->Sample(rng)),
          [run = CallbackRef(this), channel, due, measured](CallResult result) {
            run->Record(channel, result, due, measured);
            run->EndCall();
          });
      starting_.fetch_sub(1);
    }
    absl::MutexLock lock(&mu_);
    --active_;
  }

  // Waits until the callers or the scheduler have stopped, the call bound
  // is reached, or the end time has passed.
  void AwaitIssuingOver() {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(this, &LoadRun::IssuingOver),
                          WallTimeOf(end_ns_));
  }

  // No call starts once this returns.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      stop_.store(true);
    }
    // Callers (or the scheduler) that saw no stop are inside Start, which
    // does not block.
    absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (starting_.load() != 0 && absl::Now() < give_up) {
      std::this_thread::yield();
    }
  }

  void CloseTransports() {
    for (auto& transport : transports_) transport->Close();
  }

  void CancelCalls() {
    for (auto& transport : transports_) transport->Cancel();
  }

  // Whether every call ended within `timeout`.
  bool AwaitAllEnded(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(this, &LoadRun::AllEnded),
                                timeout);
  }

  // REQUIRES: every call has ended.
  LoadReport Report() const {
    auto total = std::make_unique<LoadStats>();
    for (const auto& stats : stats_) total->Merge(*stats);
    LoadReport report;
    report.target = options_.target;
    report.mode = options_.stream ? "stream" : "unary";
    report.fetcher = options_.fetcher;
    report.keys = options_.keys->description();
    report.channels = options_.channels;
    report.concurrency = options_.concurrency;
    report.rate = options_.rate;
    report.calls = total->calls();
    report.ok = total->with_code(0);
    report.shared = total->shared();
    for (int code = 1; code < LoadStats::kCodes; ++code) {
      if (total->with_code(code) == 0) continue;
      report.errors.emplace_back(
          absl::StatusCodeToString(static_cast<absl::StatusCode>(code)),
          total->with_code(code));
    }
    if (total->last_completed_ns() > measure_start_ns_) {
      report.elapsed_seconds =
          (total->last_completed_ns() - measure_start_ns_) / 1e9;
    }
    const LatencyHistogram& latency = total->latency();
    report.latency = {latency.Percentile(0.5),
                      latency.Percentile(0.9),
                      latency.Percentile(0.99),
                      latency.Percentile(0.999),
                      latency.max(),
                      latency.Mean()};
    return report;
  }

 private:
  // Held by each call's completion callback, so that the run outlives the
  // callback (AllEnded waits for the last one to be destroyed).
  class CallbackRef {
   public:
    explicit CallbackRef(LoadRun* run) : run_(run) {
      absl::MutexLock lock(&run_->mu_);
      ++run_->callbacks_;
    }
    CallbackRef(CallbackRef&& other)
        : run_(std::exchange(other.run_, nullptr)) {}
    CallbackRef& operator=(CallbackRef&&) = delete;
    ~CallbackRef() {
      if (run_ == nullptr) return;
      absl::MutexLock lock(&run_->mu_);
      --run_->callbacks_;
    }
    LoadRun* operator->() const { return run_; }

   private:
    LoadRun* run_;
  };

  // A closed loop's caller: one call at a time, on one channel.
  struct Caller {
    size_t channel;
    std::mt19937_64 rng;
  };

  void Call(Caller& caller) {
    starting_.fetch_add(1);
    uint64_t now = NowNs();
    bool measured = now >= measure_start_ns_;
    if (stop_.load() || now >= end_ns_ || (measured && !TakeTicket())) {
      starting_.fetch_sub(1);
      absl::MutexLock lock(&mu_);
      --active_;
      return;
    }
    transports_[caller.channel]->Start(
        options_.keys->Key(options_.keys->Sample(caller.rng)),
        [run = CallbackRef(this), &caller, now, measured](CallResult result) {
          run->Record(caller.channel, result, now, measured);
          run->Call(caller);
        });
    starting_.fetch_sub(1);
  }

  // Counts a measured call against the call bound; false if it is reached.
  bool TakeTicket() {
    if (options_.calls == 0 ||
        measured_started_.fetch_add(1) < options_.calls) {
      return true;
    }
    absl::MutexLock lock(&mu_);
    bound_reached_ = true;
    return false;
  }

  void Record(size_t channel, CallResult result, uint64_t started_ns,
              bool measured) {
    if (!measured) return;
    uint64_t now = NowNs();
    stats_[channel]->Record(static_cast<int>(result.code), result.shared,
                            now > started_ns ? now - started_ns : 0, now);
  }

  void EndCall() {
    absl::MutexLock lock(&mu_);
    --outstanding_;
  }

  bool CanStartCall() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || outstanding_ < options_.concurrency;
  }
  bool IssuingOver() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return active_ == 0 || bound_reached_;
  }
  bool AllEnded() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return active_ == 0 && outstanding_ == 0 && callbacks_ == 0;
  }

  const LoadOptions options_;
  const std::vector<std::unique_ptr<CallTransport>> transports_;
  // One per transport, merged for the report.
  std::vector<std::unique_ptr<LoadStats>> stats_;
  const uint64_t measure_start_ns_;
  const uint64_t end_ns_;
  // Fixed before the first call (calls refer to their caller).
  std::vector<Caller> callers_;

  std::atomic<bool> stop_{false};
  // Callers (or the scheduler) between their check of stop_ (stopping_)
  // and the end of their Start.
  std::atomic<int> starting_{0};
  std::atomic<uint64_t> measured_started_{0};

  absl::Mutex mu_;
  // Closed loop: callers still calling. Open loop: 1 while scheduling.
  int active_ ABSL_GUARDED_BY(mu_);
  // Open loop: calls in progress.
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  // Completion callbacks not yet destroyed.
  int callbacks_ ABSL_GUARDED_BY(mu_) = 0;
  bool bound_reached_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options) {
  absl::Status valid = Validate(options);
  if (!valid.ok()) return valid;
  absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> channels =
      Connect(options);
  if (!channels.ok()) return channels.status();
  auto payload =
      std::make_shared<const std::string>(options.payload_bytes, 'x');
  std::vector<std::unique_ptr<CallTransport>> transports;
  for (const auto& channel : *channels) {
    if (options.stream) {
      transports.push_back(
          std::make_unique<StreamTransport>(channel, options.fetcher, payload));
    } else {
      transports.push_back(std::make_unique<UnaryTransport>(
          channel, options.fetcher, payload, options.deadline));
    }
  }

  bool warmup = options.warmup > absl::ZeroDuration();
  if (!warmup && options.on_measure_start) options.on_measure_start();
  uint64_t measure_start = NowNs() + ToNs(options.warmup);
  uint64_t end = options.duration == absl::InfiniteDuration()
                     ? kNever
                     : measure_start + ToNs(options.duration);
  auto run = std::make_unique<LoadRun>(options, std::move(transports),
                                       measure_start, end);
  std::thread scheduler;
  if (options.rate > 0) {
    scheduler = std::thread([run = run.get()] { run->Schedule(); });
  } else {
    run->StartCallers();
  }
  if (warmup) {
    absl::SleepFor(WallTimeOf(measure_start) - absl::Now());
    if (options.on_measure_start) options.on_measure_start();
  }
  run->AwaitIssuingOver();
  run->Stop();
  if (scheduler.joinable()) scheduler.join();
  run->CloseTransports();
  if (!run->AwaitAllEnded(options.deadline + absl::Seconds(1))) {
    run->CancelCalls();
    if (!run->AwaitAllEnded(kCancelGrace)) {
      // The run cannot be destroyed under a call still running.
      run.release();
      return absl::DeadlineExceededError(
          "calls were still running after they were cancelled");
    }
  }
  return run->Report();
}

}  // namespace bench
}  // namespace singleflight
