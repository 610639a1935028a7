#include "tests/testing/upstream_server.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>

#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace singleflight {

// One call of Upstream/Get, from its start to its Finish. Finishes exactly
// once: at once, from the timer (unless cancelled first), or on
// cancellation, for a call that hangs or is still waiting for its timer.
class UpstreamServer::Handler : public grpc::ServerUnaryReactor {
 public:
  // Starts the call. REQUIRES: called from the method handler, so that
  // OnCancel() comes after it.
  Handler(UpstreamServer* server, const testing::GetRequest& request)
      : server_(server), key_(request.key()) {
    if (request.hang()) {
      hangs_ = true;
      return;
    }
    grpc::Status outcome =
        request.fail_code() == 0
            ? grpc::Status::OK
            : grpc::Status(static_cast<grpc::StatusCode>(request.fail_code()),
                           request.fail_message(), request.fail_details());
    if (request.delay_ms() <= 0) {
      Finish(outcome);
      return;
    }
    timer_ = server_->timers_.Schedule(absl::Milliseconds(request.delay_ms()),
                                       [this, outcome] { Finish(outcome); });
  }

  void OnCancel() override {
    server_->RecordCancelled(key_);
    if (hangs_ || (timer_.has_value() && server_->timers_.Cancel(*timer_))) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "upstream: cancelled"));
    }
  }

  void OnDone() override { delete this; }

 private:
  UpstreamServer* const server_;
  const std::string key_;
  bool hangs_ = false;
  std::optional<TimerQueue::TimerId> timer_;
};

class UpstreamServer::Service : public testing::Upstream::CallbackService {
 public:
  explicit Service(UpstreamServer* server) : server_(server) {}

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const testing::GetRequest* request,
                                testing::GetReply* reply) override {
    int call_number = server_->RecordCall(context, request->key());
    Answer(*request, call_number, *reply);
    return new Handler(server_, *request);
  }

  grpc::ServerWriteReactor<testing::GetReply>* Watch(
      grpc::CallbackServerContext* context,
      const testing::GetRequest* request) override;
  grpc::ServerBidiReactor<testing::GetRequest, testing::GetReply>* Exchange(
      grpc::CallbackServerContext* context) override;
  grpc::ServerReadReactor<testing::GetRequest>* Collect(
      grpc::CallbackServerContext* context, testing::GetReply* reply) override;

  // What Get answers to `request`, the `call_number`th call of its key.
  static void Answer(const testing::GetRequest& request, int call_number,
                     testing::GetReply& reply) {
    reply.set_key(request.key());
    reply.set_value(request.value_size() > 0
                        ? std::string(request.value_size(), 'v')
                        : absl::StrCat("value-of-", request.key()));
    reply.set_call_number(call_number);
  }

  UpstreamServer* server() const { return server_; }

 private:
  UpstreamServer* const server_;
};

// Upstream/Watch: three replies, or none until cancelled if it hangs.
class UpstreamServer::WatchHandler
    : public grpc::ServerWriteReactor<testing::GetReply> {
 public:
  WatchHandler(UpstreamServer* server, const testing::GetRequest& request,
               int call_number)
      : server_(server), request_(request), call_number_(call_number) {
    if (!request.hang()) WriteNext();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return;
    WriteNext();
  }
  void OnCancel() override {
    server_->RecordCancelled(request_.key());
    if (request_.hang()) Finish(grpc::Status(grpc::StatusCode::CANCELLED, ""));
  }
  void OnDone() override { delete this; }

 private:
  void WriteNext() {
    if (sent_ == 3) {
      Finish(grpc::Status::OK);
      return;
    }
    ++sent_;
    reply_.Clear();
    reply_.set_key(request_.key());
    reply_.set_value(absl::StrCat("watch-", sent_, "-of-", request_.key()));
    reply_.set_call_number(call_number_);
    StartWrite(&reply_);
  }

  UpstreamServer* const server_;
  const testing::GetRequest request_;
  const int call_number_;
  int sent_ = 0;
  testing::GetReply reply_;
};

// Upstream/Exchange: one reply per request.
class UpstreamServer::ExchangeHandler
    : public grpc::ServerBidiReactor<testing::GetRequest, testing::GetReply> {
 public:
  ExchangeHandler(UpstreamServer::Service* service,
                  grpc::CallbackServerContext* context)
      : service_(service), context_(context) {
    StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    UpstreamServer::Service::Answer(
        request_, service_->server()->RecordCall(request_.key(), {}), reply_);
    StartWrite(&reply_);
  }
  void OnWriteDone(bool ok) override {
    if (ok) StartRead(&request_);
  }
  void OnCancel() override { service_->server()->RecordCancelled("exchange"); }
  void OnDone() override { delete this; }

 private:
  UpstreamServer::Service* const service_;
  grpc::CallbackServerContext* const context_;
  testing::GetRequest request_;
  testing::GetReply reply_;
};

// Upstream/Collect: joins the keys of every request.
class UpstreamServer::CollectHandler
    : public grpc::ServerReadReactor<testing::GetRequest> {
 public:
  CollectHandler(UpstreamServer* server, grpc::CallbackServerContext* context,
                 testing::GetReply* reply)
      : server_(server), context_(context), reply_(reply) {
    StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (ok) {
      keys_.push_back(request_.key());
      StartRead(&request_);
      return;
    }
    std::string joined = absl::StrJoin(keys_, ",");
    reply_->set_key(joined);
    reply_->set_value(joined);
    reply_->set_call_number(server_->RecordCall(context_, joined));
    Finish(grpc::Status::OK);
  }
  void OnDone() override { delete this; }

 private:
  UpstreamServer* const server_;
  grpc::CallbackServerContext* const context_;
  testing::GetReply* const reply_;
  testing::GetRequest request_;
  std::vector<std::string> keys_;
};

