// DoStreamReactor in process: a SingleFlightService on a loopback port with
// test fetchers that count their executions, and raw (ByteBuffer) clients, so
// that requests which do not parse can be sent too.
#include "server/do_stream_reactor.h"

#include <grpcpp/grpcpp.h>
#include <sched.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/timer_queue.h"
#include "fetchers/echo_fetcher.h"
#include "gtest/gtest.h"
#include "server/access_control.h"
#include "server/metrics.h"
#include "server/service.h"
#include "singleflight/v1/singleflight.pb.h"

namespace singleflight {
namespace {

constexpr size_t kBigValueBytes = 16 * 1024;
constexpr char kDoStream[] = "/singleflight.v1.SingleFlight/DoStream";

// Counts its executions. URI `test:big` answers at once with kBigValueBytes
// bytes; `test:later` answers the key from the timer thread, so that items
// complete off gRPC's threads; `test:hang` never answers (a hung backend:
// its flights end by cancellation or timeout); `test:` answers the key at
// once.
class TestFetcher : public Fetcher {
 public:
  TestFetcher(std::string mode, TimerQueue* timers, std::atomic<int>* fetches)
      : mode_(std::move(mode)), timers_(timers), fetches_(fetches) {}

  void Fetch(FetchRequest request, FetchCallback done) override {
    ++*fetches_;
    if (mode_ == "big") {
      done(std::string(kBigValueBytes, 'v'));
    } else if (mode_ == "hang") {
      absl::MutexLock lock(&mu_);
      hung_.push_back(std::move(done));
    } else if (mode_ == "later") {
      timers_->Schedule(
          absl::ZeroDuration(),
          [done = std::move(done), key = std::move(request.key)]() mutable {
            done(std::move(key));
          });
    } else {
      done(std::move(request.key));
    }
  }

 private:
  const std::string mode_;
  TimerQueue* const timers_;
  std::atomic<int>* const fetches_;
  absl::Mutex mu_;
  std::vector<FetchCallback> hung_ ABSL_GUARDED_BY(mu_);
};

grpc::ByteBuffer Wire(absl::string_view bytes) {
  grpc::Slice slice(bytes.data(), bytes.size());
  return grpc::ByteBuffer(&slice, 1);
}

grpc::ByteBuffer Wire(const v1::DoRequest& request) {
  return Wire(request.SerializeAsString());
}

v1::DoRequest Request(const std::string& key, const std::string& fetcher,
                      uint64_t id) {
  v1::DoRequest request;
  request.set_key(key);
  request.set_fetcher(fetcher);
  request.set_id(id);
  return request;
}

// The value of the counter `name` whose labels include `label`=`value`.
double CounterValue(const ServerMetrics& metrics, const std::string& name,
                    const std::string& label, const std::string& value) {
  double total = 0;
  for (const auto& weak : metrics.collectables()) {
    auto collectable = weak.lock();
    if (collectable == nullptr) continue;
    for (const prometheus::MetricFamily& family : collectable->Collect()) {
      if (family.name != name) continue;
      for (const prometheus::ClientMetric& metric : family.metric) {
        for (const prometheus::ClientMetric::Label& pair : metric.label) {
          if (pair.name == label && pair.value == value) {
            total += metric.counter.value;
          }
        }
      }
    }
  }
  return total;
}

v1::DoResponse Parse(grpc::ByteBuffer buffer) {
  v1::DoResponse response;
  EXPECT_TRUE(
      grpc::SerializationTraits<v1::DoResponse>::Deserialize(&buffer, &response)
          .ok());
  return response;
}

using RawStream = grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;

class DoStreamReactorTest : public ::testing::Test {
 protected:
  void StartServer(StreamLimits limits) {
    registry_.RegisterScheme("test",
                             [this](const FetcherUri& uri, const FetcherPolicy&,
                                    const FetcherEnvironment& environment)
                                 -> absl::StatusOr<std::unique_ptr<Fetcher>> {
                               return std::make_unique<TestFetcher>(
                                   uri.target, environment.timers, &fetches_);
                             });
    registry_.RegisterScheme("echo", &EchoFetcher::Create);
    ASSERT_TRUE(registry_.Add("now", "test:").ok());
    ASSERT_TRUE(registry_.Add("big", "test:big").ok());
    ASSERT_TRUE(registry_.Add("later", "test:later").ok());
    ASSERT_TRUE(registry_.Add("hang", "test:hang").ok());
    ASSERT_TRUE(registry_.Add("slow", "echo:?delay=300ms").ok());
    service_ = std::make_unique<SingleFlightService>(
        &group_, &registry_, /*proxy=*/nullptr, &metrics_, &access_, limits);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
      server_->Wait();
    }
  }

  // A deadline bounds every stream, so that a lost reply fails the test
  // instead of hanging it.
  std::unique_ptr<RawStream> Open(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(60));
    return std::unique_ptr<RawStream>(
        grpc::internal::ClientReaderWriterFactory<
            grpc::ByteBuffer, grpc::ByteBuffer>::Create(channel_.get(),
                                                        method(), context));
  }

