#ifndef SINGLEFLIGHT_BENCH_STREAM_TRANSPORT_H_
#define SINGLEFLIGHT_BENCH_STREAM_TRANSPORT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "bench/call_transport.h"
#include "singleflight/v1/singleflight.grpc.pb.h"

namespace singleflight {
namespace bench {

// Each call is one item of a single DoStream, opened on construction: the
// request goes out with an id, and the reply that echoes the id ends the
// call with the item's status. Close half-closes the stream; if the stream
// ends while items wait, they end with the stream's status code (or UNKNOWN
// if it ended OK).
//
// Thread-safe.
class StreamTransport final : public CallTransport {
 public:
  // `payload` is sent with every request.
  StreamTransport(const std::shared_ptr<grpc::Channel>& channel,
                  std::string fetcher,
                  std::shared_ptr<const std::string> payload);
  // Cancels the stream if it is still open; its items still get their
  // `done`. Waits (up to 10 s) for the stream to end, so that the channel
  // is not released from a gRPC thread: gRPC 1.51 cannot destroy a
  // channel from within one of its own callbacks (grpc/grpc#37858; here it
  // showed as double frees and hangs).
  ~StreamTransport() override;

  void Start(const std::string& key, CallDone done) override;
  void Close() override;
  void Cancel() override;

 private:
  class Stream;

  const std::unique_ptr<v1::SingleFlight::Stub> stub_;
  const std::string fetcher_;
  const std::shared_ptr<const std::string> payload_;
  // Owned jointly with gRPC: it lives until the call is done, even if this
  // transport is destroyed before.
  std::shared_ptr<Stream> stream_;
};

}  // namespace bench
}  // namespace singleflight

#endif  // SINGLEFLIGHT_BENCH_STREAM_TRANSPORT_H_
