// Fuzzes DoStream through the real reactor: a SingleFlightServer runs in
// this process (on 127.0.0.1, fetchers `echo` and `slow=echo:?delay=5ms`,
// tiny stream limits: max_stream_pending 3, max_stream_buffer_bytes 4 KiB, so
// that back-pressure is reached all the time), and each input is a script of
// at most 64 operations on one raw DoStream call (generic stub, completion
// queue): send a well-formed request, send one with a large payload (1 to
// 6 KiB, over the byte limit by itself), send raw bytes, half-close, read a
// reply, pause (24 ms in all at most), cancel, drain. At the end of the script
// the client half-closes and reads everything (or has cancelled). Like any
// client that must not deadlock against back-pressure, the script reads while
// one of its writes has been stalled for a while; otherwise it reads only when
// told.
//
// An input starting with 'D' runs its script (the rest) on a server of its
// own, started for it, with the same limits, after one request answered
// (the stream is open in the service); its drain operation (or the end of
// the script, if it has none) calls SingleFlightServer::Shutdown on another
// thread, which begins the drain of every DoStream.
//
// Checked, for a stream not cancelled and not drained: it ends with OK within
// its 5 s deadline; every message sent got exactly one reply, with its id
// and the outcome the message calls for (a value equal to the key,
// INVALID_ARGUMENT for a bad key or bytes that do not decode, NOT_FOUND for
// an unknown fetcher). A cancelled stream ends with CANCELLED or OK (or
// UNAVAILABLE if drained), also in time. A drained stream ends in time with OK,
// and then every message got exactly one reply, or with UNAVAILABLE, and then
// every reply answers a message sent, at most once; a flight failed by the
// shutdown may answer UNAVAILABLE where a value was due. Which outcome raw
// bytes call for is told by DecodeDoRequest and SalvageRequestId, which
// request_fuzzer checks on their own.
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
#include "absl/time/time.h"
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
// The limits of every server here: a few items, a few KiB.
constexpr int kMaxStreamPending = 3;
constexpr int64_t kMaxStreamBufferBytes = 4096;
// What bytes 240 to 255 choose: 6, 7 a large request, 8 a drain, 9 a long
// pause, 4 a read (0xff, which mutations love, costs little).
constexpr int kHighOperations[16] = {6, 6, 6, 6, 7, 7, 7, 7,
                                     8, 8, 9, 9, 4, 4, 4, 4};
// Pauses of a script sleep at most this long in all (speed).
constexpr int kPauseBudgetMs = 24;
// How long a write may stall before the script reads to unblock it.
constexpr auto kStall = std::chrono::milliseconds(5);

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

