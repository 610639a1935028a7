#ifndef SINGLEFLIGHT_BENCH_LOAD_REPORT_H_
#define SINGLEFLIGHT_BENCH_LOAD_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/metrics_scrape.h"

namespace singleflight {
namespace bench {

// The outcome of a load run, over its measured part (warm-up excluded), and
// how it ran: what sfload prints, as a table for people or as one JSON
// object for scripts.
struct LoadReport {
  // How it ran.
  std::string target;
  std::string mode;  // "unary" or "stream".
  std::string fetcher;
  std::string keys;  // KeySpace::description().
  int channels = 0;
  // Closed loop: callers. Open loop: the cap on calls outstanding.
  int concurrency = 0;
  // Calls per second of the open loop; 0 for a closed loop.
  double rate = 0;

  // What happened.
  double elapsed_seconds = 0;
  uint64_t calls = 0;
  uint64_t ok = 0;
  // OK replies marked shared.
  uint64_t shared = 0;
  // Failed calls by status code name (DEADLINE_EXCEEDED, ...), in code
  // order; codes with no call are left out.
  std::vector<std::pair<std::string, uint64_t>> errors;
  // Latency of OK calls, in nanoseconds.
  struct Latency {
    uint64_t p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
    double mean = 0;
  } latency;
  // How the server's counters moved over the measured part, if scraped.
  std::optional<ServerCounters> server;

  uint64_t error_count() const { return calls - ok; }
  double throughput() const {
    return elapsed_seconds > 0 ? calls / elapsed_seconds : 0;
  }
};

// A compact table, several lines, each ending in '\n'.
std::string FormatText(const LoadReport& report);

// One JSON object on one line, ending in '\n'. Latencies are in
// microseconds; "server" is null when the metrics were not scraped.
std::string FormatJson(const LoadReport& report);

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_LOAD_REPORT_H_
