#include "tests/testing/upstream_server.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>

#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"

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
                           request.fail_message());
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
    Metadata metadata;
    for (const auto& [name, value] : context->client_metadata()) {
      metadata.emplace_back(std::string(name.data(), name.size()),
                            std::string(value.data(), value.size()));
    }
    int call_number = server_->RecordCall(request->key(), std::move(metadata));
    reply->set_key(request->key());
    reply->set_value(request->value_size() > 0
                         ? std::string(request->value_size(), 'v')
                         : absl::StrCat("value-of-", request->key()));
    reply->set_call_number(call_number);
    return new Handler(server_, *request);
  }

 private:
  UpstreamServer* const server_;
};

std::unique_ptr<UpstreamServer> UpstreamServer::Start(
    std::shared_ptr<grpc::ServerCredentials> credentials) {
  std::unique_ptr<UpstreamServer> upstream(new UpstreamServer());
  upstream->tls_ = credentials != nullptr;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(
      "127.0.0.1:0",
      credentials != nullptr ? credentials : grpc::InsecureServerCredentials(),
      &upstream->port_);
  builder.RegisterService(upstream->service_.get());
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
