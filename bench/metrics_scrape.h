#ifndef SINGLEFLIGHT_BENCH_METRICS_SCRAPE_H_
#define SINGLEFLIGHT_BENCH_METRICS_SCRAPE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace singleflight {
namespace bench {

// One sample line of the Prometheus text exposition format.
struct MetricSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

// Parses the Prometheus text format (comments and blank lines skipped,
// label values unescaped, timestamps ignored). Fails with INVALID_ARGUMENT,
// naming the line, on a line it cannot read.
absl::StatusOr<std::vector<MetricSample>> ParseMetricsText(
    absl::string_view text);

// The sum of the values of the samples named `name` that carry every label
// of `match` (an empty `match` takes them all); 0 if none does. `found`, if
// not null, is set to whether any did.
double SumSeries(const std::vector<MetricSample>& samples,
                 absl::string_view name,
                 const std::vector<std::pair<std::string, std::string>>& match,
                 bool* found = nullptr);

// The counters of a singleflightd that tell how much coalescing happened.
struct ServerCounters {
  // singleflight_calls_total: Do calls and stream items answered.
  double calls = 0;
  // singleflight_executions_total: fetcher executions started.
  double executions = 0;
};

// GETs `url` and sums both counters over every label set, or only over
// fetcher="`fetcher`" when it is not empty. Fails if the page cannot be
// fetched or parsed, or lacks either counter.
absl::StatusOr<ServerCounters> ScrapeServerCounters(absl::string_view url,
                                                    absl::string_view fetcher,
                                                    absl::Duration timeout);

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_METRICS_SCRAPE_H_
