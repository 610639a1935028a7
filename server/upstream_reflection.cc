#include "server/upstream_reflection.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/client_callback.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/upstream_reflection.pb.h"

namespace singleflight {
namespace {

constexpr char kReflectionMethod[] =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

// One reflection stream: writes every request, reads every response, and
// reports how the stream ended.
class Exchange
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit Exchange(const std::vector<internal::ReflectionRequest>& requests) {
    for (const internal::ReflectionRequest& request : requests) {
      grpc::Slice slice(request.SerializeAsString());
      requests_.emplace_back(&slice, 1);
    }
  }

  // Runs the stream to its end.
  grpc::Status Run(grpc::GenericStub& stub, absl::Duration timeout) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    stub.PrepareBidiStreamingCall(&context_, kReflectionMethod,
                                  grpc::StubOptions(), this);
    WriteNext();
    StartRead(&response_);
    StartCall();
    done_.WaitForNotification();
    return status_;
  }

  std::vector<internal::ReflectionResponse>& responses() { return responses_; }

  void OnWriteDone(bool ok) override {
    if (ok) WriteNext();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    internal::ReflectionResponse parsed;
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (response_.Dump(&slices).ok()) {
      for (const grpc::Slice& slice : slices) {
        bytes.append(reinterpret_cast<const char*>(slice.begin()),
                     slice.size());
      }
    }
    if (parsed.ParseFromString(bytes)) responses_.push_back(std::move(parsed));
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    status_ = status;
    done_.Notify();
  }

 private:
  void WriteNext() {
    if (next_ == requests_.size()) {
      StartWritesDone();
      return;
    }
    StartWrite(&requests_[next_++]);
  }

  grpc::ClientContext context_;
  std::vector<grpc::ByteBuffer> requests_;
  size_t next_ = 0;
  grpc::ByteBuffer response_;
  std::vector<internal::ReflectionResponse> responses_;
  grpc::Status status_;
  absl::Notification done_;
};

absl::Status FromGrpc(const grpc::Status& status) {
  absl::StatusCode code = static_cast<absl::StatusCode>(status.error_code());
  return absl::Status(code, absl::StrCat("upstream reflection: ",
                                         absl::StatusCodeToString(code), " ",
                                         status.error_message()));
}

}  // namespace

absl::StatusOr<UpstreamMethods> DiscoverUpstreamMethods(
    const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout) {
  grpc::GenericStub stub(channel);
  absl::Time deadline = absl::Now() + timeout;
  internal::ReflectionRequest list;
  list.set_list_services("");
  Exchange listing({list});
  grpc::Status listed = listing.Run(stub, timeout);
  if (!listed.ok()) return FromGrpc(listed);
  std::vector<internal::ReflectionRequest> lookups;
  for (const internal::ReflectionResponse& response : listing.responses()) {
    for (const internal::ServiceName& service :
         response.list_services_response().service()) {
      internal::ReflectionRequest lookup;
      lookup.set_file_containing_symbol(service.name());
      lookups.push_back(std::move(lookup));
    }
  }
  Exchange describing(lookups);
  grpc::Status described = describing.Run(
      stub, std::max(deadline - absl::Now(), absl::ZeroDuration()));
  if (!described.ok()) return FromGrpc(described);
  std::vector<std::string> files;
  for (internal::ReflectionResponse& response : describing.responses()) {
    for (std::string& file : *response.mutable_file_descriptor_response()
                                  ->mutable_file_descriptor_proto()) {
      files.push_back(std::move(file));
    }
  }
  return UpstreamMethods::FromFileDescriptors(files);
}

}  // namespace singleflight
