// sfload: the load generator for sizing a singleflight tier. Drives Do calls
// (or DoStream items) at a server over several connections, closed loop
// (N callers) or open loop (R calls a second), on a chosen key distribution,
// and reports throughput, latency percentiles, errors by code, the share of
// replies that were shared and, given the server's /metrics, how many
// fetcher executions each call cost.
//
//   sfload --target=127.0.0.1:50051 --keys=zipf --key_count=100000
//       --concurrency=64 --duration=30s --warmup=5s
//       --metrics_url=http://127.0.0.1:9090/metrics
//
// Exit status: 0 if the run happened (even with failed calls), 1 if calls
// failed and --fail_on_error was given, 2 if it could not run.
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/key_space.h"
#include "bench/load_driver.h"
#include "bench/load_report.h"
#include "bench/metrics_scrape.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "server address HOST:PORT");
ABSL_FLAG(int, channels, 4, "client channels, each its own connection");
ABSL_FLAG(std::string, fetcher, "",
          "fetcher to call (default: the server's default fetcher)");
ABSL_FLAG(std::string, mode, "unary",
          "unary: each call a Do; stream: each call an item of a DoStream, "
          "one stream a channel");
ABSL_FLAG(std::optional<int>, concurrency, std::nullopt,
          "closed loop: callers, each starting its next call when its last "
          "one ends (default 16); with --rate: the most calls outstanding "
          "(default 10000)");
ABSL_FLAG(double, rate, 0,
          "open loop: calls a second, started on schedule whatever the "
          "replies do; latency then counts from each call's scheduled time");
ABSL_FLAG(std::string, keys, "uniform",
          "key distribution: hot (one key), uniform, or zipf");
ABSL_FLAG(uint64_t, key_count, 10000, "distinct keys for uniform and zipf");
ABSL_FLAG(double, zipf_s, 1.1, "zipf exponent: key k drawn as 1/(k+1)^s");
ABSL_FLAG(std::string, key_prefix, "sfload-", "keys are PREFIX0, PREFIX1...");
ABSL_FLAG(uint64_t, payload_bytes, 0, "payload sent with every request");
ABSL_FLAG(uint64_t, seed, 1, "seed of the key choice");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(10),
          "deadline of each unary call; in stream mode, how long to wait "
          "for outstanding replies after the last request");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(10),
          "every channel must connect within this, or sfload gives up");
ABSL_FLAG(std::optional<absl::Duration>, duration, std::nullopt,
          "length of the measured run (default 10s, unless --calls is "
          "given); the run ends at --duration or --calls, whichever first");
ABSL_FLAG(uint64_t, calls, 0, "calls in the measured run (0: no limit)");
ABSL_FLAG(absl::Duration, warmup, absl::ZeroDuration(),
          "run this long before measuring; those calls are not counted");
ABSL_FLAG(std::string, metrics_url, "",
          "http://HOST:PORT/metrics of the server: scraped before and after "
          "to report fetcher executions per call");
ABSL_FLAG(bool, json, false, "print one JSON object instead of a table");
ABSL_FLAG(bool, fail_on_error, false, "exit 1 if any call failed");

namespace {

using singleflight::bench::ServerCounters;

constexpr absl::Duration kScrapeTimeout = absl::Seconds(5);

int Fail(const std::string& message) {
  std::fprintf(stderr, "sfload: %s\n", message.c_str());
  return 2;
}

absl::StatusOr<ServerCounters> Scrape() {
  return singleflight::bench::ScrapeServerCounters(
      absl::GetFlag(FLAGS_metrics_url), absl::GetFlag(FLAGS_fetcher),
      kScrapeTimeout);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "sfload drives Do calls at a singleflight server and reports "
      "throughput, latency, errors and coalescing.");
  absl::ParseCommandLine(argc, argv);

  // The loader shares the machine with what it measures: the same tuning as
  // singleflightd (server/main.cc) keeps its own cost per call down.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);

  absl::StatusOr<singleflight::bench::KeySpace> keys =
      singleflight::bench::KeySpace::Create(
          absl::GetFlag(FLAGS_keys), absl::GetFlag(FLAGS_key_count),
          absl::GetFlag(FLAGS_zipf_s), absl::GetFlag(FLAGS_key_prefix));
  if (!keys.ok()) return Fail(std::string(keys.status().message()));
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "unary" && mode != "stream") {
    return Fail("--mode must be unary or stream, not \"" + mode + "\"");
  }

  singleflight::bench::LoadOptions options;
  options.target = absl::GetFlag(FLAGS_target);
  options.channels = absl::GetFlag(FLAGS_channels);
  options.stream = mode == "stream";
  options.fetcher = absl::GetFlag(FLAGS_fetcher);
  options.keys =
      std::make_shared<const singleflight::bench::KeySpace>(*std::move(keys));
  options.payload_bytes = absl::GetFlag(FLAGS_payload_bytes);
  options.rate = absl::GetFlag(FLAGS_rate);
  options.concurrency =
      absl::GetFlag(FLAGS_concurrency).value_or(options.rate > 0 ? 10000 : 16);
  options.warmup = absl::GetFlag(FLAGS_warmup);
  options.calls = absl::GetFlag(FLAGS_calls);
  options.duration = absl::GetFlag(FLAGS_duration)
                         .value_or(options.calls > 0 ? absl::InfiniteDuration()
                                                     : absl::Seconds(10));
  options.deadline = absl::GetFlag(FLAGS_deadline);
  options.connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
  options.seed = absl::GetFlag(FLAGS_seed);

  const bool scrape = !absl::GetFlag(FLAGS_metrics_url).empty();
  absl::StatusOr<ServerCounters> before =
      absl::FailedPreconditionError("not scraped");
  if (scrape) {
    // Fail now rather than after the run if the metrics cannot be read.
    before = Scrape();
    if (!before.ok()) return Fail(std::string(before.status().message()));
    options.on_measure_start = [&before] { before = Scrape(); };
  }

  absl::StatusOr<singleflight::bench::LoadReport> report =
      singleflight::bench::RunLoad(options);
  if (!report.ok()) return Fail(std::string(report.status().message()));

  if (scrape) {
    absl::StatusOr<ServerCounters> after = Scrape();
    if (before.ok() && after.ok()) {
      report->server = ServerCounters{after->calls - before->calls,
                                      after->executions - before->executions};
    } else {
      std::fprintf(
          stderr, "sfload: no server counters: %s\n",
          std::string((before.ok() ? after : before).status().message())
              .c_str());
    }
  }

  std::string output = absl::GetFlag(FLAGS_json)
                           ? singleflight::bench::FormatJson(*report)
                           : singleflight::bench::FormatText(*report);
  std::fputs(output.c_str(), stdout);
  std::fflush(stdout);
  return absl::GetFlag(FLAGS_fail_on_error) && report->error_count() > 0 ? 1
                                                                         : 0;
}
