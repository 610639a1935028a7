// Tests of HttpFetcher against a real HTTP origin (tests/origin/).
#include "fetchers/http_fetcher.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/certificates.h"
#include "tests/testing/http_origin.h"

namespace singleflight {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(10);

// The outcome of one Fetch, which may arrive after the test stopped waiting.
struct Result {
  absl::Notification done;
  absl::StatusOr<std::string> value;
};

FetchRequest Request(std::string key, std::string payload = "",
                     Metadata metadata = {}) {
  FetchRequest request;
  request.key = std::move(key);
  request.payload = std::move(payload);
  request.metadata = std::move(metadata);
  request.cancellation = std::make_shared<CancellationSignal>();
  return request;
}

std::shared_ptr<Result> StartFetch(Fetcher& fetcher, FetchRequest request) {
  auto result = std::make_shared<Result>();
  fetcher.Fetch(std::move(request), [result](absl::StatusOr<std::string> v) {
    result->value = std::move(v);
    result->done.Notify();
  });
  return result;
}

absl::StatusOr<std::string> FetchNow(Fetcher& fetcher, FetchRequest request) {
  std::shared_ptr<Result> result = StartFetch(fetcher, std::move(request));
  if (!result->done.WaitForNotificationWithTimeout(kWait)) {
    return absl::DeadlineExceededError("test: no answer within 10s");
  }
  return result->value;
}

absl::StatusOr<std::unique_ptr<Fetcher>> Build(const std::string& url,
                                               const FetcherPolicy& policy) {
  absl::StatusOr<FetcherUri> uri = FetcherUri::Parse(url);
  if (!uri.ok()) return uri.status();
  return HttpFetcher::Create(*uri, policy, FetcherEnvironment{});
}

// The number of threads of this process.
int ThreadCount() {
  std::ifstream status("/proc/self/status");
  std::string line;
  int threads = -1;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "Threads:")) {
      EXPECT_TRUE(absl::SimpleAtoi(rest, &threads)) << line;
    }
  }
  return threads;
}

// A port on 127.0.0.1 where nothing listens.
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

class HttpFetcherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<HttpOrigin>> started = HttpOrigin::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    origin_ = started->release();
  }
  static void TearDownTestSuite() {
    delete origin_;
    origin_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(origin_, nullptr); }

  // A fetcher on the origin's `path_and_query`, or a test failure.
  std::unique_ptr<Fetcher> OriginFetcher(const std::string& path_and_query,
                                         const FetcherPolicy& policy = {}) {
    absl::StatusOr<std::unique_ptr<Fetcher>> fetcher =
        Build(origin_->base_url() + path_and_query, policy);
    EXPECT_TRUE(fetcher.ok()) << fetcher.status();
    return fetcher.ok() ? *std::move(fetcher) : nullptr;
  }

  static HttpOrigin* origin_;
};

HttpOrigin* HttpFetcherTest::origin_ = nullptr;

TEST(HttpFetcherCreateTest, RejectsUrlsWithoutHost) {
  for (const char* url : {"http:", "http:/item/{key}", "http://",
                          "http:///item/{key}", "https://:8080/x"}) {
    absl::Status status = Build(url, {}).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(status.message(), HasSubstr("HOST")) << url;
  }
}

TEST(HttpFetcherCreateTest, RejectsInvalidPolicyHeaders) {
  for (Metadata headers :
       {Metadata{{"bad name", "v"}}, Metadata{{"x-a", "line\r\nx-b: injected"}},
        Metadata{{"", "v"}}}) {
    FetcherPolicy policy;
    policy.headers = headers;
    EXPECT_EQ(Build("http://127.0.0.1:1/{key}", policy).status().code(),
              absl::StatusCode::kInvalidArgument)
        << headers[0].first;
  }
}

TEST(HttpFetcherCreateTest, StatusCodesOutsideTheTable) {
  EXPECT_EQ(HttpFetcher::HttpStatusToCode(200), absl::StatusCode::kOk);
  EXPECT_EQ(HttpFetcher::HttpStatusToCode(101), absl::StatusCode::kUnknown);
  EXPECT_EQ(HttpFetcher::HttpStatusToCode(302),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(HttpFetcher::HttpStatusToCode(600), absl::StatusCode::kUnknown);
}

TEST_F(HttpFetcherTest, GetAnswersTheBody) {
  auto fetcher = OriginFetcher("/get/{key}");
  ASSERT_NE(fetcher, nullptr);
  absl::StatusOr<std::string> value = FetchNow(*fetcher, Request("k1"));
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "/get/k1");
  EXPECT_THAT(origin_->Events("/get/k1"), ElementsAre("request", "answered"));
}

