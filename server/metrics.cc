#include "server/metrics.h"

#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>

#include <map>
#include <utility>

#include "absl/strings/string_view.h"
#include "server/build_info.h"

namespace singleflight {
namespace {

// From 100 µs to a minute: cache-fast answers to slow origins.
const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
  return *buckets;
}

prometheus::MetricFamily GaugeFamily(std::string name, std::string help) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = prometheus::MetricType::Gauge;
  return family;
}

}  // namespace

// Reads the flights in progress when Prometheus scrapes.
class ServerMetrics::FlightGauges : public prometheus::Collectable {
 public:
  FlightGauges(const Group* group, const FetcherRegistry* registry)
      : group_(group), registry_(registry) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::map<std::string, std::pair<double, double>> by_fetcher;
    for (const std::string& name : registry_->Names()) by_fetcher[name];
    for (const FlightInfo& flight : group_->InFlight()) {
      auto& [flights, waiters] = by_fetcher[flight.fetcher];
      flights += 1;
      waiters += flight.waiters;
    }
    std::vector<prometheus::MetricFamily> families = CacheFamilies();
    prometheus::MetricFamily flights = GaugeFamily(
        "singleflight_flights_in_flight", "Flights in progress, by fetcher.");
    prometheus::MetricFamily waiters = GaugeFamily(
        "singleflight_waiters", "Callers waiting on a flight, by fetcher.");
    for (const auto& [fetcher, counts] : by_fetcher) {
      prometheus::ClientMetric metric;
      metric.label = {{"fetcher", fetcher}};
      metric.gauge.value = counts.first;
      flights.metric.push_back(metric);
      metric.gauge.value = counts.second;
      waiters.metric.push_back(metric);
    }
    families.push_back(std::move(flights));
    families.push_back(std::move(waiters));
    return families;
  }

  // The counters of every fetcher's cache (ResultCache::Stats).
  std::vector<prometheus::MetricFamily> CacheFamilies() const {
    struct Counter {
      const char* name;
      const char* help;
      uint64_t ResultCache::Stats::*field;
      prometheus::MetricType type;
    };
    static const Counter kCounters[] = {
        {"singleflight_cache_hits_total",
         "Calls answered by a fresh cached value or kept error.",
         &ResultCache::Stats::hits, prometheus::MetricType::Counter},
        {"singleflight_cache_stale_hits_total",
         "Calls answered by a stale cached value (revalidating, or instead "
         "of an error).",
         &ResultCache::Stats::stale_hits, prometheus::MetricType::Counter},
        {"singleflight_cache_misses_total",
         "Calls that found nothing usable in the cache.",
         &ResultCache::Stats::misses, prometheus::MetricType::Counter},
        {"singleflight_cache_refreshes_total",
         "Background refreshes started (stale or early).",
         &ResultCache::Stats::refreshes, prometheus::MetricType::Counter},
        {"singleflight_cache_refresh_failures_total",
         "Background refreshes that ended without a value to keep.",
         &ResultCache::Stats::refresh_failures,
         prometheus::MetricType::Counter},
        {"singleflight_cache_evictions_total",
         "Cached values evicted to stay within max_bytes.",
         &ResultCache::Stats::evictions, prometheus::MetricType::Counter},
        {"singleflight_cache_bytes", "Bytes held by the cache.",
         &ResultCache::Stats::bytes, prometheus::MetricType::Gauge},
        {"singleflight_cache_entries", "Values held by the cache.",
         &ResultCache::Stats::entries, prometheus::MetricType::Gauge},
    };
    std::vector<prometheus::MetricFamily> families;
    for (const Counter& counter : kCounters) {
      prometheus::MetricFamily family;
      family.name = counter.name;
      family.help = counter.help;
      family.type = counter.type;
      families.push_back(std::move(family));
    }
    for (const std::string& name : registry_->Names()) {
      absl::StatusOr<const NamedFetcher*> fetcher = registry_->Find(name);
      if (!fetcher.ok() || (*fetcher)->cache == nullptr) continue;
      ResultCache::Stats stats = (*fetcher)->cache->stats();
      for (size_t i = 0; i < families.size(); ++i) {
        prometheus::ClientMetric metric;
        metric.label = {{"fetcher", name}};
        double value = static_cast<double>(stats.*kCounters[i].field);
        if (kCounters[i].type == prometheus::MetricType::Counter) {
          metric.counter.value = value;
        } else {
          metric.gauge.value = value;
        }
        families[i].metric.push_back(std::move(metric));
      }
    }
    return families;
  }

 private:
  const Group* const group_;
  const FetcherRegistry* const registry_;
};

