// Fuzzes DoStream through the real reactor: a SingleFlightServer runs in
// this process (on 127.0.0.1, fetchers `echo` and `slow=echo:?delay=5ms`),
// and each input is a script of at most 64 operations on one raw DoStream
// call (generic stub, completion queue): send a well-formed request, send
// raw bytes, half-close, read a reply, pause, cancel. At the end of the
// script the client half-closes and reads everything (or has cancelled).
//
// Checked, for a stream not cancelled: it ends with OK within its 5 s
// deadline; every message sent got exactly one reply, with its id and the
// outcome the message calls for (a value equal to the key, INVALID_ARGUMENT
// for a bad key or bytes that do not decode, NOT_FOUND for an unknown
// fetcher). A cancelled stream ends with CANCELLED or OK, also in time.
// Which outcome raw bytes call for is told by DecodeDoRequest and
// SalvageRequestId, which request_fuzzer checks on their own.
#include <fuzzer/FuzzedDataProvider.h>
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/config.h"
#include "server/request_decoding.h"
#include "server/request_validation.h"
#include "server/server.h"
#include "singleflight/v1/singleflight.pb.h"
#include "tests/fuzz/fuzz_check.h"

namespace singleflight {
namespace {

constexpr int kMaxOperations = 64;
constexpr char kMethod[] = "/singleflight.v1.SingleFlight/DoStream";

// The reply a message sent calls for: its id, its code, and for OK its value.
struct Expected {
  uint64_t id;
  absl::StatusCode code;
  std::string value;
};

// What the server must answer to a request that decoded (payload empty).
Expected Expect(const v1::DoRequest& request) {
  Expected expected{request.id(), absl::StatusCode::kOk, request.key()};
  if (request.key().empty() || request.key().size() > kMaxKeyBytes) {
    expected.code = absl::StatusCode::kInvalidArgument;
  } else if (!request.fetcher().empty() && request.fetcher() != "echo" &&
             request.fetcher() != "slow") {
    expected.code = absl::StatusCode::kNotFound;
  }
  return expected;
}

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// One DoStream call driven from a completion queue, one operation of each
// kind (write, read) outstanding at most.
class StreamScript {
 public:
  explicit StreamScript(grpc::GenericStub& stub) {
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(5));
    call_ = stub.PrepareCall(&context_, kMethod, &queue_);
    call_->StartCall(Tag(kStart));
    Await(kStart);
  }

  ~StreamScript() {
    queue_.Shutdown();
    void* tag;
    bool ok;
    while (queue_.Next(&tag, &ok)) {
    }
  }

  void Send(const std::string& bytes) {
    if (writes_done_ || broken_) return;
    Await(kWrite);
    if (broken_) return;
    // Decoded here the way the server decodes it, to know what it must say.
    v1::DoRequest request;
    if (DecodeDoRequest(ToByteBuffer(bytes), &request).ok()) {
      expected_.push_back(Expect(request));
      if (!request.payload().empty()) any_payload_ = true;
    } else {
      expected_.push_back(
          {SalvageRequestId(bytes), absl::StatusCode::kInvalidArgument, ""});
    }
    grpc::ByteBuffer buffer = ToByteBuffer(bytes);
    call_->Write(buffer, Tag(kWrite));
    pending_[kWrite] = true;
  }

  void HalfClose() {
    if (writes_done_) return;
    Await(kWrite);
    writes_done_ = true;
    if (broken_) return;
    call_->WritesDone(Tag(kWritesDone));
    pending_[kWritesDone] = true;
  }

  // Reads one reply, if one is owed or the client half-closed (then the
  // stream ends); false at the end of the stream.
  bool ReadOne() {
    if (reads_over_) return false;
    if (!writes_done_ && replies_.size() == expected_.size()) return true;
    if (!pending_[kRead]) {
      call_->Read(&reply_, Tag(kRead));
      pending_[kRead] = true;
    }
    Await(kRead);
    if (reads_over_) return false;
    v1::DoResponse response;
    FuzzCheck(grpc::SerializationTraits<v1::DoResponse>::Deserialize(&reply_,
                                                                     &response)
                  .ok(),
              "a reply parses");
    replies_.push_back(std::move(response));
    return true;
  }

  void Cancel() {
    context_.TryCancel();
    cancelled_ = true;
  }

  // Ends the call as the script leaves it, and checks how it ended.
  void FinishAndCheck() {
    if (!cancelled_) {
      HalfClose();
      while (ReadOne()) {
      }
    }
    Await(kWrite);
    Await(kWritesDone);
    Await(kRead);
    grpc::Status status;
    call_->Finish(&status, Tag(kFinish));
    pending_[kFinish] = true;
    Await(kFinish);
    if (cancelled_) {
      FuzzCheck(
          status.error_code() == grpc::StatusCode::CANCELLED || status.ok(),
          "a cancelled stream ends CANCELLED or OK");
      return;
    }
    if (!status.ok()) {
      fprintf(stderr, "stream ended with %d: %s\n", status.error_code(),
              status.error_message().c_str());
    }
    FuzzCheck(status.ok(), "a half-closed stream read to its end ends OK");
    FuzzCheck(replies_.size() == expected_.size(),
              "every message gets exactly one reply");
    for (const v1::DoResponse& reply : replies_) MatchReply(reply);
  }

