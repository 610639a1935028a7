#ifndef SINGLEFLIGHT_SERVER_DO_STREAM_REACTOR_H_
#define SINGLEFLIGHT_SERVER_DO_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "core/fetcher_registry.h"
#include "core/group.h"
#include "server/metrics.h"
#include "singleflight/v1/singleflight.grpc.pb.h"

namespace singleflight {

// Bounds on what one DoStream buffers (0: no bound).
struct StreamLimits {
  // Items read and not yet written: waiting on a flight, or on the client.
  size_t max_pending = 0;
  // Bytes of replies not yet written.
  size_t max_buffer_bytes = 0;
};

// One DoStream call, Go's DoChan multiplexed over a bidi stream: each request
// read joins or starts its flight at once; each outcome is queued and written
// as it arrives (one write in flight at a time), echoing the request's id.
// After the client half-closes, the stream ends with OK once every pending
// reply is written; if the call is cancelled, every pending item leaves its
// flight and the stream ends with CANCELLED.
//
// Reactions and waiters may run concurrently; `mu_` guards the shared state.
// StartRead, StartWrite and Finish are never called with `mu_` held (gRPC
// may run a reaction inline). Finish is called once, when no read, write or
// waiter can call back any more; the reactor deletes itself in OnDone.
class DoStreamReactor
    : public grpc::ServerBidiReactor<v1::DoRequest, v1::DoResponse> {
 public:
  DoStreamReactor(grpc::CallbackServerContext* context, Group* group,
                  const FetcherRegistry& registry, ServerMetrics* metrics,
                  StreamLimits limits);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  void StartItem(const v1::DoRequest& request);
  // Queues the reply of an item that failed before joining a flight.
  void Refuse(uint64_t id, const absl::Status& status);
  void OnItemDone(uint64_t sequence, uint64_t id, const NamedFetcher* fetcher,
                  absl::Time started, const Outcome& outcome);
  // Starts the next write, or finishes the call if nothing is left to do.
  void Proceed() ABSL_LOCKS_EXCLUDED(mu_);

  grpc::CallbackServerContext* const context_;
  Group* const group_;
  const FetcherRegistry& registry_;
  ServerMetrics* const metrics_;
  // Items that may wait at once; beyond, RESOURCE_EXHAUSTED (0: no limit).
  const size_t max_pending_;
  v1::DoRequest request_;  // Owned by the read in progress.

  absl::Mutex mu_;
  // Items waiting on a flight, by an internal sequence number (client ids may
  // repeat); the ticket is unset while Group::Do is still being called.
  absl::flat_hash_map<uint64_t, std::optional<Group::Ticket>> pending_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::DoResponse> unwritten_ ABSL_GUARDED_BY(mu_);
  // Owned by the write in flight (see write_in_flight_).
  v1::DoResponse writing_;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_DO_STREAM_REACTOR_H_
