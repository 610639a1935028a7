#include "bench/bare_service.h"

#include <deque>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace singleflight {
namespace bench {
namespace {

void Answer(const v1::DoRequest& request, v1::DoResponse& response) {
  response.set_id(request.id());
  response.set_value(request.payload().empty() ? request.key()
                                               : request.payload());
  response.set_shared(false);
}

// One DoStream call: each request read is answered at once; replies are
// queued and written one at a time. After the client half-closes, the call
// ends with OK once every reply is written (or as soon as a write fails;
// Finish is called once).
// StartRead, StartWrite and Finish are called without `mu_` held; the
// reactor deletes itself in OnDone.
class BareStreamReactor final
    : public grpc::ServerBidiReactor<v1::DoRequest, v1::DoResponse> {
 public:
  BareStreamReactor() { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    bool write = false, read = false, finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (ok && !finished_) {
        v1::DoResponse reply;
        Answer(request_, reply);
        if (write_in_flight_) {
          unwritten_.push_back(std::move(reply));
        } else {
          writing_ = std::move(reply);
          write_in_flight_ = write = true;
        }
        read = true;
      } else {
        reads_done_ = true;
        finish = !write_in_flight_ && !finished_;
        finished_ = finished_ || finish;
      }
    }
    if (write) StartWrite(&writing_);
    if (read) StartRead(&request_);
    if (finish) Finish(grpc::Status::OK);
  }

  void OnWriteDone(bool ok) override {
    bool write = false, finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (ok && !unwritten_.empty()) {
        writing_ = std::move(unwritten_.front());
        unwritten_.pop_front();
        write = true;
      } else {
        // A failed write means the call is over: finish without waiting
        // for the reads.
        write_in_flight_ = false;
        if (!ok) unwritten_.clear();
        finish = (reads_done_ || !ok) && !finished_;
        finished_ = finished_ || finish;
      }
    }
    if (write) StartWrite(&writing_);
    if (finish) Finish(grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  v1::DoRequest request_;   // Owned by the read in progress.
  v1::DoResponse writing_;  // Owned by the write in flight.
  absl::Mutex mu_;
  std::deque<v1::DoResponse> unwritten_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerUnaryReactor* BareService::Do(grpc::CallbackServerContext* context,
                                          const v1::DoRequest* request,
                                          v1::DoResponse* response) {
  Answer(*request, *response);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<v1::DoRequest, v1::DoResponse>* BareService::DoStream(
    grpc::CallbackServerContext* context) {
  return new BareStreamReactor();
}

}  // namespace bench
}  // namespace singleflight
