#include "server/do_stream_reactor.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/call_metadata.h"
#include "server/request_validation.h"

namespace singleflight {
namespace {

void SetStatus(const absl::Status& status, v1::DoResponse& response) {
  response.mutable_status()->set_code(static_cast<int32_t>(status.code()));
  response.mutable_status()->set_message(std::string(status.message()));
}

}  // namespace

DoStreamReactor::DoStreamReactor(grpc::CallbackServerContext* context,
                                 Group* group, const FetcherRegistry& registry,
                                 ServerMetrics* metrics, StreamLimits limits)
    : context_(context),
      group_(group),
      registry_(registry),
      metrics_(metrics),
      max_pending_(limits.max_pending) {
  StartRead(&request_);
}

void DoStreamReactor::OnReadDone(bool ok) {
  if (ok) StartItem(request_);
  bool read_more;
  {
    absl::MutexLock lock(&mu_);
    read_more = ok && !cancelled_;
    // The call cannot finish before this is set, so the next StartRead
    // cannot race with Finish.
    if (!read_more) reads_done_ = true;
  }
  if (read_more) {
    StartRead(&request_);
  } else {
    Proceed();
  }
}

void DoStreamReactor::StartItem(const v1::DoRequest& request) {
  absl::StatusOr<const NamedFetcher*> fetcher =
      ResolveRequest(registry_, request.fetcher(), request.key());
  if (!fetcher.ok()) {
    metrics_->CallEnded(nullptr, fetcher.status().code(), absl::ZeroDuration(),
                        /*stream_item=*/true);
    Refuse(request.id(), fetcher.status());
    return;
  }
  uint64_t sequence = 0;
  bool full;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    full = max_pending_ > 0 && pending_.size() >= max_pending_;
    if (!full) {
      sequence = next_sequence_++;
      pending_.emplace(sequence, std::nullopt);
    }
  }
  if (full) {
    metrics_->Refused(*fetcher, "max_stream_pending");
    metrics_->CallEnded(*fetcher, absl::StatusCode::kResourceExhausted,
                        absl::ZeroDuration(), /*stream_item=*/true);
    Refuse(request.id(),
           absl::ResourceExhaustedError(absl::StrCat(
               "this stream already has ", max_pending_,
               " items waiting; wait for replies before sending more")));
    return;
  }
  uint64_t id = request.id();
  // The waiter may run inside Do (an immediate result), so no lock is held.
  CallMetadata metadata =
      ExtractCallMetadata((*fetcher)->policy, context_->client_metadata());
  Call call{request.key(), request.payload(), metadata.scope,
            &metadata.forwarded};
  const NamedFetcher* named = *fetcher;
  absl::Time started = absl::Now();
  Group::Ticket ticket = group_->Do(
      *named, call, [this, sequence, id, named, started](Outcome outcome) {
        OnItemDone(sequence, id, named, started, outcome);
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
  if (leave) group_->Leave(ticket, absl::CancelledError("stream cancelled"));
}

void DoStreamReactor::Refuse(uint64_t id, const absl::Status& status) {
  v1::DoResponse response;
  response.set_id(id);
  SetStatus(status, response);
  {
    absl::MutexLock lock(&mu_);
    unwritten_.push_back(std::move(response));
  }
  Proceed();
}

void DoStreamReactor::OnItemDone(uint64_t sequence, uint64_t id,
                                 const NamedFetcher* fetcher,
                                 absl::Time started, const Outcome& outcome) {
  metrics_->CallEnded(fetcher, outcome.status().code(), absl::Now() - started,
                      /*stream_item=*/true);
  {
    absl::MutexLock lock(&mu_);
    pending_.erase(sequence);
    if (!cancelled_) {
      v1::DoResponse response;
      response.set_id(id);
      if (outcome.status().ok()) {
        response.set_value(outcome.value());
        response.set_shared(outcome.shared);
      }
      SetStatus(outcome.status(), response);
      unwritten_.push_back(std::move(response));
    }
  }
  Proceed();
}

void DoStreamReactor::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    // A failed write means the stream is broken; OnCancel follows.
    if (!ok) unwritten_.clear();
  }
  Proceed();
}

void DoStreamReactor::OnCancel() {
  std::vector<Group::Ticket> tickets;
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    unwritten_.clear();
    for (const auto& [sequence, ticket] : pending_) {
      if (ticket.has_value()) tickets.push_back(*ticket);
    }
  }
  // Each Leave that succeeds calls OnItemDone at once.
  for (const Group::Ticket& ticket : tickets) {
    group_->Leave(ticket, absl::CancelledError("stream cancelled"));
  }
  Proceed();
}

void DoStreamReactor::Proceed() {
  enum { kNothing, kWrite, kFinish } step = kNothing;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || write_in_flight_) return;
    if (!unwritten_.empty() && !cancelled_) {
      writing_ = std::move(unwritten_.front());
      unwritten_.pop_front();
      write_in_flight_ = true;
      step = kWrite;
    } else if (reads_done_ && pending_.empty()) {
      finished_ = true;
      step = kFinish;
      if (cancelled_) {
        status = grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
      }
    }
  }
  // `writing_` belongs to the write until OnWriteDone; after Finish, OnDone
  // may delete this reactor at any moment.
  if (step == kWrite) StartWrite(&writing_);
  if (step == kFinish) Finish(status);
}

}  // namespace singleflight
