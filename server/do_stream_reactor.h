#ifndef SINGLEFLIGHT_SERVER_DO_STREAM_REACTOR_H_
#define SINGLEFLIGHT_SERVER_DO_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "core/fetcher_registry.h"
#include "core/group.h"
#include "server/metrics.h"

namespace singleflight {

// Bounds on what one DoStream buffers (0: no bound). At either bound the
// stream stops reading until it is back under: HTTP/2 flow control then
// slows the client down.
struct StreamLimits {
  // Items read and not yet written: waiting on a flight, queued, or being
  // written.
  size_t max_pending = 0;
  // Bytes of replies queued or being written, and of the requests (key and
  // payload) of items waiting on a flight.
  size_t max_buffer_bytes = 0;
};

class DoStreamReactor;

// The message of a DoStream ended or refused by a drain.
inline constexpr char kShuttingDownMessage[] =
    "the server is shutting down; try another replica";

// The open DoStreams of a service, so that a shutdown can drain them.
//
// Thread-safe. Lock order: this registry's lock, then a stream's.
class DoStreamRegistry {
 public:
  DoStreamRegistry() = default;
  DoStreamRegistry(const DoStreamRegistry&) = delete;
  DoStreamRegistry& operator=(const DoStreamRegistry&) = delete;

  // Adds a stream; returns true if draining has begun (it must end at once).
  bool Add(DoStreamReactor* stream) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes a stream, from its OnDone.
  void Remove(DoStreamReactor* stream) ABSL_LOCKS_EXCLUDED(mu_);

  // Makes every open stream, and every one added later, stop reading and end
  // once its pending replies are written (see DoStreamReactor).
  void BeginDrain() ABSL_LOCKS_EXCLUDED(mu_);
  bool draining() const ABSL_LOCKS_EXCLUDED(mu_);
  int size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_set<DoStreamReactor*> streams_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

// One DoStream call, Go's DoChan multiplexed over a bidi stream: each request
// read joins or starts its flight at once; each outcome is queued and written
// as it arrives (one write in flight at a time), echoing the request's id.
// The call is raw (ByteBuffer in and out): a request that does not parse is
// answered with INVALID_ARGUMENT (id salvaged from its bytes, else 0) and the
// stream goes on; replies carry the flight's value without a copy.
//
// Back-pressure: while the items not yet written reach
// StreamLimits::max_pending, or their replies' bytes reach max_buffer_bytes,
// no read is started; whichever thread brings the stream back under starts
// the next one.
//
// How it ends:
//   client half-closes      -> OK once every reply is written
//   call cancelled          -> pending items leave their flights; CANCELLED
//   Drain(), half-closed    -> OK once every reply is written
//   Drain(), still sending  -> no more reads; UNAVAILABLE once every reply to
//                              the items read is written (at once if idle)
//
// Threads: gRPC reactions (OnReadDone, OnWriteDone, OnCancel), Group waiters
// (OnItemDone, on fetcher and timer threads) and Drain may run concurrently;
// `mu_` guards the shared state. Every change of state and the choice of the
// next step (write, read, finish) happen in one critical section
// (NextStepLocked), and the step is run after unlocking (gRPC may run a
// reaction inline): outside a reaction, a thread touches the reactor after
// unlocking only to run the step it chose, and not at all if it chose none. A
// chosen read or write pins the reactor (`busy_`) until started, and Finish is
// chosen only when nothing is pinned, no write is in flight and no item waits
// on a flight, so no waiter can call back after it. gRPC calls OnDone, which
// deletes the reactor, only after Finish and after every reaction has returned.
class DoStreamReactor
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // Registers in `streams` (REQUIRES: outlives the reactor) and starts
  // reading, or ends at once with UNAVAILABLE if the registry is draining.
  DoStreamReactor(grpc::CallbackServerContext* context, Group* group,
                  const FetcherRegistry& registry, ServerMetrics* metrics,
                  StreamLimits limits, DoStreamRegistry* streams);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  friend class DoStreamRegistry;

  // What a thread does after unlocking `mu_`.
  struct Step {
    bool write = false;  // StartWrite(&writing_); pins the reactor.
    bool read = false;   // StartRead(&request_); pins the reactor.
    std::optional<grpc::Status> finish;  // Finish; then touch nothing.
  };

  // From the registry (under its lock): stop reading, end once written.
  Step Drain() ABSL_LOCKS_EXCLUDED(mu_);

  // Handles one request read (`request_`).
  void StartItem() ABSL_LOCKS_EXCLUDED(mu_);
  // Answers an item with `status` without a flight.
  void Refuse(uint64_t id, const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void OnItemDone(uint64_t sequence, uint64_t id, const NamedFetcher* fetcher,
                  absl::Time started, size_t request_bytes, Outcome outcome)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Queues a reply.
  void QueueLocked(grpc::ByteBuffer reply) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Chooses the next step from the state, and claims it.
  Step NextStepLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `step` and whatever follows it. Static, so that an empty step does
  // not touch `reactor`, which another thread may have finished and deleted;
  // after a Finish too, `reactor` may be gone.
  static void Run(DoStreamReactor* reactor, Step step)
      ABSL_LOCKS_EXCLUDED(reactor->mu_);
  // The limit that keeps another item from being read now, or null.
  const char* LimitReachedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::CallbackServerContext* const context_;
  Group* const group_;
  const FetcherRegistry& registry_;
  ServerMetrics* const metrics_;
  const StreamLimits limits_;
  DoStreamRegistry* const streams_;
  grpc::ByteBuffer request_;  // Owned by the read in flight (see reading_).
  grpc::ByteBuffer writing_;  // Owned by the write in flight.

  absl::Mutex mu_;
  // Items waiting on a flight, by an internal sequence number (client ids may
  // repeat); the ticket is unset while Group::Do is still being called.
  absl::flat_hash_map<uint64_t, std::optional<Group::Ticket>> pending_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<grpc::ByteBuffer> unwritten_ ABSL_GUARDED_BY(mu_);
  // Bytes of the replies in unwritten_ and writing_.
  size_t buffered_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t writing_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Keys and payloads of the items in pending_.
  size_t waiting_request_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;  // A read is chosen or started.
  // Reading stopped at a limit (counted once per pause).
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  // Threads between choosing a read or write and starting it.
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;  // Half-closed or broken.
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_DO_STREAM_REACTOR_H_
