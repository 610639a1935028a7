#include "client/client.h"

#include <chrono>
#include <utility>

namespace singleflight {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

Client::Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : options_(options), stub_(v1::SingleFlight::NewStub(std::move(channel))) {}

std::unique_ptr<Client> Client::Connect(const std::string& target,
                                        ClientOptions options) {
  return std::make_unique<Client>(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()), options);
}

void Client::Prepare(grpc::ClientContext& context) const {
  if (options_.timeout != absl::InfiniteDuration()) {
    context.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoMicroseconds(options_.timeout));
  }
}

absl::StatusOr<DoResult> Client::Do(const std::string& key,
                                    const std::string& fetcher,
                                    const std::string& payload) {
  grpc::ClientContext context;
  Prepare(context);
  v1::DoRequest request;
  request.set_key(key);
  request.set_fetcher(fetcher);
  request.set_payload(payload);
  v1::DoResponse response;
  grpc::Status status = stub_->Do(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return DoResult{std::move(*response.mutable_value()), response.shared()};
}

absl::Status Client::DoStream(
    const std::vector<v1::DoRequest>& requests,
    const std::function<void(const v1::DoResponse&)>& on_reply) {
  grpc::ClientContext context;
  Prepare(context);
  auto stream = stub_->DoStream(&context);
  for (const v1::DoRequest& request : requests) {
    if (!stream->Write(request)) break;  // Finish() below says why.
  }
  stream->WritesDone();
  v1::DoResponse response;
  while (stream->Read(&response)) on_reply(response);
  return FromGrpcStatus(stream->Finish());
}

absl::StatusOr<bool> Client::Forget(const std::string& key,
                                    const std::string& fetcher) {
  grpc::ClientContext context;
  Prepare(context);
  v1::ForgetRequest request;
  request.set_key(key);
  request.set_fetcher(fetcher);
  v1::ForgetResponse response;
  grpc::Status status = stub_->Forget(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.forgotten();
}

absl::StatusOr<v1::InFlightResponse> Client::InFlight() {
  grpc::ClientContext context;
  Prepare(context);
  v1::InFlightResponse response;
  grpc::Status status =
      stub_->InFlight(&context, v1::InFlightRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace singleflight