TEST_F(HttpFetcherTest, PostsThePayload) {
  auto fetcher = OriginFetcher("/post/{key}?echo_body=1");
  ASSERT_NE(fetcher, nullptr);
  absl::StatusOr<std::string> value =
      FetchNow(*fetcher, Request("k", std::string("pay\0load", 8)));
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, std::string("pay\0load", 8));

  auto headers_fetcher = OriginFetcher("/post/{key}?echo_headers=1");
  ASSERT_NE(headers_fetcher, nullptr);
  absl::StatusOr<std::string> headers =
      FetchNow(*headers_fetcher, Request("k", "payload"));
  ASSERT_TRUE(headers.ok()) << headers.status();
  EXPECT_THAT(*headers,
              HasSubstr(R"("content-type": "application/octet-stream")"));
  EXPECT_THAT(*headers, HasSubstr(R"("content-length": "7")"));
}

TEST_F(HttpFetcherTest, KeyIsPercentEncoded) {
  auto fetcher = OriginFetcher("/escape/{key}");
  ASSERT_NE(fetcher, nullptr);
  absl::StatusOr<std::string> value =
      FetchNow(*fetcher, Request("a b/c?d&e#f"));
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "/escape/a%20b%2Fc%3Fd%26e%23f");
  EXPECT_EQ(origin_->Hits("/escape/a%20b%2Fc%3Fd%26e%23f"), 1);
}

TEST_F(HttpFetcherTest, UrlWithoutKeyFetchesOneResourceForEveryKey) {
  auto fetcher = OriginFetcher("/same");
  ASSERT_NE(fetcher, nullptr);
  for (const char* key : {"a", "b"}) {
    absl::StatusOr<std::string> value = FetchNow(*fetcher, Request(key));
    ASSERT_TRUE(value.ok()) << value.status();
    EXPECT_EQ(*value, "/same");
  }
  EXPECT_EQ(origin_->Hits("/same"), 2);
}

TEST_F(HttpFetcherTest, StatusesMapToCodesAndMessagesQuoteTheBody) {
  const struct {
    int http_status;
    absl::StatusCode code;
  } kTable[] = {
      {400, absl::StatusCode::kInvalidArgument},
      {401, absl::StatusCode::kUnauthenticated},
      {403, absl::StatusCode::kPermissionDenied},
      {404, absl::StatusCode::kNotFound},
      {409, absl::StatusCode::kAborted},
      {418, absl::StatusCode::kFailedPrecondition},
      {429, absl::StatusCode::kResourceExhausted},
      {499, absl::StatusCode::kCancelled},
      {500, absl::StatusCode::kInternal},
      {501, absl::StatusCode::kUnimplemented},
      {502, absl::StatusCode::kUnavailable},
      {503, absl::StatusCode::kUnavailable},
      {504, absl::StatusCode::kDeadlineExceeded},
      {505, absl::StatusCode::kInternal},
  };
  auto fetcher = OriginFetcher("/status/{key}?status={key}");
  ASSERT_NE(fetcher, nullptr);
  for (const auto& row : kTable) {
    std::string key = absl::StrCat(row.http_status);
    absl::Status status = FetchNow(*fetcher, Request(key)).status();
    EXPECT_EQ(status.code(), row.code) << status;
    EXPECT_THAT(status.message(), HasSubstr(absl::StrCat(
                                      "origin answered HTTP ", key, ": status ",
                                      key, " for /status/", key)));
  }
}

TEST_F(HttpFetcherTest, RedirectsAreNotFollowed) {
  auto fetcher = OriginFetcher("/redirect?status=301");
  ASSERT_NE(fetcher, nullptr);
  absl::Status status = FetchNow(*fetcher, Request("k")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("redirect"));
}

