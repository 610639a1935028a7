#include "server/forwarded_call.h"

#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/client_callback.h>

#include <chrono>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/refused_call.h"

namespace singleflight {
namespace {

// Counts a forwarded call as open, on both counts, and makes its upstream
// context: the caller's deadline and `metadata`.
std::unique_ptr<grpc::ClientContext> OpenUpstreamCall(
    const grpc::GenericCallbackServerContext& context, const Metadata& metadata,
    ProxyUpstream* upstream, std::atomic<int>* open_calls) {
  open_calls->fetch_add(1, std::memory_order_relaxed);
  upstream->CallStarted();
  auto client_context = std::make_unique<grpc::ClientContext>();
  if (context.deadline() != std::chrono::system_clock::time_point::max()) {
    client_context->set_deadline(context.deadline());
  }
  for (const auto& [name, value] : metadata) {
    client_context->AddMetadata(name, value);
  }
  return client_context;
}

// Once the call (and its upstream context) is gone. The open count first:
// the owner of both waits for CallEnded (ProxyUpstream::WaitForCalls)
// before it may go.
void CloseUpstreamCall(ProxyUpstream* upstream, std::atomic<int>* open_calls) {
  open_calls->fetch_sub(1, std::memory_order_release);
  upstream->CallEnded();
}

// Both halves of one forwarded call. The caller's side (Downstream) and the
// upstream's (Upstream) are reactors of their own whose callbacks may run at
// once on different threads; every decision, and the gRPC operation it
// starts, is taken under `mu_`. (gRPC 1.51 never runs a reaction inline on
// the thread that starts an operation: its reactions are not inlineable, so
// starting one under the lock cannot re-enter it.)
//
// The upstream reactor is held (AddHold) while the proxy may still start an
// operation on it from the caller's side: one hold for writing (released
// once the caller half-closed or is gone, or the upstream ended) and one for
// reading (released once the upstream's messages ended or the caller is
// gone), so that its OnDone never races an operation. The caller's reactor
// needs none: its Finish comes from the upstream's OnDone, after which
// nothing starts an operation on either side.
class ForwardedCall {
 public:
  // `metadata`: what goes up with the call (ForwardableMetadata).
  ForwardedCall(grpc::GenericCallbackServerContext* context,
                ProxyUpstream* upstream, const Metadata& metadata,
                std::atomic<int>* open_calls)
      : server_context_(context),
        upstream_(upstream),
        open_calls_(open_calls),
        downstream_(this),
        upstream_side_(this) {
    client_context_ =
        OpenUpstreamCall(*context, metadata, upstream_, open_calls_);
  }

  grpc::ServerGenericBidiReactor* Start() {
    absl::MutexLock lock(&mu_);
    upstream_->stub().PrepareBidiStreamingCall(
        client_context_.get(), server_context_->method(), grpc::StubOptions(),
        &upstream_side_);
    upstream_side_.AddMultipleHolds(2);
    upstream_side_.StartRead(&from_upstream_);
    upstream_side_.StartCall();
    downstream_.StartRead(&from_caller_);
    return &downstream_;
  }

 private:
  class Downstream : public grpc::ServerGenericBidiReactor {
   public:
    explicit Downstream(ForwardedCall* call) : call_(call) {}
    void OnReadDone(bool ok) override { call_->CallerRead(ok); }
    void OnWriteDone(bool ok) override { call_->CallerWritten(ok); }
    void OnCancel() override { call_->client_context_->TryCancel(); }
    void OnDone() override { call_->Ended(/*caller=*/true); }

   private:
    ForwardedCall* const call_;
  };

  class Upstream
      : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    explicit Upstream(ForwardedCall* call) : call_(call) {}
    void OnReadInitialMetadataDone(bool ok) override {
      call_->UpstreamHeaders(ok);
    }
    void OnReadDone(bool ok) override { call_->UpstreamRead(ok); }
    void OnWriteDone(bool ok) override { call_->UpstreamWritten(ok); }
    void OnDone(const grpc::Status& status) override {
      call_->UpstreamEnded(status);
    }

   private:
    ForwardedCall* const call_;
  };