  grpc::internal::RpcMethod method() const {
    return grpc::internal::RpcMethod(
        kDoStream, grpc::internal::RpcMethod::BIDI_STREAMING, channel_);
  }

  // Reads every reply left on `stream`.
  static std::vector<v1::DoResponse> ReadAll(RawStream& stream) {
    std::vector<v1::DoResponse> replies;
    grpc::ByteBuffer buffer;
    while (stream.Read(&buffer)) replies.push_back(Parse(std::move(buffer)));
    return replies;
  }

  // Polls `done` every 5 ms for up to 10 s.
  template <typename F>
  static bool PollUntil(F done) {
    for (int i = 0; i < 2000; ++i) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return done();
  }

  // Waits until fetches_ has not changed for 300 ms (at most ~10 s).
  int SettledFetches() {
    int last = -1;
    for (int i = 0; i < 33; ++i) {
      int now = fetches_.load();
      if (now == last) return now;
      last = now;
      absl::SleepFor(absl::Milliseconds(300));
    }
    return last;
  }

  std::atomic<int> fetches_{0};
  TimerQueue timers_;
  Group group_{&timers_};
  FetcherRegistry registry_{FetcherEnvironment{&timers_}};
  ServerMetrics metrics_;
  AccessControl access_;
  std::unique_ptr<SingleFlightService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(DoStreamReactorTest, UndecodableItemIsAnsweredAndTheStreamGoesOn) {
  StartServer({});
  // Field 1 (key) holding bytes that are not UTF-8, then field 4 (id) = 2.
  const std::string bad_key("\x0a\x02\xff\xfe\x20\x02", 6);
  // Not protobuf at all: an id cannot be read.
  const std::string garbage("\xff\xff\xff", 3);
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = Open(&context);
  ASSERT_TRUE(stream->Write(Wire(Request("a", "now", 1))));
  ASSERT_TRUE(stream->Write(Wire(bad_key)));
  ASSERT_TRUE(stream->Write(Wire(garbage)));
  ASSERT_TRUE(stream->Write(Wire(Request("c", "now", 3))));
  ASSERT_TRUE(stream->WritesDone());
  std::vector<v1::DoResponse> replies = ReadAll(*stream);
  grpc::Status status = stream->Finish();

  EXPECT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(replies.size(), 4u);
  absl::flat_hash_set<uint64_t> ids;
  for (const v1::DoResponse& reply : replies) {
    ids.insert(reply.id());
    if (reply.id() == 1 || reply.id() == 3) {
      EXPECT_EQ(reply.status().code(), 0) << reply.status().message();
      EXPECT_EQ(reply.value(), reply.id() == 1 ? "a" : "c");
    } else {
      EXPECT_EQ(reply.status().code(),
                static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
      EXPECT_EQ(reply.value(), "");
    }
  }
  EXPECT_EQ(ids, (absl::flat_hash_set<uint64_t>{0, 1, 2, 3}));
}

// A client that sends and never reads: the stream stops reading at its limit,
// so the server holds about `limit` replies, not one per request sent.
class BackPressureTest : public DoStreamReactorTest,
                         public ::testing::WithParamInterface<StreamLimits> {};

TEST_P(BackPressureTest, ClientThatDoesNotReadIsNotReadEither) {
  StartServer(GetParam());
  constexpr int kRequests = 20000;
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = Open(&context);
  std::thread writer([&] {
    for (int i = 1; i <= kRequests; ++i) {
      if (!stream->Write(Wire(Request(absl::StrCat("k", i), "big", i)))) {
        return;
      }
    }
    stream->WritesDone();
  });
  // 64 replies of 16 KiB, by count or by bytes, plus the written replies
  // that gRPC and the sockets hold (about 4 MB here: ~250 replies), bounded
  // by flow control, far below kRequests. Without back-pressure, all are read.
  int read = SettledFetches();
  EXPECT_GT(read, 0);
  EXPECT_LE(read, 64 + 1000) << "requests read while the client reads nothing";

  std::vector<v1::DoResponse> replies = ReadAll(*stream);
  writer.join();
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(replies.size(), static_cast<size_t>(kRequests));
  absl::flat_hash_set<uint64_t> ids;
  for (const v1::DoResponse& reply : replies) {
    EXPECT_EQ(reply.status().code(), 0) << reply.status().message();
    EXPECT_EQ(reply.value().size(), kBigValueBytes);
    EXPECT_TRUE(ids.insert(reply.id()).second) << "id " << reply.id();
  }
  EXPECT_EQ(fetches_.load(), kRequests);
  const char* limit = GetParam().max_pending > 0 ? "max_stream_pending"
                                                 : "max_stream_buffer_bytes";
  EXPECT_GE(CounterValue(metrics_, "singleflight_stream_read_pauses_total",
                         "limit", limit),
            1);
}

// Items waiting on a hung backend hold their requests (the fetch's copy of
// the payload): those bytes count against max_buffer_bytes too, or one
// stream of large distinct requests could hold gigabytes.
TEST_F(DoStreamReactorTest, WaitingRequestsCountAgainstTheByteLimit) {
  constexpr size_t kPayloadBytes = 16 * 1024;
  StartServer(StreamLimits{0, 4 * kPayloadBytes});
  constexpr int kRequests = 2000;
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = Open(&context);
  std::thread writer([&] {
    for (int i = 1; i <= kRequests; ++i) {
      v1::DoRequest request = Request(absl::StrCat("k", i), "hang", i);
      request.set_payload(std::string(kPayloadBytes, 'p'));
      if (!stream->Write(Wire(request))) return;
    }
  });
  int read = SettledFetches();
  EXPECT_GT(read, 0);
  EXPECT_LE(read, 5) << "requests read while the earlier ones still wait";
  EXPECT_GE(CounterValue(metrics_, "singleflight_stream_read_pauses_total",
                         "limit", "max_stream_buffer_bytes"),
            1);
  context.TryCancel();
  writer.join();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

INSTANTIATE_TEST_SUITE_P(Limits, BackPressureTest,
                         ::testing::Values(StreamLimits{64, 0},
                                           StreamLimits{
                                               0, 64 * (kBigValueBytes + 16)}));

// Items complete on the timer thread while gRPC threads write the replies
// and the client half-closes with its last request: the last reply and the
// end of the stream race with the waiter that queued it (run under ASan).
TEST_F(DoStreamReactorTest, StreamsEndingAsTheirLastItemCompletesAreSafe) {
  StartServer({});
  constexpr int kThreads = 4;
  constexpr int kStreamsPerThread = 2000;
  constexpr int kItems = 8;
  std::atomic<int> good_streams{0};
  std::atomic<int> clients_left{kThreads};
  std::vector<std::thread> threads;
  // Keep both cores busy, so that the timer thread is preempted.
  for (int b = 0; b < 2; ++b) {
    threads.emplace_back([&] {
      while (clients_left.load() > 0) {
      }
    });
  }
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int s = 0; s < kStreamsPerThread; ++s) {
        grpc::ClientContext context;
        std::unique_ptr<RawStream> stream = Open(&context);
        for (int i = 1; i <= kItems; ++i) {
          grpc::WriteOptions options;
          if (i == kItems) options.set_last_message();
          stream->Write(
              Wire(Request(absl::StrCat("t", t, "s", s, "i", i), "later", i)),
              options);
        }
        std::vector<v1::DoResponse> replies = ReadAll(*stream);
        if (stream->Finish().ok() && replies.size() == kItems) ++good_streams;
      }
      --clients_left;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(good_streams.load(), kThreads * kStreamsPerThread);
}

TEST_F(DoStreamReactorTest, DrainEndsAnIdleStreamAtOnce) {
  StartServer({});
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = Open(&context);
  ASSERT_TRUE(stream->Write(Wire(Request("a", "now", 1))));
  grpc::ByteBuffer reply;
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(service_->open_streams(), 1);

  service_->BeginDrain();
  EXPECT_FALSE(stream->Read(&reply));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), kShuttingDownMessage);
  EXPECT_TRUE(PollUntil([&] { return service_->open_streams() == 0; }));
}