ServerConfig FuzzServerConfig() {
  ServerConfig config;
  config.listen = "127.0.0.1:0";
  config.fetchers.push_back({"slow", "echo:?delay=5ms", {}, "stream_fuzzer"});
  config.max_stream_pending = kMaxStreamPending;
  config.max_stream_buffer_bytes = kMaxStreamBufferBytes;
  return config;
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
    StartRead();
    Await(kRead);
    return !reads_over_;
  }

  void Cancel() {
    context_.TryCancel();
    cancelled_ = true;
  }

  // From now on the server may be draining (see the file comment).
  void Drained() { drained_ = true; }

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
          status.error_code() == grpc::StatusCode::CANCELLED || status.ok() ||
              (drained_ &&
               status.error_code() == grpc::StatusCode::UNAVAILABLE),
          "a cancelled stream ends CANCELLED or OK (or UNAVAILABLE drained)");
      return;
    }
    if (!status.ok() &&
        !(drained_ && status.error_code() == grpc::StatusCode::UNAVAILABLE)) {
      fprintf(stderr, "stream ended with %d: %s\n", status.error_code(),
              status.error_message().c_str());
    }
    bool all_owed = status.ok();
    if (drained_) {
      FuzzCheck(
          status.ok() || status.error_code() == grpc::StatusCode::UNAVAILABLE,
          "a drained stream read to its end ends OK or UNAVAILABLE");
    } else {
      FuzzCheck(status.ok(), "a half-closed stream read to its end ends OK");
    }
    if (all_owed && replies_.size() != expected_.size()) {
      fprintf(stderr, "%zu messages sent, %zu replies\n", expected_.size(),
              replies_.size());
    }
    FuzzCheck(!all_owed || replies_.size() == expected_.size(),
              "every message gets exactly one reply");
    for (const v1::DoResponse& reply : replies_) MatchReply(reply);
  }

 private:
  enum Operation { kStart, kWrite, kRead, kWritesDone, kFinish, kCount };

  static void* Tag(Operation operation) {
    return reinterpret_cast<void*>(static_cast<intptr_t>(operation) + 1);
  }

  void StartRead() {
    if (pending_[kRead] || reads_over_) return;
    call_->Read(&reply_, Tag(kRead));
    pending_[kRead] = true;
  }

  // Waits until `operation` is over if it is outstanding, taking the events
  // of the others as they come. A write that stalls for kStall (the server
  // stopped reading at a limit, and its replies fill the window) is
  // unblocked by reading until it is over.
  void Await(Operation operation) {
    if (operation == kStart) pending_[kStart] = true;
    bool stalled = false;
    auto stall_deadline = std::chrono::system_clock::now() + kStall;
    while (pending_[operation]) {
      void* tag;
      bool ok;
      if (operation == kWrite && !stalled) {
        grpc::CompletionQueue::NextStatus next =
            queue_.AsyncNext(&tag, &ok, stall_deadline);
        FuzzCheck(next != grpc::CompletionQueue::SHUTDOWN,
                  "the completion queue is not shut");
        if (next == grpc::CompletionQueue::TIMEOUT) {
          stalled = true;
          StartRead();
          continue;
        }
      } else {
        FuzzCheck(queue_.Next(&tag, &ok), "the completion queue is not shut");
      }
      auto done = static_cast<Operation>(reinterpret_cast<intptr_t>(tag) - 1);
      Take(done, ok);
      if (stalled && done == kRead && pending_[kWrite]) StartRead();
    }
  }

  // Takes the event of `done`.
  void Take(Operation done, bool ok) {
    pending_[done] = false;
    if (done == kRead) {
      if (!ok) {
        reads_over_ = true;
        return;
      }
      v1::DoResponse response;
      FuzzCheck(grpc::SerializationTraits<v1::DoResponse>::Deserialize(
                    &reply_, &response)
                    .ok(),
                "a reply parses");
      replies_.push_back(std::move(response));
      return;
    }
    if (!ok && done != kFinish) broken_ = true;
  }

  void MatchReply(const v1::DoResponse& reply) {
    auto code = static_cast<absl::StatusCode>(reply.status().code());
    for (auto it = expected_.begin(); it != expected_.end(); ++it) {
      if (it->id != reply.id()) continue;
      // A flight that the shutdown failed.
      bool failed_by_drain = drained_ && it->code == absl::StatusCode::kOk &&
                             code == absl::StatusCode::kUnavailable;
      if (it->code != code && !failed_by_drain) continue;
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
  bool drained_ = false;
  bool any_payload_ = false;
  std::vector<Expected> expected_;
  std::vector<v1::DoResponse> replies_;
};

uint64_t NextId() {
  static uint64_t next_id = 1000;
  return next_id++;
}

std::string ConsumeRequest(FuzzedDataProvider& data) {
  static const char* const kFetchers[] = {"", "echo", "slow", "none"};
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
  request.set_id(data.ConsumeBool() ? 7 : NextId());
  return request.SerializeAsString();
}

// A request whose payload (1 to 6 KiB; echo's value) is over
// max_stream_buffer_bytes by itself or nearly: it holds its bytes while it
// waits on a flight, and its reply holds them until written.
std::string ConsumeLargeRequest(FuzzedDataProvider& data) {
  v1::DoRequest request;
  request.set_fetcher(data.ConsumeBool() ? "slow" : "echo");
  request.set_key(absl::StrCat("k", data.ConsumeIntegralInRange(0, 3)));
  size_t kib = data.ConsumeIntegralInRange(1, 6);
  request.set_payload(std::string(kib * 1024, static_cast<char>('a' + kib)));
  request.set_id(data.ConsumeBool() ? 7 : NextId());
  return request.SerializeAsString();
}

// Sleeps `ms` if the script has that much of its budget left.
void Pause(int ms, int* budget_ms) {
  if (*budget_ms < ms) return;
  *budget_ms -= ms;
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// A server of its own for one drained script; Drain shuts it down on another
// thread, at once.
class DrainedServer {
 public:
  DrainedServer() {
    absl::StatusOr<std::unique_ptr<SingleFlightServer>> started =
        SingleFlightServer::Start(FuzzServerConfig());
    FuzzCheck(started.ok(), "the drained server starts");
    server_ = *std::move(started);
    stub_ = std::make_unique<grpc::GenericStub>(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                            grpc::InsecureChannelCredentials()));
  }

  ~DrainedServer() {
    Drain();
    // The client's connection closed first: the shutdown waits for it.
    stub_.reset();
    stopper_.join();
  }

  grpc::GenericStub& stub() { return *stub_; }

  void Drain() {
    if (stopper_.joinable()) return;
    // Flights (5 ms) and the script (well under 1 s) end long before.
    stopper_ = std::thread([this] { server_->Shutdown(absl::Seconds(2)); });
  }

 private:
  std::unique_ptr<SingleFlightServer> server_;
  std::unique_ptr<grpc::GenericStub> stub_;
  std::thread stopper_;
};

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
  absl::StatusOr<std::unique_ptr<SingleFlightServer>> started =
      SingleFlightServer::Start(FuzzServerConfig());
  FuzzCheck(started.ok(), "the server starts");
  server = started->release();
  stub = new grpc::GenericStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port()),
                          grpc::InsecureChannelCredentials()));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace singleflight;  // NOLINT(build/namespaces)
  std::unique_ptr<DrainedServer> drained;
  if (size > 0 && bytes[0] == 'D') {
    drained = std::make_unique<DrainedServer>();
    ++bytes;
    --size;
  }
  FuzzedDataProvider data(bytes, size);
  int pause_budget_ms = kPauseBudgetMs;
  {
    StreamScript script(drained ? drained->stub() : *stub);
    // A stream the server has not taken yet when its shutdown begins may be
    // cancelled by gRPC (the call is dropped before any handler runs): one
    // reply first, so that the drain finds the stream open in the service.
    if (drained) {
      v1::DoRequest request;
      request.set_key("opened");
      request.set_id(NextId());
      script.Send(request.SerializeAsString());
      script.ReadOne();
    }
    for (int i = 0; i < kMaxOperations && data.remaining_bytes() > 0; ++i) {
      // Bytes under 240 choose as ConsumeIntegralInRange(0, 5) did before
      // the operations above 5 came (the corpus keeps its meaning).
      uint8_t choice = data.ConsumeIntegral<uint8_t>();
      int operation = choice < 240 ? choice % 6 : kHighOperations[choice - 240];
      switch (operation) {
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
            Pause(2, &pause_budget_ms);
          }
          break;
        case 6:
        case 7:
          script.Send(ConsumeLargeRequest(data));
          break;
        case 8:
          if (drained) {
            drained->Drain();
            script.Drained();
          }
          break;
        case 9:
          // Long enough for flights to end and replies to pile up unread.
          Pause(6, &pause_budget_ms);
          break;
      }
    }
    if (drained) {
      drained->Drain();
      script.Drained();
    }
    script.FinishAndCheck();
  }
  return 0;
}