  void StopWritingUpstream() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!writing_upstream_open_) return;
    writing_upstream_open_ = false;
    upstream_side_.RemoveHold();
  }
  void StopReadingUpstream() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!reading_upstream_open_) return;
    reading_upstream_open_ = false;
    upstream_side_.RemoveHold();
  }

  // A message from the caller (ok), or the end of the caller's messages.
  void CallerRead(bool ok) {
    absl::MutexLock lock(&mu_);
    if (!writing_upstream_open_) return;
    if (ok) {
      upstream_side_.StartWrite(&from_caller_);
      return;
    }
    // A caller that cancelled did not finish its request stream: the
    // upstream must not take it as complete.
    if (server_context_->IsCancelled()) {
      client_context_->TryCancel();
    } else {
      upstream_side_.StartWritesDone();
    }
    StopWritingUpstream();
  }

  void UpstreamWritten(bool ok) {
    absl::MutexLock lock(&mu_);
    if (!writing_upstream_open_) return;
    if (ok) {
      downstream_.StartRead(&from_caller_);
    } else {
      // The upstream takes no more messages: its status is on its way.
      StopWritingUpstream();
    }
  }

  void UpstreamHeaders(bool ok) {
    absl::MutexLock lock(&mu_);
    headers_seen_ = true;
    if (!ok) {
      // The call failed before its metadata came: a message that did come
      // is dropped, and the upstream's status will end the call.
      if (message_waiting_) {
        message_waiting_ = false;
        client_context_->TryCancel();
        StopReadingUpstream();
        StopWritingUpstream();
      }
      return;
    }
    for (const auto& [name, value] :
         EndToEndMetadata(client_context_->GetServerInitialMetadata())) {
      server_context_->AddInitialMetadata(name, value);
    }
    if (message_waiting_) {
      // The first message goes out with the metadata.
      message_waiting_ = false;
      writing_caller_ = true;
      downstream_.StartWrite(&from_upstream_);
    } else {
      downstream_.StartSendInitialMetadata();
    }
  }

  // A message from the upstream (ok), or the end of its messages.
  void UpstreamRead(bool ok) {
    absl::MutexLock lock(&mu_);
    if (!ok) {
      // The upstream's call is over: it takes no more messages either.
      StopReadingUpstream();
      StopWritingUpstream();
      return;
    }
    if (!headers_seen_) {
      // Its initial metadata must reach the caller first.
      message_waiting_ = true;
      return;
    }
    writing_caller_ = true;
    downstream_.StartWrite(&from_upstream_);
  }

  void CallerWritten(bool ok) {
    absl::MutexLock lock(&mu_);
    writing_caller_ = false;
    if (pending_finish_.has_value()) {
      downstream_.Finish(*pending_finish_);
      pending_finish_.reset();
      return;
    }
    if (!reading_upstream_open_) return;
    if (ok) {
      upstream_side_.StartRead(&from_upstream_);
      return;
    }
    // The caller is gone: nobody reads the upstream any more.
    client_context_->TryCancel();
    StopReadingUpstream();
    StopWritingUpstream();
  }

  void UpstreamEnded(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [name, value] :
           EndToEndMetadata(client_context_->GetServerTrailingMetadata())) {
        server_context_->AddTrailingMetadata(name, value);
      }
      if (writing_caller_) {
        pending_finish_ = status;
      } else {
        downstream_.Finish(status);
      }
    }
    Ended(/*caller=*/false);
  }

  // One side's OnDone; the second deletes the call.
  void Ended(bool caller) {
    {
      absl::MutexLock lock(&mu_);
      (caller ? caller_done_ : upstream_done_) = true;
      if (!caller_done_ || !upstream_done_) return;
    }
    std::atomic<int>* open_calls = open_calls_;
    ProxyUpstream* upstream = upstream_;
    delete this;
    CloseUpstreamCall(upstream, open_calls);
  }

  grpc::GenericCallbackServerContext* const server_context_;
  ProxyUpstream* const upstream_;
  std::atomic<int>* const open_calls_;
  std::unique_ptr<grpc::ClientContext> client_context_;
  Downstream downstream_;
  Upstream upstream_side_;
  // One message in flight each way.
  grpc::ByteBuffer from_caller_;
  grpc::ByteBuffer from_upstream_;

  absl::Mutex mu_;
  bool writing_upstream_open_ ABSL_GUARDED_BY(mu_) = true;
  bool reading_upstream_open_ ABSL_GUARDED_BY(mu_) = true;
  bool headers_seen_ ABSL_GUARDED_BY(mu_) = false;
  bool message_waiting_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_caller_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> pending_finish_ ABSL_GUARDED_BY(mu_);
  bool caller_done_ ABSL_GUARDED_BY(mu_) = false;
  bool upstream_done_ ABSL_GUARDED_BY(mu_) = false;
};