TEST_F(DoStreamReactorTest, DrainLetsAHalfClosedStreamEndOkWithItsReplies) {
  StartServer({});
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = Open(&context);
  ASSERT_TRUE(stream->Write(Wire(Request("a", "slow", 1))));
  ASSERT_TRUE(stream->WritesDone());
  ASSERT_TRUE(PollUntil([&] { return group_.InFlight().size() == 1; }));

  service_->BeginDrain();
  std::vector<v1::DoResponse> replies = ReadAll(*stream);
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].id(), 1u);
  EXPECT_EQ(replies[0].value(), "a");
}

TEST_F(DoStreamReactorTest, DrainStopsAnOpenStreamAfterItsPendingReplies) {
  StartServer({});
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = Open(&context);
  ASSERT_TRUE(stream->Write(Wire(Request("a", "slow", 1))));
  ASSERT_TRUE(PollUntil([&] { return group_.InFlight().size() == 1; }));

  service_->BeginDrain();
  std::vector<v1::DoResponse> replies = ReadAll(*stream);
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].id(), 1u);
  EXPECT_EQ(replies[0].status().code(), 0);
  EXPECT_EQ(replies[0].value(), "a");
}

TEST_F(DoStreamReactorTest, StreamsOpenedAfterDrainAreRefused) {
  StartServer({});
  service_->BeginDrain();
  grpc::ClientContext context;
  std::unique_ptr<RawStream> stream = Open(&context);
  stream->Write(Wire(Request("a", "now", 1)));
  EXPECT_TRUE(ReadAll(*stream).empty());
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), kShuttingDownMessage);
  EXPECT_EQ(fetches_.load(), 0);
}

}  // namespace
}  // namespace singleflight
