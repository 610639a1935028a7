#include "fetchers/grpc_fetcher.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "fetchers/grpc_channel.h"

namespace singleflight {
namespace {

absl::Status BadUri(const FetcherUri& uri, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("gRPC fetcher URI \"", uri.text, "\" ", problem, "; want ",
                   uri.scheme, "://HOST:PORT/package.Service/Method"));
}

// The value an upstream response is, unless it is too large.
absl::StatusOr<std::string> ToValue(const grpc::ByteBuffer& response,
                                    size_t max_value_bytes) {
  if (response.Length() > max_value_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("upstream response of ", response.Length(),
                     " bytes exceeds max_value_bytes (", max_value_bytes, ")"));
  }
  std::vector<grpc::Slice> slices;
  grpc::Status dumped = response.Dump(&slices);
  if (!dumped.ok()) {
    return absl::InternalError(
        absl::StrCat("unreadable upstream response: ", dumped.error_message()));
  }
  std::string value;
  value.reserve(response.Length());
  for (const grpc::Slice& slice : slices) {
    value.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return value;
}

}  // namespace

// One upstream call: what gRPC uses until the call completes.
struct GrpcFetcher::Call {
  explicit Call(GrpcFetcher* fetcher) : fetcher(fetcher) {}

  // Tells the fetcher once everything the call holds is gone: the context
  // (and its reference to the channel), and `done` with whatever it owns,
  // so that nothing of the fetcher's is released after CallEnded.
  ~Call() {
    done = nullptr;
    request.Clear();
    response.Clear();
    context.reset();
    fetcher->CallEnded(this);
  }

  // Hands the outcome of the call to `done`.
  void Finish(const grpc::Status& status, size_t max_value_bytes) {
    if (status.ok()) {
      done(ToValue(response, max_value_bytes));
    } else {
      done(absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message()));
    }
  }

  GrpcFetcher* const fetcher;
  std::unique_ptr<grpc::ClientContext> context =
      std::make_unique<grpc::ClientContext>();
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  FetchCallback done;
};

absl::StatusOr<std::unique_ptr<Fetcher>> GrpcFetcher::Create(
    const FetcherUri& uri, const FetcherPolicy& policy,
    const FetcherEnvironment& environment) {
  if (!uri.query.empty()) {
    return BadUri(uri, "has settings, which it takes none of");
  }
  absl::string_view rest = uri.target;
  if (!absl::ConsumePrefix(&rest, "//")) return BadUri(uri, "lacks //");
  size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) {
    return BadUri(uri, "lacks /package.Service/Method");
  }
  absl::string_view address = rest.substr(0, slash);
  absl::string_view method = rest.substr(slash);
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port <= 0 ||
      port > 65535) {
    return BadUri(uri, "lacks HOST:PORT");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(method, '/');
  if (parts.size() != 3 || parts[1].empty() || parts[2].empty()) {
    return BadUri(uri, "lacks /package.Service/Method");
  }
  FetcherPolicy checked = policy;
  absl::StatusOr<Metadata> headers =
      LowerCaseAndCheck(policy.headers, "header");
  if (!headers.ok()) return headers.status();
  checked.headers = *std::move(headers);

  const BackendTls& tls = policy.tls;
  if (!tls.empty() && uri.scheme != "grpcs") {
    return absl::InvalidArgumentError("tls settings need a grpcs:// URI");
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeBackendChannel(
      std::string(address), uri.scheme == "grpcs", tls, policy.max_value_bytes);
  if (!channel.ok()) return channel.status();
  return std::make_unique<GrpcFetcher>(*std::move(channel), std::string(method),
                                       checked);
}

GrpcFetcher::GrpcFetcher(std::shared_ptr<grpc::Channel> channel,
                         std::string method, const FetcherPolicy& policy)
    : stub_(std::move(channel)),
      method_(std::move(method)),
      timeout_(policy.timeout),
      headers_(policy.headers),
      max_value_bytes_(policy.max_value_bytes) {}

GrpcFetcher::~GrpcFetcher() {
  std::vector<std::weak_ptr<Call>> calls;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [raw, call] : calls_) calls.push_back(call);
  }
  for (const std::weak_ptr<Call>& weak_call : calls) {
    if (std::shared_ptr<Call> call = weak_call.lock()) {
      call->context->TryCancel();
    }
  }
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &GrpcFetcher::NoCalls));
}

void GrpcFetcher::CallEnded(Call* call) {
  absl::MutexLock lock(&mu_);
  calls_.erase(call);
}

void GrpcFetcher::Fetch(FetchRequest request, FetchCallback done) {
  absl::StatusOr<Metadata> forwarded =
      LowerCaseAndCheck(std::move(request.metadata), "forwarded metadata");
  if (!forwarded.ok()) {
    done(forwarded.status());
    return;
  }
  auto call = std::make_shared<Call>(this);
  call->done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    calls_.emplace(call.get(), call);
  }
  if (timeout_ != absl::InfiniteDuration()) {
    call->context->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  }
  for (const auto& [name, value] : headers_) {
    call->context->AddMetadata(name, value);
  }
  for (const auto& [name, value] : *forwarded) {
    call->context->AddMetadata(name, value);
  }
  grpc::Slice payload(request.payload);
  call->request = grpc::ByteBuffer(&payload, 1);

  // The completion callback owns the call; the cancellation callback, which
  // may run at any time, from any thread, uses it only while it exists.
  Call* raw = call.get();
  std::weak_ptr<Call> weak_call = call;
  stub_.UnaryCall(
      raw->context.get(), method_, grpc::StubOptions(), &raw->request,
      &raw->response,
      [call = std::move(call), max_value_bytes = max_value_bytes_](
          grpc::Status status) { call->Finish(status, max_value_bytes); });
  request.cancellation->OnCancel([weak_call = std::move(weak_call)] {
    if (std::shared_ptr<Call> call = weak_call.lock()) {
      call->context->TryCancel();
    }
  });
}

}  // namespace singleflight
