#include "bench/unary_transport.h"

#include <chrono>
#include <utility>

#include "client/flight_key.h"

namespace singleflight {
namespace bench {
namespace {

// One call's state, from Start until its completion callback. `done` is
// destroyed last, after the context has released its channel: the load
// run may destroy the channel as soon as `done` is gone, and must not
// leave its last reference to a gRPC thread.
struct UnaryCall {
  CallDone done;
  grpc::ClientContext context;
  v1::DoRequest request;
  v1::DoResponse response;
};

}  // namespace

UnaryTransport::UnaryTransport(const std::shared_ptr<grpc::Channel>& channel,
                               std::string fetcher,
                               std::shared_ptr<const std::string> payload,
                               absl::Duration deadline)
    : stub_(v1::SingleFlight::NewStub(channel)),
      fetcher_(std::move(fetcher)),
      payload_(std::move(payload)),
      deadline_(deadline) {}

void UnaryTransport::Start(const std::string& key, CallDone done) {
  auto* call = new UnaryCall;
  call->done = std::move(done);
  call->context.set_deadline(std::chrono::system_clock::now() +
                             absl::ToChronoNanoseconds(deadline_));
  // The routing header of every client, for a key-affinity front.
  call->context.AddMetadata(kFlightKeyHeader, FlightKey(fetcher_, key));
  call->request.set_key(key);
  call->request.set_fetcher(fetcher_);
  call->request.set_payload(*payload_);
  stub_->async()->Do(&call->context, &call->request, &call->response,
                     [call](grpc::Status status) {
                       call->done({status.error_code(),
                                   status.ok() && call->response.shared()});
                       delete call;
                     });
}

}  // namespace bench
}  // namespace singleflight
