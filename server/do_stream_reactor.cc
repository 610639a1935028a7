#include "server/do_stream_reactor.h"

#include <memory>
#include <utility>
#include <vector>

#include "server/call_metadata.h"
#include "server/do_response_encoder.h"
#include "server/request_decoding.h"
#include "server/request_validation.h"
#include "singleflight/v1/singleflight.pb.h"

namespace singleflight {
namespace {

// The reply to an item that failed without a flight.
grpc::ByteBuffer FailureReply(uint64_t id, const absl::Status& status) {
  return EncodeDoStreamResponse(
      id, std::make_shared<const FlightResult>(FlightResult{status, ""}),
      /*shared=*/false);
}

}  // namespace

bool DoStreamRegistry::Add(DoStreamReactor* stream) {
  absl::MutexLock lock(&mu_);
  streams_.insert(stream);
  return draining_;
}

void DoStreamRegistry::Remove(DoStreamReactor* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

void DoStreamRegistry::BeginDrain() {
  std::vector<std::pair<DoStreamReactor*, DoStreamReactor::Step>> steps;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    // A stream cannot be deleted while listed here (OnDone waits for this
    // lock), but its step may call OnDone inline, so it runs after unlocking:
    // until then the step keeps the stream alive (see DoStreamReactor).
    for (DoStreamReactor* stream : streams_) {
      DoStreamReactor::Step step = stream->Drain();
      if (step.write || step.read || step.finish) {
        steps.emplace_back(stream, std::move(step));
      }
    }
  }
  for (auto& [stream, step] : steps) {
    DoStreamReactor::Run(stream, std::move(step));
  }
}

bool DoStreamRegistry::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

int DoStreamRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

DoStreamReactor::DoStreamReactor(grpc::CallbackServerContext* context,
                                 Group* group, const FetcherRegistry& registry,
                                 ServerMetrics* metrics, StreamLimits limits,
                                 DoStreamRegistry* streams)
    : context_(context),
      group_(group),
      registry_(registry),
      metrics_(metrics),
      limits_(limits),
      streams_(streams) {
  bool draining = streams_->Add(this);
  Step step;
  {
    absl::MutexLock lock(&mu_);
    draining_ = draining;
    step = NextStepLocked();
  }
  Run(this, std::move(step));
}

void DoStreamReactor::OnDone() {
  streams_->Remove(this);
  delete this;
}

DoStreamReactor::Step DoStreamReactor::Drain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  return NextStepLocked();
}

void DoStreamReactor::OnReadDone(bool ok) {
  if (ok) StartItem();
  Step step;
  {
    absl::MutexLock lock(&mu_);
    reading_ = false;
    if (!ok) reads_done_ = true;
    step = NextStepLocked();
  }
  Run(this, std::move(step));
}

void DoStreamReactor::StartItem() {
  v1::DoRequest request;
  absl::Status decoded = DecodeDoRequest(request_, &request);
  if (!decoded.ok()) {
    metrics_->CallEnded(nullptr, decoded.code(), absl::ZeroDuration(),
                        /*stream_item=*/true);
    grpc::Slice bytes;
    uint64_t id = 0;
    if (request_.DumpToSingleSlice(&bytes).ok()) {
      id = SalvageRequestId(absl::string_view(
          reinterpret_cast<const char*>(bytes.begin()), bytes.size()));
    }
    Refuse(id, decoded);
    return;
  }
  absl::StatusOr<const NamedFetcher*> fetcher =
      ResolveRequest(registry_, request.fetcher(), request.key());
  if (!fetcher.ok()) {
    metrics_->CallEnded(nullptr, fetcher.status().code(), absl::ZeroDuration(),
                        /*stream_item=*/true);
    Refuse(request.id(), fetcher.status());
    return;
  }
  // What the item holds while it waits (the fetch's copy of key and
  // payload), charged against max_buffer_bytes until its waiter runs.
  const size_t request_bytes = request.key().size() + request.payload().size();
  uint64_t sequence;
  {
    absl::MutexLock lock(&mu_);
    // A stream that is draining or cancelled answers no new item: it ends
    // with a status that is not OK.
    if (finished_ || draining_ || cancelled_) return;
    sequence = next_sequence_++;
    pending_.emplace(sequence, std::nullopt);
    waiting_request_bytes_ += request_bytes;
  }
  uint64_t id = request.id();
  // The waiter may run inside Do (an immediate result), so no lock is held.
  // This item, in pending_ until its waiter runs, keeps the reactor alive.
  CallMetadata metadata =
      ExtractCallMetadata((*fetcher)->policy, context_->client_metadata());
  Call call{request.key(), request.payload(), metadata.scope,
            &metadata.forwarded};
  const NamedFetcher* named = *fetcher;
  absl::Time started = absl::Now();
  Group::Ticket ticket = group_->Do(
      *named, call,
      [this, sequence, id, named, started, request_bytes](Outcome outcome) {
        OnItemDone(sequence, id, named, started, request_bytes,
                   std::move(outcome));
      });
  bool leave = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = pending_.find(sequence);
    if (it != pending_.end()) {
      it->second = ticket;
      leave = cancelled_;  // OnCancel ran while Do was being called.
    }
  }
  // Still inside OnReadDone: gRPC keeps the reactor alive.
  if (leave) group_->Leave(ticket, absl::CancelledError("stream cancelled"));
}

