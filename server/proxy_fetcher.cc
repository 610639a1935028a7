#include "server/proxy_fetcher.h"

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/client_callback.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/proxy_reply.h"

namespace singleflight {
namespace {

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

}  // namespace

// One upstream call, on the generic bidi API so that a second response
// message can be noticed. Owns itself (self_) until OnDone; the
// cancellation callback reaches it through a weak pointer.
class ProxyFetcher::UpstreamCall
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  UpstreamCall(ProxyUpstream* upstream, std::string method, FetchCallback done,
               size_t max_value_bytes)
      : upstream_(upstream),
        method_(std::move(method)),
        done_(std::move(done)),
        max_value_bytes_(max_value_bytes) {
    upstream_->CallStarted();
    context_ = std::make_unique<grpc::ClientContext>();
  }

  // Releases the context (and its reference to the channel) before telling
  // the upstream the call is over.
  ~UpstreamCall() override {
    done_ = nullptr;
    context_.reset();
    upstream_->CallEnded();
  }

  static void Start(std::shared_ptr<UpstreamCall> call, FetchRequest request,
                    absl::Duration timeout, const Metadata& headers) {
    UpstreamCall* raw = call.get();
    grpc::ClientContext& context = *raw->context_;
    if (timeout != absl::InfiniteDuration()) {
      context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    }
    for (const auto& [name, value] : headers) context.AddMetadata(name, value);
    for (const auto& [name, value] : request.metadata) {
      context.AddMetadata(name, value);
    }
    grpc::Slice payload(std::move(request.payload));
    raw->request_ = grpc::ByteBuffer(&payload, 1);
    raw->self_ = call;
    raw->upstream_->stub().PrepareBidiStreamingCall(&context, raw->method_,
                                                    grpc::StubOptions(), raw);
    raw->StartWriteLast(&raw->request_, grpc::WriteOptions());
    raw->StartRead(&raw->response_);
    raw->StartCall();
    std::weak_ptr<UpstreamCall> weak_call = call;
    call.reset();
    request.cancellation->OnCancel([weak_call = std::move(weak_call)] {
      if (std::shared_ptr<UpstreamCall> live = weak_call.lock()) {
        live->context_->TryCancel();
      }
    });
  }

  void OnReadInitialMetadataDone(bool ok) override {
    if (ok) initial_ = EndToEndMetadata(context_->GetServerInitialMetadata());
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (++messages_ == 1) {
      StartRead(&extra_);
      return;
    }
    context_->TryCancel();
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<UpstreamCall> self = std::move(self_);
    done_(Result(status));
  }

 private:
  absl::StatusOr<std::string> Result(const grpc::Status& status) const {
    if (messages_ > 1) {
      return absl::InternalError(absl::StrCat(
          "the upstream sent more than one response message for ", method_,
          ": it is not a unary method (give the proxy its descriptors, or "
          "do not coalesce it)"));
    }
    Metadata trailing = EndToEndMetadata(context_->GetServerTrailingMetadata());
    if (!status.ok()) {
      return ProxyErrorStatus(
          static_cast<absl::StatusCode>(status.error_code()),
          status.error_message(), initial_, trailing, status.error_details());
    }
    if (messages_ == 0) {
      return absl::InternalError(absl::StrCat("the upstream answered ", method_,
                                              " with no response message"));
    }
    if (response_.Length() > max_value_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "upstream response of ", response_.Length(),
          " bytes exceeds max_value_bytes (", max_value_bytes_, ")"));
    }
    return EncodeProxyReply(initial_, trailing, "", Flatten(response_));
  }

  ProxyUpstream* const upstream_;
  const std::string method_;
  FetchCallback done_;
  const size_t max_value_bytes_;
  std::unique_ptr<grpc::ClientContext> context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  grpc::ByteBuffer extra_;
  // Written by OnReadInitialMetadataDone and OnReadDone, read by OnDone,
  // which gRPC runs after both.
  Metadata initial_;
  int messages_ = 0;
  std::shared_ptr<UpstreamCall> self_;
};

void ProxyFetcher::Fetch(FetchRequest request, FetchCallback done) {
  auto call = std::make_shared<UpstreamCall>(upstream_, method_,
                                             std::move(done), max_value_bytes_);
  UpstreamCall::Start(std::move(call), std::move(request), timeout_, headers_);
}

}  // namespace singleflight