TEST_F(HttpFetcherTest, LongErrorBodiesAreCutShort) {
  auto fetcher = OriginFetcher("/long?status=500&size=100000");
  ASSERT_NE(fetcher, nullptr);
  absl::Status status = FetchNow(*fetcher, Request("k")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(),
              HasSubstr(absl::StrCat(": ", std::string(200, 'x'), "...")));
  EXPECT_LT(status.message().size(), 300u);
}

// An HTTPS origin (tests/origin/http_origin.py) with certificates from a
// private CA, requiring client certificates from it.
class HttpsFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(certificates_.ok()) << "openssl failed"; }

  void StartOrigin(const std::string& server) {
    auto origin =
        HttpOrigin::Start({"--tls_cert", certificates_.Path(server + ".pem"),
                           "--tls_key", certificates_.Path(server + ".key"),
                           "--tls_client_ca", certificates_.Path("ca.pem")});
    ASSERT_TRUE(origin.ok()) << origin.status();
    origin_ = *std::move(origin);
  }

  FetcherPolicy MutualTls() {
    FetcherPolicy policy;
    policy.timeout = absl::Seconds(5);
    policy.tls.ca_file = certificates_.Path("ca.pem");
    policy.tls.cert_file = certificates_.Path("client.pem");
    policy.tls.key_file = certificates_.Path("client.key");
    return policy;
  }

  absl::StatusOr<std::string> FetchWith(const FetcherPolicy& policy) {
    absl::StatusOr<std::unique_ptr<Fetcher>> fetcher = Build(
        absl::StrCat("https://127.0.0.1:", origin_->port(), "/v/{key}?size=5"),
        policy);
    if (!fetcher.ok()) return fetcher.status();
    return FetchNow(**fetcher, Request("k"));
  }

  TestCertificates certificates_;
  std::unique_ptr<HttpOrigin> origin_;
};

TEST_F(HttpsFetcherTest, PrivateCaAndClientCertificateReachTheOrigin) {
  StartOrigin("server");
  absl::StatusOr<std::string> value = FetchWith(MutualTls());
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "xxxxx");

  FetcherPolicy no_client_certificate = MutualTls();
  no_client_certificate.tls.cert_file.clear();
  no_client_certificate.tls.key_file.clear();
  EXPECT_FALSE(FetchWith(no_client_certificate).ok());
  FetcherPolicy system_roots = MutualTls();
  system_roots.tls.ca_file.clear();
  EXPECT_EQ(FetchWith(system_roots).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(HttpsFetcherTest, ServerNameIsWhatTheCertificateIsCheckedAgainst) {
  StartOrigin("named_server");  // For origin.test only.
  EXPECT_EQ(FetchWith(MutualTls()).status().code(),
            absl::StatusCode::kUnavailable);
  FetcherPolicy named = MutualTls();
  named.tls.server_name = "origin.test";
  absl::StatusOr<std::string> value = FetchWith(named);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "xxxxx");
}