 private:
  enum Operation { kStart, kWrite, kRead, kWritesDone, kFinish, kCount };

  static void* Tag(Operation operation) {
    return reinterpret_cast<void*>(static_cast<intptr_t>(operation) + 1);
  }

  // Waits until `operation` is over if it is outstanding, taking the events
  // of the others as they come.
  void Await(Operation operation) {
    if (operation == kStart) pending_[kStart] = true;
    while (pending_[operation]) {
      void* tag;
      bool ok;
      FuzzCheck(queue_.Next(&tag, &ok), "the completion queue is not shut");
      auto done = static_cast<Operation>(reinterpret_cast<intptr_t>(tag) - 1);
      pending_[done] = false;
      if (ok) continue;
      if (done == kRead) {
        reads_over_ = true;
      } else if (done != kFinish) {
        broken_ = true;
      }
    }
  }

  void MatchReply(const v1::DoResponse& reply) {
    auto code = static_cast<absl::StatusCode>(reply.status().code());
    for (auto it = expected_.begin(); it != expected_.end(); ++it) {
      if (it->id != reply.id() || it->code != code) continue;
      // With a payload somewhere, a flight's value may be that payload.
      if (code == absl::StatusCode::kOk && !any_payload_ &&
          reply.value() != it->value) {
        continue;
      }
      expected_.erase(it);
      return;
    }
    fprintf(stderr, "unexpected reply id=%llu code=%d message=%s\n",
            static_cast<unsigned long long>(reply.id()), static_cast<int>(code),
            reply.status().message().c_str());
    FuzzCheck(false, "each reply answers a message sent, as it calls for");
  }

  grpc::ClientContext context_;
  grpc::CompletionQueue queue_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  grpc::ByteBuffer reply_;
  bool pending_[kCount] = {};
  bool writes_done_ = false;
  bool reads_over_ = false;
  bool broken_ = false;
  bool cancelled_ = false;
  bool any_payload_ = false;
  std::vector<Expected> expected_;
  std::vector<v1::DoResponse> replies_;
};

std::string ConsumeRequest(FuzzedDataProvider& data) {
  static const char* const kFetchers[] = {"", "echo", "slow", "none"};
  static uint64_t next_id = 1000;
  v1::DoRequest request;
  request.set_fetcher(kFetchers[data.ConsumeIntegralInRange(0, 3)]);
  switch (data.ConsumeIntegralInRange(0, 7)) {
    case 0:
      break;  // An empty key.
    case 1:
      request.set_key(std::string(kMaxKeyBytes + 1, 'k'));
      break;
    default:
      // Few distinct keys, so that requests share flights.
      request.set_key(absl::StrCat("k", data.ConsumeIntegralInRange(0, 3)));
  }
  // Mostly distinct ids; sometimes one that repeats.
  request.set_id(data.ConsumeBool() ? 7 : next_id++);
  return request.SerializeAsString();
}

}  // namespace
}  // namespace singleflight

namespace {

// Both serve until the process exits.
singleflight::SingleFlightServer* server = nullptr;
grpc::GenericStub* stub = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  using namespace singleflight;  // NOLINT(build/namespaces)
  // Protobuf logs every string that is not UTF-8; the fuzzer sends many.
  google::protobuf::SetLogHandler(nullptr);
  ServerConfig config;
  config.listen = "127.0.0.1:0";
  config.fetchers.push_back({"slow", "echo:?delay=5ms", {}, "stream_fuzzer"});
  absl::StatusOr<std::unique_ptr<SingleFlightServer>> started =
      SingleFlightServer::Start(config);
  FuzzCheck(started.ok(), "the server starts");
  server = started->release();
  stub = new grpc::GenericStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port()),
                          grpc::InsecureChannelCredentials()));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace singleflight;  // NOLINT(build/namespaces)
  FuzzedDataProvider data(bytes, size);
  StreamScript script(*stub);
  for (int i = 0; i < kMaxOperations && data.remaining_bytes() > 0; ++i) {
    switch (data.ConsumeIntegralInRange(0, 5)) {
      case 0:
      case 1:
        script.Send(ConsumeRequest(data));
        break;
      case 2:
        script.Send(data.ConsumeRandomLengthString(64));
        break;
      case 3:
        script.HalfClose();
        break;
      case 4:
        script.ReadOne();
        break;
      case 5:
        if (data.ConsumeIntegralInRange(0, 7) == 0) {
          script.Cancel();
          i = kMaxOperations;
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        break;
    }
  }
  script.FinishAndCheck();
  return 0;
}
