#include "bench/stream_transport.h"

#include <deque>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace singleflight {
namespace bench {
namespace {

// How long the destructor waits for the cancelled stream to end.
constexpr absl::Duration kStreamEndGrace = absl::Seconds(10);

}  // namespace

// The DoStream call: one write in flight at a time, fed from a queue; one
// read always pending. A hold keeps the call from ending until Close, so
// that Send may start writes from outside reactions. StartWrite,
// StartWritesDone and callers' `done` run without `mu_` held.
class StreamTransport::Stream final
    : public grpc::ClientBidiReactor<v1::DoRequest, v1::DoResponse> {
 public:
  // Opens the stream on `stub`. The stream keeps itself alive until
  // OnDone.
  static std::shared_ptr<Stream> Open(v1::SingleFlight::Stub& stub) {
    std::shared_ptr<Stream> stream(new Stream);
    stream->self_ = stream;
    stub.async()->DoStream(&stream->context_, stream.get());
    stream->StartRead(&stream->reply_);
    stream->AddHold();
    stream->StartCall();
    return stream;
  }

  void Send(v1::DoRequest request, CallDone done) {
    {
      absl::MutexLock lock(&mu_);
      uint64_t id = next_id_++;
      request.set_id(id);
      pending_.emplace(id, std::move(done));
      // A broken stream fails its items in OnDone.
      if (broken_) return;
      if (write_in_flight_) {
        unwritten_.push_back(std::move(request));
        return;
      }
      write_in_flight_ = true;
      writing_ = std::move(request);
    }
    StartWrite(&writing_);
  }

  void Close() {
    bool writes_done = false;
    {
      absl::MutexLock lock(&mu_);
      if (closing_) return;
      closing_ = true;
      writes_done = !write_in_flight_ && !broken_;
    }
    if (writes_done) StartWritesDone();
    RemoveHold();
  }

  void Cancel() { context_.TryCancel(); }

  // Notified when the stream is destroyed, after its context has released
  // its channel.
  std::shared_ptr<absl::Notification> destroyed() const {
    return destroyed_.notification;
  }

  void OnWriteDone(bool ok) override {
    bool next_write = false, writes_done = false;
    {
      absl::MutexLock lock(&mu_);
      if (!ok) {
        broken_ = true;
        unwritten_.clear();
      } else if (!unwritten_.empty()) {
        writing_ = std::move(unwritten_.front());
        unwritten_.pop_front();
        next_write = true;
      } else {
        writes_done = closing_;
      }
      write_in_flight_ = next_write;
    }
    if (next_write) StartWrite(&writing_);
    if (writes_done) StartWritesDone();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // The stream is over; OnDone follows.
    CallResult result{static_cast<grpc::StatusCode>(reply_.status().code()),
                      reply_.shared()};
    CallDone done;
    {
      absl::MutexLock lock(&mu_);
      auto it = pending_.find(reply_.id());
      if (it != pending_.end()) {
        done = std::move(it->second);
        pending_.erase(it);
      }
    }
    StartRead(&reply_);
    if (done) done(result);
  }

  void OnDone(const grpc::Status& status) override {
    absl::flat_hash_map<uint64_t, CallDone> unanswered;
    {
      absl::MutexLock lock(&mu_);
      unanswered.swap(pending_);
    }
    grpc::StatusCode code =
        status.ok() ? grpc::StatusCode::UNKNOWN : status.error_code();
    for (auto& [id, done] : unanswered) done({code, false});
    // Last: this may be the last reference.
    std::shared_ptr<Stream> self = std::move(self_);
  }

 private:
  // Notifies on destruction.
  struct DestroyedSignal {
    ~DestroyedSignal() { notification->Notify(); }
    std::shared_ptr<absl::Notification> notification =
        std::make_shared<absl::Notification>();
  };

  Stream() = default;

  // First, so that it is destroyed last.
  DestroyedSignal destroyed_;
  grpc::ClientContext context_;
  v1::DoResponse reply_;          // Owned by the read in progress.
  v1::DoRequest writing_;         // Owned by the write in flight.
  std::shared_ptr<Stream> self_;  // Set from Open until OnDone.

  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, CallDone> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::DoRequest> unwritten_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  // A write failed: nothing more is written.
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
};

StreamTransport::StreamTransport(const std::shared_ptr<grpc::Channel>& channel,
                                 std::string fetcher,
                                 std::shared_ptr<const std::string> payload)
    : stub_(v1::SingleFlight::NewStub(channel)),
      fetcher_(std::move(fetcher)),
      payload_(std::move(payload)),
      stream_(Stream::Open(*stub_)) {}

StreamTransport::~StreamTransport() {
  std::shared_ptr<absl::Notification> destroyed = stream_->destroyed();
  stream_->Close();
  stream_->Cancel();
  stream_.reset();
  destroyed->WaitForNotificationWithTimeout(kStreamEndGrace);
}

void StreamTransport::Start(const std::string& key, CallDone done) {
  v1::DoRequest request;
  request.set_key(key);
  request.set_fetcher(fetcher_);
  request.set_payload(*payload_);
  stream_->Send(std::move(request), std::move(done));
}

void StreamTransport::Close() { stream_->Close(); }

void StreamTransport::Cancel() { stream_->Cancel(); }

}  // namespace bench
}  // namespace singleflight