TEST(HttpFetcherCreateTest, RejectsBadTlsSettings) {
  FetcherPolicy plaintext;
  plaintext.tls.ca_file = "/etc/hostname";
  EXPECT_EQ(Build("http://origin/{key}", plaintext).status().code(),
            absl::StatusCode::kInvalidArgument);
  FetcherPolicy half;
  half.tls.key_file = "/etc/hostname";
  EXPECT_EQ(Build("https://origin/{key}", half).status().code(),
            absl::StatusCode::kInvalidArgument);
  FetcherPolicy missing;
  missing.tls.cert_file = "/no/such/cert.pem";
  missing.tls.key_file = "/no/such/key.pem";
  EXPECT_EQ(Build("https://origin/{key}", missing).status().code(),
            absl::StatusCode::kNotFound);
  FetcherPolicy bad_name;
  bad_name.tls.server_name = "not a host/name";
  EXPECT_EQ(Build("https://origin/{key}", bad_name).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HttpFetcherUnreachableTest, ConnectionRefusedIsUnavailable) {
  absl::StatusOr<std::unique_ptr<Fetcher>> fetcher =
      Build(absl::StrCat("http://127.0.0.1:", ClosedPort(), "/{key}"), {});
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  absl::Status status = FetchNow(**fetcher, Request("k")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("connect")) << status;
}

TEST_F(HttpFetcherTest, SlowOriginIsDeadlineExceeded) {
  FetcherPolicy policy;
  policy.timeout = absl::Milliseconds(200);
  auto fetcher = OriginFetcher("/slow/{key}?delay_ms=5000", policy);
  ASSERT_NE(fetcher, nullptr);
  absl::Time start = absl::Now();
  absl::Status status = FetchNow(*fetcher, Request("k")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_TRUE(origin_->WaitForEvent("/slow/k", "closed_before_answer", kWait));
}

TEST_F(HttpFetcherTest, ValueLargerThanMaxValueBytesIsResourceExhausted) {
  FetcherPolicy policy;
  policy.max_value_bytes = 1000;
  // With a Content-Length the size is known before the body; chunked, it is
  // known when the limit is crossed, and the transfer stops there.
  for (const char* how : {"", "&chunked=1"}) {
    SCOPED_TRACE(how);
    auto fitting = OriginFetcher(absl::StrCat("/fits?size=1000", how), policy);
    ASSERT_NE(fitting, nullptr);
    absl::StatusOr<std::string> value = FetchNow(*fitting, Request("k"));
    ASSERT_TRUE(value.ok()) << value.status();
    EXPECT_EQ(value->size(), 1000u);

    auto too_large =
        OriginFetcher(absl::StrCat("/too-large?size=1001", how), policy);
    ASSERT_NE(too_large, nullptr);
    absl::Status status = FetchNow(*too_large, Request("k")).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
    EXPECT_THAT(status.message(), HasSubstr("max_value_bytes (1000)"));
  }
  auto huge = OriginFetcher("/huge?size=50000000&chunked=1", policy);
  ASSERT_NE(huge, nullptr);
  EXPECT_EQ(FetchNow(*huge, Request("k")).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(origin_->WaitForEvent("/huge", "closed_during_answer", kWait));
}

TEST_F(HttpFetcherTest, SendsPolicyHeadersAndForwardedMetadata) {
  FetcherPolicy policy;
  policy.headers = {{"x-api-key", "secret"}, {"x-empty", ""}};
  auto fetcher = OriginFetcher("/headers/{key}?echo_headers=1", policy);
  ASSERT_NE(fetcher, nullptr);
  absl::StatusOr<std::string> headers = FetchNow(
      *fetcher, Request("k", "", {{"x-user", "alice"}, {"x-tenant", "t1"}}));
  ASSERT_TRUE(headers.ok()) << headers.status();
  EXPECT_THAT(*headers, HasSubstr(R"("x-api-key": "secret")"));
  EXPECT_THAT(*headers, HasSubstr(R"("x-empty": "")"));
  EXPECT_THAT(*headers, HasSubstr(R"("x-user": "alice")"));
  EXPECT_THAT(*headers, HasSubstr(R"("x-tenant": "t1")"));
  EXPECT_THAT(*headers, HasSubstr(R"("user-agent": "singleflight")"));
  EXPECT_THAT(*headers, ::testing::Not(HasSubstr("expect")));
}

TEST_F(HttpFetcherTest, MetadataThatIsNotAHeaderValueFailsTheFetch) {
  auto fetcher = OriginFetcher("/injected/{key}");
  ASSERT_NE(fetcher, nullptr);
  absl::Status status =
      FetchNow(*fetcher, Request("k", "", {{"x-user", "a\r\nx-admin: 1"}}))
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(origin_->Hits("/injected/k"), 0);
}

TEST_F(HttpFetcherTest, ConnectionsAreReused) {
  auto fetcher = OriginFetcher("/reuse/{key}");
  ASSERT_NE(fetcher, nullptr);
  ASSERT_TRUE(FetchNow(*fetcher, Request("first")).ok());
  int connections = origin_->Connections();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(FetchNow(*fetcher, Request(absl::StrCat(i))).ok());
  }
  // One more: the control request that counts them.
  EXPECT_EQ(origin_->Connections(), connections + 1);
}

// libcurl sends a request again when a reused connection dies before any
// answer; the origin then saw two requests for one flight (found by the
// soak test). Each fetch sends at most one request, GET or POST.
TEST_F(HttpFetcherTest, ResetOnAReusedConnectionIsNotSentAgain) {
  auto fetcher = OriginFetcher("/once/{key}?path_query=1");
  ASSERT_NE(fetcher, nullptr);
  for (const std::string payload : {"", "posted"}) {
    ASSERT_TRUE(FetchNow(*fetcher, Request("warm", payload)).ok());
    std::string key = payload.empty() ? "reset=1" : "reset=1&post=1";
    absl::StatusOr<std::string> reset =
        FetchNow(*fetcher, Request(key, payload));
    EXPECT_EQ(reset.status().code(), absl::StatusCode::kUnavailable)
        << reset.status();
  }
  EXPECT_EQ(origin_->Hits("/once/reset%3D1"), 1);
  EXPECT_EQ(origin_->Hits("/once/reset%3D1%26post%3D1"), 1);
}

TEST_F(HttpFetcherTest, CancellationClosesTheConnectionBeforeTheAnswer) {
  // Key "1" hangs, any other answers.
  auto fetcher = OriginFetcher("/cancel?hang={key}");
  ASSERT_NE(fetcher, nullptr);
  FetchRequest request = Request("1");
  std::shared_ptr<CancellationSignal> cancellation = request.cancellation;
  std::shared_ptr<Result> result = StartFetch(*fetcher, std::move(request));
  ASSERT_TRUE(origin_->WaitForEvent("/cancel", "request", kWait));

  cancellation->Cancel();
  EXPECT_TRUE(origin_->WaitForEvent("/cancel", "closed_before_answer", kWait));
  EXPECT_FALSE(result->done.HasBeenNotified());
  absl::StatusOr<std::string> next = FetchNow(*fetcher, Request("0"));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, "/cancel");
}

TEST_F(HttpFetcherTest, AlreadyCancelledFetchNeverReachesTheOrigin) {
  auto fetcher = OriginFetcher("/cancelled/{key}");
  ASSERT_NE(fetcher, nullptr);
  FetchRequest request = Request("k");
  request.cancellation->Cancel();
  std::shared_ptr<Result> result = StartFetch(*fetcher, std::move(request));
  ASSERT_TRUE(FetchNow(*fetcher, Request("later")).ok());
  EXPECT_EQ(origin_->Hits("/cancelled/k"), 0);
  EXPECT_FALSE(result->done.HasBeenNotified());
}

TEST_F(HttpFetcherTest, FiftyConcurrentFetchesShareOneEventThread) {
  auto fetcher = OriginFetcher("/many?delay_ms=500&key={key}");
  ASSERT_NE(fetcher, nullptr);
  int threads_before = ThreadCount();
  constexpr int kFetches = 50;
  std::vector<std::shared_ptr<Result>> results;
  for (int i = 0; i < kFetches; ++i) {
    results.push_back(StartFetch(*fetcher, Request(absl::StrCat(i))));
  }
  EXPECT_TRUE(origin_->WaitForEvent("/many", "request", kWait, kFetches));
  int threads_during = ThreadCount();
  for (int i = 0; i < kFetches; ++i) {
    ASSERT_TRUE(results[i]->done.WaitForNotificationWithTimeout(kWait)) << i;
    ASSERT_TRUE(results[i]->value.ok()) << results[i]->value.status();
    EXPECT_EQ(*results[i]->value, "/many");
  }
  EXPECT_EQ(origin_->Hits("/many"), kFetches);
  // libcurl's resolver threads aside (none for a numeric address).
  EXPECT_LE(threads_during, threads_before + 2);
}

TEST_F(HttpFetcherTest, DestructionAbortsTransfersInFlight) {
  auto fetcher = OriginFetcher("/shutdown/{key}?hang=1");
  ASSERT_NE(fetcher, nullptr);
  constexpr int kFetches = 5;
  std::vector<std::shared_ptr<CancellationSignal>> signals;
  std::vector<std::shared_ptr<Result>> results;
  for (int i = 0; i < kFetches; ++i) {
    FetchRequest request = Request("k");
    signals.push_back(request.cancellation);
    results.push_back(StartFetch(*fetcher, std::move(request)));
  }
  ASSERT_TRUE(origin_->WaitForEvent("/shutdown/k", "request", kWait, kFetches));

  absl::Time start = absl::Now();
  fetcher.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(origin_->WaitForEvent("/shutdown/k", "closed_before_answer",
                                    kWait, kFetches));
  // Cancelling after the fetcher is gone is harmless.
  for (auto& signal : signals) signal->Cancel();
  for (auto& result : results) EXPECT_FALSE(result->done.HasBeenNotified());
}

}  // namespace
}  // namespace singleflight
