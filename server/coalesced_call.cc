#include "server/coalesced_call.h"

#include <openssl/sha.h>

#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/call_metadata.h"
#include "server/proxy_reply.h"
#include "server/proxy_upstream.h"

namespace singleflight {
namespace {

// Responses up to this size are copied into the reply: one small slice is
// cheaper than a reference-counted one.
constexpr size_t kCopyLimit = 1024;

// How early a cancellation may come and still be the caller's deadline.
constexpr std::chrono::milliseconds kDeadlineSlack(100);

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!buffer.Dump(&slices).ok()) return bytes;
  bytes.reserve(buffer.Length());
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

void ReleaseResult(void* result) {
  delete static_cast<std::shared_ptr<const FlightResult>*>(result);
}

// `message`, a view into `result`'s value, as a reply that holds `result`
// until gRPC has sent it.
grpc::ByteBuffer SharedMessage(absl::string_view message,
                               std::shared_ptr<const FlightResult> result) {
  if (message.size() <= kCopyLimit) {
    grpc::Slice slice(message.data(), message.size());
    return grpc::ByteBuffer(&slice, 1);
  }
  grpc::Slice slice(const_cast<char*>(message.data()), message.size(),
                    &ReleaseResult,
                    new std::shared_ptr<const FlightResult>(std::move(result)));
  return grpc::ByteBuffer(&slice, 1);
}

class CoalescedCall : public grpc::ServerGenericBidiReactor {
 public:
  CoalescedCall(grpc::GenericCallbackServerContext* context, Group* group,
                const NamedFetcher* fetcher, ServerMetrics* metrics,
                std::atomic<int>* open_calls)
      : context_(context),
        group_(group),
        fetcher_(fetcher),
        metrics_(metrics),
        open_calls_(open_calls) {
    open_calls_->fetch_add(1, std::memory_order_relaxed);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (++reads_ == 1) {
      if (!ok) {
        Answer(absl::InternalError("no request message"));
        return;
      }
      // The request is complete when the caller half-closes.
      StartRead(&extra_);
      return;
    }
    if (ok) {
      Answer(absl::InternalError(
          "more than one request message for a unary method"));
      return;
    }
    Join();
  }

  void OnCancel() override {
    Group::Ticket ticket;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      if (!joined_) return;
      ticket = ticket_;
    }
    bool deadline_passed = context_->deadline() <=
                           std::chrono::system_clock::now() + kDeadlineSlack;
    group_->Leave(ticket,
                  deadline_passed
                      ? absl::DeadlineExceededError("deadline exceeded")
                      : absl::CancelledError("cancelled by the caller"));
  }

  void OnDone() override {
    std::atomic<int>* open_calls = open_calls_;
    delete this;
    // Last: a drain that sees 0 may destroy what owns the count.
    open_calls->fetch_sub(1, std::memory_order_release);
  }

 private:
  void Join() {
    std::string bytes = Flatten(request_);
    request_.Clear();
    std::string key = ProxyFlightKey(bytes);
    CallMetadata metadata =
        ExtractCallMetadata(fetcher_->policy, context_->client_metadata());
    for (const auto& [name, value] : metadata.forwarded) {
      if (!IsSendableMetadata(name, value)) {
        Answer(absl::InvalidArgumentError(absl::StrCat(
            "request metadata \"", name,
            "\" cannot be forwarded: values of names not ending in -bin must "
            "be printable ASCII")));
        return;
      }
    }
    Call call{key, bytes, metadata.scope, &metadata.forwarded};
    absl::MutexLock lock(&mu_);
    // A caller that reset its stream ended its reads before OnCancel runs.
    if (cancelled_ || context_->IsCancelled()) {
      Answer(absl::CancelledError("cancelled by the caller"));
      return;
    }
    // The waiter may run at once, inside Do, or on any thread later; it
    // takes no lock of this call's.
    ticket_ = group_->Do(*fetcher_, call,
                         [this](Outcome outcome) { Deliver(outcome); });
    joined_ = true;
  }

  // Finishes the call with an error of the tier's own (no upstream answer).
  void Answer(const absl::Status& status) {
    metrics_->CallEnded(fetcher_, status.code(), absl::Now() - started_,
                        /*stream_item=*/false);
    Finish(grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                        std::string(status.message())));
  }

  void Deliver(const Outcome& outcome) {
    const absl::Status& status = outcome.status();
    metrics_->CallEnded(fetcher_, status.code(), absl::Now() - started_,
                        /*stream_item=*/false);
    std::optional<std::string> error_reply;
    absl::string_view encoded;
    if (status.ok()) {
      encoded = outcome.value();
    } else {
      error_reply = ProxyReplyOf(status);
      if (!error_reply.has_value()) {
        Finish(grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                            std::string(status.message())));
        return;
      }
      encoded = *error_reply;
    }
    absl::StatusOr<ProxyReplyView> reply = DecodeProxyReply(encoded);
    if (!reply.ok()) {
      Finish(grpc::Status(grpc::StatusCode::INTERNAL,
                          std::string(reply.status().message())));
      return;
    }
    for (const auto& [name, value] : reply->initial) {
      context_->AddInitialMetadata(std::string(name), std::string(value));
    }
    for (const auto& [name, value] : reply->trailing) {
      context_->AddTrailingMetadata(std::string(name), std::string(value));
    }
    if (!status.ok()) {
      Finish(grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                          std::string(status.message()),
                          std::string(reply->details)));
      return;
    }
    response_ = SharedMessage(reply->message, outcome.result);
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }

  grpc::GenericCallbackServerContext* const context_;
  Group* const group_;
  const NamedFetcher* const fetcher_;
  ServerMetrics* const metrics_;
  std::atomic<int>* const open_calls_;
  const absl::Time started_ = absl::Now();
  // Touched only by the read chain, one read at a time.
  int reads_ = 0;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer extra_;
  // Written once, by the waiter.
  grpc::ByteBuffer response_;

  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool joined_ ABSL_GUARDED_BY(mu_) = false;
  Group::Ticket ticket_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::string ProxyFlightKey(absl::string_view request_bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(request_bytes.data()),
         request_bytes.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

grpc::ServerGenericBidiReactor* StartCoalescedCall(
    grpc::GenericCallbackServerContext* context, Group* group,
    const NamedFetcher* fetcher, ServerMetrics* metrics,
    std::atomic<int>* open_calls) {
  return new CoalescedCall(context, group, fetcher, metrics, open_calls);
}

}  // namespace singleflight
