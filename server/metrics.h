#ifndef SINGLEFLIGHT_SERVER_METRICS_H_
#define SINGLEFLIGHT_SERVER_METRICS_H_

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/fetcher_registry.h"
#include "core/flight_observer.h"
#include "core/group.h"

namespace singleflight {

// The Prometheus metrics of a singleflightd, by fetcher:
//   singleflight_calls_total{fetcher,code}        Do calls and stream items,
//                                                 by outcome
//   singleflight_stream_items_total{fetcher}      DoStream items
//   singleflight_executions_total{fetcher}        fetcher executions started
//   singleflight_joined_total{fetcher}            callers who joined a flight
//   singleflight_forgets_total{fetcher,forgotten} Forget calls
//   singleflight_execution_duration_seconds{fetcher}  histogram
//   singleflight_wait_duration_seconds{fetcher}       histogram, per caller
//   singleflight_rejected_total{fetcher,reason}   calls refused by a limit
//   singleflight_stream_read_pauses_total{limit}  DoStreams that stopped
//                                                 reading (back-pressure)
//   singleflight_flights_in_flight{fetcher}, singleflight_waiters{fetcher}
//                                                 gauges, read at scrape time
//   singleflight_cache_{hits,stale_hits,misses,refreshes,refresh_failures,
//     evictions}_total{fetcher}, singleflight_cache_{bytes,entries}{fetcher}
//                                                 fetchers with a cache
//                                                 policy, read at scrape time
//   singleflight_build_info{version,commit}       always 1
// Requests refused before a fetcher was chosen count under fetcher="".
//
// Thread-compatible while fetchers are added with AddFetcher (before
// serving); after that, every method is thread-safe, and lock-free for those
// fetchers. Fetchers added while serving (AddFetcherWhileServing: the
// proxy's coalesced methods, made on first use) are looked up under a lock.
class ServerMetrics : public FlightObserver {
 public:
  ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Creates the series of `fetcher`. REQUIRES: not yet serving.
  void AddFetcher(const NamedFetcher& fetcher);

  // Creates the series of `fetcher` while serving, labelled `label` (which
  // several fetchers may share). Thread-safe. The fetcher's address is kept
  // as a key (never dereferenced).
  void AddFetcherWhileServing(const NamedFetcher& fetcher,
                              const std::string& label);

  // Makes the gauges read `group`'s flights at each scrape.
  // REQUIRES: not yet serving; `group` and `registry` outlive this object.
  void WatchFlights(const Group* group, const FetcherRegistry* registry);

  // One caller (a Do call or a stream item) got its outcome after `waited`.
  // `fetcher` is null when the request was refused before one was chosen.
  void CallEnded(const NamedFetcher* fetcher, absl::StatusCode code,
                 absl::Duration waited, bool stream_item);

  void Forgot(const NamedFetcher& fetcher, bool forgotten);

  // FlightObserver.
  void ExecutionStarted(const NamedFetcher& fetcher) override;
  void ExecutionEnded(const NamedFetcher& fetcher, const absl::Status& status,
                      absl::Duration duration) override;
  void Joined(const NamedFetcher& fetcher) override;
  void Rejected(const NamedFetcher& fetcher, const char* limit) override;

  // A call refused by a limit (for example "max_waiters") or by access
  // control ("unauthenticated", "permission_denied").
  void Refused(const NamedFetcher* fetcher, const char* reason);

  // A DoStream stopped reading requests because it reached `limit`
  // ("max_stream_pending" or "max_stream_buffer_bytes"): its client sends
  // faster than it reads the replies. Lock-free.
  void StreamReadPaused(const char* limit);

  // What an Exposer serves.
  std::vector<std::weak_ptr<prometheus::Collectable>> collectables() const;

 private:
  static constexpr int kCodes = 17;  // google.rpc.Code OK..UNAUTHENTICATED.

  // The series of one fetcher; pointers into the families below.
  struct FetcherSeries {
    std::array<prometheus::Counter*, kCodes> calls;
    prometheus::Counter* stream_items;
    prometheus::Counter* executions;
    prometheus::Counter* joined;
    prometheus::Counter* forgotten;
    prometheus::Counter* not_forgotten;
    prometheus::Histogram* execution_duration;
    prometheus::Histogram* wait_duration;
  };
  class FlightGauges;

  FetcherSeries& SeriesOf(const NamedFetcher* fetcher);
  FetcherSeries MakeSeries(const std::string& name);

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<FlightGauges> gauges_;
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Family<prometheus::Counter>& stream_items_;
  prometheus::Family<prometheus::Counter>& executions_;
  prometheus::Family<prometheus::Counter>& joined_;
  prometheus::Family<prometheus::Counter>& forgets_;
  prometheus::Family<prometheus::Counter>& rejected_;
  prometheus::Family<prometheus::Counter>& stream_read_pauses_;
  // Its two series, made at construction so that counting takes no lock.
  prometheus::Counter* pending_pauses_;
  prometheus::Counter* buffer_pauses_;
  prometheus::Family<prometheus::Histogram>& execution_duration_;
  prometheus::Family<prometheus::Histogram>& wait_duration_;
  FetcherSeries no_fetcher_;
  absl::flat_hash_map<const NamedFetcher*, FetcherSeries> by_fetcher_;
  absl::Mutex late_mu_;
  absl::node_hash_map<const NamedFetcher*, FetcherSeries> late_by_fetcher_
      ABSL_GUARDED_BY(late_mu_);
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_METRICS_H_