void DoStreamReactor::Refuse(uint64_t id, const absl::Status& status) {
  grpc::ByteBuffer reply = FailureReply(id, status);
  Step step;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || draining_ || cancelled_) return;
    QueueLocked(std::move(reply));
    step = NextStepLocked();
  }
  Run(this, std::move(step));
}

void DoStreamReactor::OnItemDone(uint64_t sequence, uint64_t id,
                                 const NamedFetcher* fetcher,
                                 absl::Time started, size_t request_bytes,
                                 Outcome outcome) {
  // Runs on any thread; until its item leaves pending_ below, the reactor
  // cannot finish.
  metrics_->CallEnded(fetcher, outcome.status().code(), absl::Now() - started,
                      /*stream_item=*/true);
  grpc::ByteBuffer reply =
      EncodeDoStreamResponse(id, std::move(outcome.result), outcome.shared,
                             outcome.age, outcome.stale);
  Step step;
  {
    absl::MutexLock lock(&mu_);
    pending_.erase(sequence);
    waiting_request_bytes_ -= request_bytes;
    if (!cancelled_) QueueLocked(std::move(reply));
    step = NextStepLocked();
  }
  Run(this, std::move(step));
}

void DoStreamReactor::QueueLocked(grpc::ByteBuffer reply) {
  buffered_bytes_ += reply.Length();
  unwritten_.push_back(std::move(reply));
}

void DoStreamReactor::OnWriteDone(bool ok) {
  Step step;
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    buffered_bytes_ -= writing_bytes_;
    writing_bytes_ = 0;
    // A failed write means the stream is broken; OnCancel follows.
    if (!ok) {
      unwritten_.clear();
      buffered_bytes_ = 0;
    }
    step = NextStepLocked();
  }
  Run(this, std::move(step));
}

void DoStreamReactor::OnCancel() {
  std::vector<Group::Ticket> tickets;
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    unwritten_.clear();
    buffered_bytes_ = writing_bytes_;
    for (const auto& [sequence, ticket] : pending_) {
      if (ticket.has_value()) tickets.push_back(*ticket);
    }
  }
  // Each Leave that succeeds calls OnItemDone at once.
  for (const Group::Ticket& ticket : tickets) {
    group_->Leave(ticket, absl::CancelledError("stream cancelled"));
  }
  Step step;
  {
    absl::MutexLock lock(&mu_);
    step = NextStepLocked();
  }
  Run(this, std::move(step));
}

const char* DoStreamReactor::LimitReachedLocked() const {
  size_t items =
      pending_.size() + unwritten_.size() + (write_in_flight_ ? 1 : 0);
  if (limits_.max_pending > 0 && items >= limits_.max_pending) {
    return "max_stream_pending";
  }
  if (limits_.max_buffer_bytes > 0 &&
      buffered_bytes_ + waiting_request_bytes_ >= limits_.max_buffer_bytes) {
    return "max_stream_buffer_bytes";
  }
  return nullptr;
}

DoStreamReactor::Step DoStreamReactor::NextStepLocked() {
  Step step;
  if (finished_) return step;
  if (!write_in_flight_ && !unwritten_.empty()) {
    writing_ = std::move(unwritten_.front());
    unwritten_.pop_front();
    writing_bytes_ = writing_.Length();
    write_in_flight_ = true;
    step.write = true;
  }
  bool stop_reading = reads_done_ || draining_ || cancelled_;
  if (!reading_ && !stop_reading) {
    const char* limit = LimitReachedLocked();
    if (limit == nullptr) {
      reading_ = true;
      read_paused_ = false;
      step.read = true;
    } else if (!read_paused_) {
      read_paused_ = true;
      metrics_->StreamReadPaused(limit);  // Lock-free: fine under mu_.
    }
  }
  if (step.write || step.read) {
    ++busy_;
    return step;
  }
  // A read still outstanding after a drain or a cancellation ends with
  // ok=false once the call is finished; gRPC calls OnDone after it.
  if (busy_ > 0 || write_in_flight_ || !pending_.empty() ||
      !unwritten_.empty() || !stop_reading) {
    return step;
  }
  finished_ = true;
  if (cancelled_) {
    step.finish = grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
  } else if (reads_done_) {
    step.finish = grpc::Status::OK;
  } else {
    step.finish =
        grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDownMessage);
  }
  return step;
}

void DoStreamReactor::Run(DoStreamReactor* reactor, Step step) {
  while (step.write || step.read) {
    // The pin taken with this step keeps the reactor from finishing.
    if (step.write) reactor->StartWrite(&reactor->writing_);
    if (step.read) reactor->StartRead(&reactor->request_);
    absl::MutexLock lock(&reactor->mu_);
    --reactor->busy_;
    step = reactor->NextStepLocked();
  }
  // Deciding to finish was this thread's alone; OnDone may follow at once.
  if (step.finish) reactor->Finish(*step.finish);
}

}  // namespace singleflight
