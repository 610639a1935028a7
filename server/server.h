#ifndef SINGLEFLIGHT_SERVER_SERVER_H_
#define SINGLEFLIGHT_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <prometheus/exposer.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/fetcher_registry.h"
#include "core/group.h"
#include "core/observer_list.h"
#include "core/timer_queue.h"
#include "server/access_control.h"
#include "server/config.h"
#include "server/logging.h"
#include "server/metrics.h"
#include "server/proxy_service.h"
#include "server/service.h"

namespace singleflight {

// A running singleflightd: the SingleFlight service, server reflection and
// the standard health service, on one listening port; in proxy mode, every
// other method is forwarded to the upstream (ProxyService).
//
// Thread-safe, but Shutdown must be called from one thread only.
class SingleFlightServer {
 public:
  // Builds the fetchers and starts serving. Fails on a bad fetcher (the
  // message starts with where it was configured) or an unknown default
  // fetcher, and with UNAVAILABLE if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<SingleFlightServer>> Start(
      const ServerConfig& config);

  // Checks everything Start would, short of binding the ports: builds every
  // fetcher (URIs, plugins, settings), the default fetcher, the token files
  // and the TLS files; returns Start's error for what is wrong.
  static absl::Status Check(const ServerConfig& config);

  ~SingleFlightServer();

  int port() const { return port_; }
  // The port of /metrics, or 0 without ServerConfig::metrics_listen.
  int metrics_port() const { return metrics_port_; }
  const FetcherRegistry& registry() const { return registry_; }

  // Reads the token files (or environment variables) again and uses their
  // tokens for calls checked from now on; calls in progress, and open
  // connections and streams, go on. On an error (a file that cannot be read,
  // an empty token) the tokens in use stay, and the error is returned.
  // For SIGHUP.
  absl::Status ReloadTokens();

  // Reports NOT_SERVING on the health service (for "" and for
  // singleflight.v1.SingleFlight) while calls go on being served as before:
  // call it a while before Shutdown (--drain_grace), so that load balancers'
  // health checks move traffic away before the server stops accepting it.
  void ReportNotServing();

  // Reports NOT_SERVING, stops accepting calls (gRPC sends every connection
  // a GOAWAY; new streams get UNAVAILABLE) and ends idle DoStreams at once.
  // Lets flights in progress finish for up to `drain`, then fails the
  // waiters left with UNAVAILABLE. Returns as soon as nothing is pending:
  // at once when idle, even with idle client connections open (they are
  // closed), and at most about kStreamGrace after `drain` otherwise.
  void Shutdown(absl::Duration drain);

 private:
  SingleFlightServer();

  // How long after the drain the replies left (UNAVAILABLE) have to be
  // written, and their streams to end, before every connection is closed.
  // How often an idle connection is pinged, and how long an answer may take
  // before the connection and its calls are closed.
  static constexpr absl::Duration kKeepaliveTime = absl::Seconds(30);
  static constexpr absl::Duration kKeepaliveTimeout = absl::Seconds(10);
  static constexpr absl::Duration kStreamGrace = absl::Seconds(1);
  // How long connections may take to close by themselves once nothing is
  // pending (replies handed to gRPC being written), before they are closed.
  static constexpr absl::Duration kSettle = absl::Milliseconds(200);

  // Whether no call waits for anything: no flight, no open DoStream, no
  // unary call that waited and is not over (its reply may still be being
  // written). Calls answered at once are not counted: kSettle is theirs.
  bool Idle() const;

  // Destroyed in reverse order: the metrics endpoint, the server (every call
  // over), the fetchers, the timer thread (no callback running), the group,
  // and the metrics the group reported to.
  ServerMetrics metrics_;
  FlightLog flight_log_;
  ObserverList observers_{{&metrics_, &flight_log_}};
  Group group_;
  TimerQueue timers_;
  FetcherRegistry registry_;
  AccessControl access_;
  // Where the tokens come from, for ReloadTokens.
  std::string caller_token_file_;
  std::string admin_token_file_;
  std::unique_ptr<SingleFlightService> service_;
  // Proxy mode; null without an upstream. Destroyed after the server (no
  // call left) and before the group it started flights in.
  std::unique_ptr<ProxyService> proxy_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  int metrics_port_ = 0;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_SERVER_H_