// The caller's end-to-end metadata, to send up; INVALID_ARGUMENT naming an
// entry that gRPC could not send.
absl::StatusOr<Metadata> ForwardableMetadata(
    const grpc::GenericCallbackServerContext& context,
    bool strip_authorization) {
  Metadata metadata;
  for (const auto& [name, value] : context.client_metadata()) {
    absl::string_view name_view(name.data(), name.size());
    absl::string_view value_view(value.data(), value.size());
    if (!IsEndToEndMetadata(name_view) ||
        (strip_authorization && name_view == "authorization")) {
      continue;
    }
    if (!IsSendableMetadata(name_view, value_view)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "request metadata \"", absl::CHexEscape(name_view),
          "\" cannot be forwarded: names must be lower case, and values of "
          "names not ending in -bin printable ASCII"));
    }
    metadata.emplace_back(std::string(name_view), std::string(value_view));
  }
  return metadata;
}

// A call of a method known to be unary, forwarded with the fewest gRPC
// operations: one read of the request, one unary upstream call (message,
// half-close and metadata in one batch), and one write of the answer with
// its status. Deletes itself once both its OnDone and the upstream call's
// callback have run.
class ForwardedUnaryCall : public grpc::ServerGenericBidiReactor {
 public:
  ForwardedUnaryCall(grpc::GenericCallbackServerContext* context,
                     ProxyUpstream* upstream, const Metadata& metadata,
                     std::atomic<int>* open_calls)
      : server_context_(context), upstream_(upstream), open_calls_(open_calls) {
    client_context_ =
        OpenUpstreamCall(*context, metadata, upstream_, open_calls_);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INTERNAL, "no request message"));
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      upstream_running_ = true;
    }
    upstream_->stub().UnaryCall(
        client_context_.get(), server_context_->method(), grpc::StubOptions(),
        &request_, &response_,
        [this](grpc::Status status) { UpstreamDone(status); });
  }

  void OnCancel() override { client_context_->TryCancel(); }

  void OnDone() override { Ended(/*caller=*/true); }

 private:
  void UpstreamDone(const grpc::Status& status) {
    for (const auto& [name, value] :
         EndToEndMetadata(client_context_->GetServerInitialMetadata())) {
      server_context_->AddInitialMetadata(name, value);
    }
    for (const auto& [name, value] :
         EndToEndMetadata(client_context_->GetServerTrailingMetadata())) {
      server_context_->AddTrailingMetadata(name, value);
    }
    if (status.ok()) {
      StartWriteAndFinish(&response_, grpc::WriteOptions(), status);
    } else {
      Finish(status);
    }
    Ended(/*caller=*/false);
  }

  // OnDone, or the end of the upstream call's callback; the last one
  // deletes the call.
  void Ended(bool caller) {
    {
      absl::MutexLock lock(&mu_);
      if (caller) {
        caller_done_ = true;
      } else {
        upstream_running_ = false;
      }
      if (!caller_done_ || upstream_running_) return;
    }
    std::atomic<int>* open_calls = open_calls_;
    ProxyUpstream* upstream = upstream_;
    delete this;
    CloseUpstreamCall(upstream, open_calls);
  }

  grpc::GenericCallbackServerContext* const server_context_;
  ProxyUpstream* const upstream_;
  std::atomic<int>* const open_calls_;
  std::unique_ptr<grpc::ClientContext> client_context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;

  absl::Mutex mu_;
  bool upstream_running_ ABSL_GUARDED_BY(mu_) = false;
  bool caller_done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerGenericBidiReactor* StartForwardedCall(
    grpc::GenericCallbackServerContext* context, ProxyUpstream* upstream,
    bool known_unary, bool strip_authorization, std::atomic<int>* open_calls) {
  absl::StatusOr<Metadata> metadata =
      ForwardableMetadata(*context, strip_authorization);
  if (!metadata.ok()) {
    return new RefusedCall(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                     std::string(metadata.status().message())));
  }
  if (known_unary) {
    return new ForwardedUnaryCall(context, upstream, *metadata, open_calls);
  }
  auto* call = new ForwardedCall(context, upstream, *metadata, open_calls);
  return call->Start();
}

}  // namespace singleflight