ServerMetrics::ServerMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      calls_(prometheus::BuildCounter()
                 .Name("singleflight_calls_total")
                 .Help("Do calls and DoStream items, by fetcher and outcome "
                       "(gRPC status code).")
                 .Register(*registry_)),
      stream_items_(prometheus::BuildCounter()
                        .Name("singleflight_stream_items_total")
                        .Help("DoStream items, by fetcher.")
                        .Register(*registry_)),
      executions_(prometheus::BuildCounter()
                      .Name("singleflight_executions_total")
                      .Help("Fetcher executions started, by fetcher.")
                      .Register(*registry_)),
      joined_(prometheus::BuildCounter()
                  .Name("singleflight_joined_total")
                  .Help("Callers who shared a flight (or a lingering value) "
                        "instead of starting an execution, by fetcher.")
                  .Register(*registry_)),
      forgets_(prometheus::BuildCounter()
                   .Name("singleflight_forgets_total")
                   .Help("Forget calls, by fetcher and whether a flight was "
                         "in progress.")
                   .Register(*registry_)),
      rejected_(prometheus::BuildCounter()
                    .Name("singleflight_rejected_total")
                    .Help("Calls refused by a limit or by access control, by "
                          "fetcher and reason.")
                    .Register(*registry_)),
      stream_read_pauses_(
          prometheus::BuildCounter()
              .Name("singleflight_stream_read_pauses_total")
              .Help("Times a DoStream stopped reading requests because its "
                    "unwritten replies reached a limit, by limit.")
              .Register(*registry_)),
      execution_duration_(prometheus::BuildHistogram()
                              .Name("singleflight_execution_duration_seconds")
                              .Help("Duration of fetcher executions.")
                              .Register(*registry_)),
      wait_duration_(prometheus::BuildHistogram()
                         .Name("singleflight_wait_duration_seconds")
                         .Help("Time from a caller's request to its outcome.")
                         .Register(*registry_)),
      no_fetcher_(MakeSeries("")) {
  prometheus::BuildGauge()
      .Name("singleflight_build_info")
      .Help("Always 1; its labels say what the server was built from.")
      .Register(*registry_)
      .Add({{"version", BuildVersion()}, {"commit", BuildCommit()}})
      .Set(1);
  pending_pauses_ = &stream_read_pauses_.Add({{"limit", "max_stream_pending"}});
  buffer_pauses_ =
      &stream_read_pauses_.Add({{"limit", "max_stream_buffer_bytes"}});
}

ServerMetrics::FetcherSeries ServerMetrics::MakeSeries(
    const std::string& name) {
  FetcherSeries series;
  for (int code = 0; code < kCodes; ++code) {
    series.calls[code] = &calls_.Add(
        {{"fetcher", name},
         {"code",
          absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}});
  }
  series.stream_items = &stream_items_.Add({{"fetcher", name}});
  series.executions = &executions_.Add({{"fetcher", name}});
  series.joined = &joined_.Add({{"fetcher", name}});
  series.forgotten = &forgets_.Add({{"fetcher", name}, {"forgotten", "true"}});
  series.not_forgotten =
      &forgets_.Add({{"fetcher", name}, {"forgotten", "false"}});
  series.execution_duration =
      &execution_duration_.Add({{"fetcher", name}}, DurationBuckets());
  series.wait_duration =
      &wait_duration_.Add({{"fetcher", name}}, DurationBuckets());
  return series;
}

void ServerMetrics::AddFetcher(const NamedFetcher& fetcher) {
  by_fetcher_.emplace(&fetcher, MakeSeries(fetcher.name));
}

void ServerMetrics::AddFetcherWhileServing(const NamedFetcher& fetcher,
                                           const std::string& label) {
  // prometheus-cpp hands back the series a label already has.
  FetcherSeries series = MakeSeries(label);
  absl::MutexLock lock(&late_mu_);
  late_by_fetcher_.emplace(&fetcher, series);
}

void ServerMetrics::WatchFlights(const Group* group,
                                 const FetcherRegistry* registry) {
  gauges_ = std::make_shared<FlightGauges>(group, registry);
}

ServerMetrics::FetcherSeries& ServerMetrics::SeriesOf(
    const NamedFetcher* fetcher) {
  if (fetcher == nullptr) return no_fetcher_;
  auto it = by_fetcher_.find(fetcher);
  if (it != by_fetcher_.end()) return it->second;
  absl::MutexLock lock(&late_mu_);
  auto late = late_by_fetcher_.find(fetcher);
  // Stable: a node map's values do not move.
  return late == late_by_fetcher_.end() ? no_fetcher_ : late->second;
}

void ServerMetrics::CallEnded(const NamedFetcher* fetcher,
                              absl::StatusCode code, absl::Duration waited,
                              bool stream_item) {
  FetcherSeries& series = SeriesOf(fetcher);
  int index = static_cast<int>(code);
  series.calls[index >= 0 && index < kCodes ? index : 2]->Increment();
  if (stream_item) series.stream_items->Increment();
  if (fetcher != nullptr) {
    series.wait_duration->Observe(absl::ToDoubleSeconds(waited));
  }
}

void ServerMetrics::Forgot(const NamedFetcher& fetcher, bool forgotten) {
  FetcherSeries& series = SeriesOf(&fetcher);
  (forgotten ? series.forgotten : series.not_forgotten)->Increment();
}

void ServerMetrics::ExecutionStarted(const NamedFetcher& fetcher) {
  SeriesOf(&fetcher).executions->Increment();
}

void ServerMetrics::ExecutionEnded(const NamedFetcher& fetcher,
                                   const absl::Status& status,
                                   absl::Duration duration) {
  SeriesOf(&fetcher).execution_duration->Observe(
      absl::ToDoubleSeconds(duration));
}

void ServerMetrics::Joined(const NamedFetcher& fetcher) {
  SeriesOf(&fetcher).joined->Increment();
}

void ServerMetrics::Rejected(const NamedFetcher& fetcher, const char* limit) {
  Refused(&fetcher, limit);
}

void ServerMetrics::Refused(const NamedFetcher* fetcher, const char* reason) {
  // Rare: a family lookup (under prometheus-cpp's lock) is cheap enough.
  rejected_
      .Add({{"fetcher", fetcher == nullptr ? "" : fetcher->name},
            {"reason", reason}})
      .Increment();
}

void ServerMetrics::StreamReadPaused(const char* limit) {
  (absl::string_view(limit) == "max_stream_pending" ? pending_pauses_
                                                    : buffer_pauses_)
      ->Increment();
}

std::vector<std::weak_ptr<prometheus::Collectable>>
ServerMetrics::collectables() const {
  std::vector<std::weak_ptr<prometheus::Collectable>> result = {registry_};
  if (gauges_ != nullptr) result.push_back(gauges_);
  return result;
}

}  // namespace singleflight