grpc::ServerWriteReactor<testing::GetReply>* UpstreamServer::Service::Watch(
    grpc::CallbackServerContext* context, const testing::GetRequest* request) {
  return new WatchHandler(server_, *request,
                          server_->RecordCall(context, request->key()));
}

grpc::ServerBidiReactor<testing::GetRequest, testing::GetReply>*
UpstreamServer::Service::Exchange(grpc::CallbackServerContext* context) {
  context->AddInitialMetadata("x-upstream-key", "exchange");
  return new ExchangeHandler(this, context);
}

grpc::ServerReadReactor<testing::GetRequest>* UpstreamServer::Service::Collect(
    grpc::CallbackServerContext* context, testing::GetReply* reply) {
  return new CollectHandler(server_, context, reply);
}

// A server reflection service that knows one file: upstream.proto. (The
// tests carry their own copy of reflection.proto, not gRPC's reflection
// library, whose copy of the same messages would clash with it.)
class UpstreamServer::Reflection
    : public grpc::reflection::v1alpha::ServerReflection::CallbackService {
 public:
  grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                          grpc::reflection::v1alpha::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext*) override {
    return new Stream();
  }

 private:
  class Stream : public grpc::ServerBidiReactor<
                     grpc::reflection::v1alpha::ServerReflectionRequest,
                     grpc::reflection::v1alpha::ServerReflectionResponse> {
   public:
    Stream() { StartRead(&request_); }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      response_.Clear();
      *response_.mutable_original_request() = request_;
      const auto* file = testing::GetRequest::descriptor()->file();
      if (request_.has_list_services()) {
        response_.mutable_list_services_response()->add_service()->set_name(
            std::string(testing::Upstream::service_full_name()));
      } else if (request_.has_file_containing_symbol() &&
                 file->FindServiceByName("Upstream") != nullptr &&
                 request_.file_containing_symbol() ==
                     testing::Upstream::service_full_name()) {
        google::protobuf::FileDescriptorProto proto;
        file->CopyTo(&proto);
        response_.mutable_file_descriptor_response()->add_file_descriptor_proto(
            proto.SerializeAsString());
      } else {
        response_.mutable_error_response()->set_error_code(
            static_cast<int>(grpc::StatusCode::NOT_FOUND));
      }
      StartWrite(&response_);
    }
    void OnWriteDone(bool ok) override {
      if (ok) StartRead(&request_);
    }
    void OnDone() override { delete this; }

   private:
    grpc::reflection::v1alpha::ServerReflectionRequest request_;
    grpc::reflection::v1alpha::ServerReflectionResponse response_;
  };
};

std::unique_ptr<UpstreamServer> UpstreamServer::Start(
    std::shared_ptr<grpc::ServerCredentials> credentials, bool reflection) {
  std::unique_ptr<UpstreamServer> upstream(new UpstreamServer());
  upstream->tls_ = credentials != nullptr;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(
      "127.0.0.1:0",
      credentials != nullptr ? credentials : grpc::InsecureServerCredentials(),
      &upstream->port_);
  builder.RegisterService(upstream->service_.get());
  if (reflection) {
    upstream->reflection_ = std::make_unique<Reflection>();
    builder.RegisterService(upstream->reflection_.get());
  }
  upstream->server_ = builder.BuildAndStart();
  if (upstream->server_ == nullptr || upstream->port_ == 0) return nullptr;
  return upstream;
}

UpstreamServer::UpstreamServer() : service_(std::make_unique<Service>(this)) {}

UpstreamServer::~UpstreamServer() {
  if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
}

std::string UpstreamServer::GetUri() const {
  return absl::StrCat(tls_ ? "grpcs" : "grpc", "://127.0.0.1:", port_,
                      "/singleflight.testing.Upstream/Get");
}

int UpstreamServer::Calls(absl::string_view key) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(key);
  return it == calls_.end() ? 0 : it->second;
}

int UpstreamServer::TotalCalls() const {
  absl::MutexLock lock(&mu_);
  return total_calls_;
}

bool UpstreamServer::WaitForCalls(absl::string_view key, int calls,
                                  absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, key, calls]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = calls_.find(key);
    return it != calls_.end() && it->second >= calls;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

UpstreamServer::Metadata UpstreamServer::LastMetadata(
    absl::string_view key) const {
  absl::MutexLock lock(&mu_);
  auto it = metadata_.find(key);
  return it == metadata_.end() ? Metadata() : it->second;
}

bool UpstreamServer::WaitForCancelled(absl::string_view key,
                                      absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto cancelled = [this, key]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancelled_.contains(key);
  };
  return mu_.AwaitWithTimeout(absl::Condition(&cancelled), timeout);
}

int UpstreamServer::RecordCall(grpc::CallbackServerContext* context,
                               const std::string& key) {
  Metadata metadata;
  for (const auto& [name, value] : context->client_metadata()) {
    metadata.emplace_back(std::string(name.data(), name.size()),
                          std::string(value.data(), value.size()));
  }
  int call_number = RecordCall(key, std::move(metadata));
  context->AddInitialMetadata("x-upstream-key", key);
  context->AddTrailingMetadata("x-upstream-call", absl::StrCat(call_number));
  return call_number;
}

int UpstreamServer::RecordCall(const std::string& key, Metadata metadata) {
  absl::MutexLock lock(&mu_);
  ++total_calls_;
  metadata_[key] = std::move(metadata);
  return ++calls_[key];
}

void UpstreamServer::RecordCancelled(const std::string& key) {
  absl::MutexLock lock(&mu_);
  cancelled_.insert(key);
}

}  // namespace singleflight
