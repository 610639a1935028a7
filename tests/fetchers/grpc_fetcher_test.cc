// Tests of GrpcFetcher against a real in-process upstream gRPC server.
#include "fetchers/grpc_fetcher.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/cancellation.h"
#include "core/fetcher_uri.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fetchers/fetch_outcome.h"
#include "tests/testing/certificates.h"
#include "tests/testing/upstream_server.h"

namespace singleflight {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Pair;

constexpr absl::Duration kWait = absl::Seconds(10);

using Outcome = FetchOutcome;

std::shared_ptr<Outcome> StartFetch(Fetcher& fetcher, FetchRequest request) {
  auto outcome = std::make_shared<Outcome>();
  fetcher.Fetch(std::move(request), outcome->Callback());
  return outcome;
}

FetchRequest MakeRequest(const testing::GetRequest& get) {
  FetchRequest request;
  request.key = get.key();
  request.payload = get.SerializeAsString();
  request.cancellation = std::make_shared<CancellationSignal>();
  return request;
}

testing::GetRequest Get(const std::string& key) {
  testing::GetRequest get;
  get.set_key(key);
  return get;
}

absl::StatusOr<std::unique_ptr<Fetcher>> Create(const std::string& uri,
                                                const FetcherPolicy& policy) {
  absl::StatusOr<FetcherUri> parsed = FetcherUri::Parse(uri);
  if (!parsed.ok()) return parsed.status();
  return GrpcFetcher::Create(*parsed, policy, FetcherEnvironment());
}

class GrpcFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    upstream_ = UpstreamServer::Start();
    ASSERT_NE(upstream_, nullptr);
  }

  std::unique_ptr<Fetcher> MakeFetcher(const FetcherPolicy& policy = {}) {
    absl::StatusOr<std::unique_ptr<Fetcher>> fetcher =
        Create(upstream_->GetUri(), policy);
    EXPECT_TRUE(fetcher.ok()) << fetcher.status();
    return fetcher.ok() ? *std::move(fetcher) : nullptr;
  }

  std::unique_ptr<UpstreamServer> upstream_;
};

TEST_F(GrpcFetcherTest, ResponseBytesAreTheValue) {
  std::unique_ptr<Fetcher> fetcher = MakeFetcher();
  ASSERT_NE(fetcher, nullptr);

  absl::StatusOr<std::string> value =
      StartFetch(*fetcher, MakeRequest(Get("k1")))->Wait();

  ASSERT_TRUE(value.ok()) << value.status();
  testing::GetReply reply;
  ASSERT_TRUE(reply.ParseFromString(*value));
  EXPECT_EQ(reply.key(), "k1");
  EXPECT_EQ(reply.value(), "value-of-k1");
  EXPECT_EQ(reply.call_number(), 1);
  EXPECT_EQ(upstream_->Calls("k1"), 1);
}

TEST_F(GrpcFetcherTest, UpstreamStatusPassesThroughUnchanged) {
  std::unique_ptr<Fetcher> fetcher = MakeFetcher();
  ASSERT_NE(fetcher, nullptr);
  const std::vector<std::pair<absl::StatusCode, std::string>> failures = {
      {absl::StatusCode::kNotFound, "no such thing"},
      {absl::StatusCode::kPermissionDenied, "not for you"},
      {absl::StatusCode::kFailedPrecondition, ""}};

  for (const auto& [code, message] : failures) {
    testing::GetRequest get = Get("failing");
    get.set_fail_code(static_cast<int>(code));
    get.set_fail_message(message);
    absl::StatusOr<std::string> value =
        StartFetch(*fetcher, MakeRequest(get))->Wait();
    EXPECT_EQ(value.status(), absl::Status(code, message));
  }
}

TEST_F(GrpcFetcherTest, HeadersAndForwardedMetadataReachTheUpstream) {
  FetcherPolicy policy;
  policy.headers = {{"x-api-key", "secret"}, {"X-Team", "blue"}};
  std::unique_ptr<Fetcher> fetcher = MakeFetcher(policy);
  ASSERT_NE(fetcher, nullptr);
  FetchRequest request = MakeRequest(Get("meta"));
  request.metadata = {{"x-request-id", "r-1"}, {"trace-bin", "\x01\x02"}};

  ASSERT_TRUE(StartFetch(*fetcher, std::move(request))->Wait().ok());

  UpstreamServer::Metadata seen = upstream_->LastMetadata("meta");
  EXPECT_THAT(seen, Contains(Pair("x-api-key", "secret")));
  EXPECT_THAT(seen, Contains(Pair("x-team", "blue")));
  EXPECT_THAT(seen, Contains(Pair("x-request-id", "r-1")));
  EXPECT_THAT(seen, Contains(Pair("trace-bin", "\x01\x02")));
}

TEST_F(GrpcFetcherTest, MetadataGrpcCannotSendIsRefused) {
  FetcherPolicy bad_name;
  bad_name.headers = {{"bad name", "x"}};
  absl::StatusOr<std::unique_ptr<Fetcher>> refused =
      Create(upstream_->GetUri(), bad_name);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("bad name"));

  std::unique_ptr<Fetcher> fetcher = MakeFetcher();
  ASSERT_NE(fetcher, nullptr);
  FetchRequest request = MakeRequest(Get("bad-value"));
  request.metadata = {{"x-note", "line\nbreak"}};
  absl::StatusOr<std::string> value =
      StartFetch(*fetcher, std::move(request))->Wait();
  EXPECT_EQ(value.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(value.status().message(), HasSubstr("x-note"));
  EXPECT_EQ(upstream_->Calls("bad-value"), 0);
}

TEST_F(GrpcFetcherTest, TimeoutIsDeadlineExceededAndReachesTheUpstream) {
  FetcherPolicy policy;
  policy.timeout = absl::Milliseconds(200);
  std::unique_ptr<Fetcher> fetcher = MakeFetcher(policy);
  ASSERT_NE(fetcher, nullptr);
  testing::GetRequest get = Get("slow");
  get.set_hang(true);

  absl::Time start = absl::Now();
  absl::StatusOr<std::string> value =
      StartFetch(*fetcher, MakeRequest(get))->Wait();

  EXPECT_EQ(value.status().code(), absl::StatusCode::kDeadlineExceeded)
      << value.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(upstream_->WaitForCancelled("slow", kWait));
}

TEST_F(GrpcFetcherTest, CancellationReachesTheUpstreamHandler) {
  std::unique_ptr<Fetcher> fetcher = MakeFetcher();
  ASSERT_NE(fetcher, nullptr);
  testing::GetRequest get = Get("hanging");
  get.set_hang(true);
  FetchRequest request = MakeRequest(get);
  std::shared_ptr<CancellationSignal> cancellation = request.cancellation;

  std::shared_ptr<Outcome> outcome = StartFetch(*fetcher, std::move(request));
  ASSERT_TRUE(upstream_->WaitForCalls("hanging", 1, kWait));
  cancellation->Cancel();

  EXPECT_TRUE(upstream_->WaitForCancelled("hanging", kWait));
  EXPECT_EQ(outcome->Wait().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(outcome->calls(), 1);
}

TEST_F(GrpcFetcherTest, DestroyingTheFetcherCancelsItsCalls) {
  std::unique_ptr<Fetcher> fetcher = MakeFetcher();
  ASSERT_NE(fetcher, nullptr);
  testing::GetRequest get = Get("orphan");
  get.set_hang(true);

  std::shared_ptr<Outcome> outcome = StartFetch(*fetcher, MakeRequest(get));
  ASSERT_TRUE(upstream_->WaitForCalls("orphan", 1, kWait));
  fetcher.reset();

  EXPECT_EQ(outcome->calls(), 1);
  EXPECT_EQ(outcome->Wait().status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(upstream_->WaitForCancelled("orphan", kWait));
}

TEST_F(GrpcFetcherTest, OversizedResponseIsResourceExhausted) {
  FetcherPolicy policy;
  policy.max_value_bytes = 1000;
  std::unique_ptr<Fetcher> fetcher = MakeFetcher(policy);
  ASSERT_NE(fetcher, nullptr);
  testing::GetRequest small = Get("small");
  small.set_value_size(900);
  testing::GetRequest large = Get("large");
  large.set_value_size(5000);

  EXPECT_TRUE(StartFetch(*fetcher, MakeRequest(small))->Wait().ok());
  EXPECT_EQ(StartFetch(*fetcher, MakeRequest(large))->Wait().status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(GrpcFetcherTest, FiftyConcurrentFetchesShareTheChannel) {
  std::unique_ptr<Fetcher> fetcher = MakeFetcher();
  ASSERT_NE(fetcher, nullptr);
  constexpr int kFetches = 50;
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < kFetches; ++i) {
    testing::GetRequest get = Get(absl::StrCat("key-", i));
    get.set_delay_ms(100);
    outcomes.push_back(StartFetch(*fetcher, MakeRequest(get)));
  }

  for (int i = 0; i < kFetches; ++i) {
    absl::StatusOr<std::string> value = outcomes[i]->Wait();
    ASSERT_TRUE(value.ok()) << "fetch " << i << ": " << value.status();
    testing::GetReply reply;
    ASSERT_TRUE(reply.ParseFromString(*value));
    EXPECT_EQ(reply.value(), absl::StrCat("value-of-key-", i));
  }
  EXPECT_EQ(upstream_->TotalCalls(), kFetches);
}

// An upstream over mutual TLS, with certificates from a private CA.
class GrpcsFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(certificates_.ok()) << "openssl failed"; }

  // Starts the upstream with the certificate `server` (from "ca"), and
  // requiring client certificates from "ca".
  void StartUpstream(const std::string& server) {
    grpc::SslServerCredentialsOptions options;
    options.pem_key_cert_pairs.push_back({certificates_.Pem(server + ".key"),
                                          certificates_.Pem(server + ".pem")});
    options.pem_root_certs = certificates_.Pem("ca.pem");
    options.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    upstream_ = UpstreamServer::Start(grpc::SslServerCredentials(options));
    ASSERT_NE(upstream_, nullptr);
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
    absl::StatusOr<std::unique_ptr<Fetcher>> fetcher =
        Create(upstream_->GetUri(), policy);
    if (!fetcher.ok()) return fetcher.status();
    return StartFetch(**fetcher, MakeRequest(Get("k")))->Wait();
  }

  TestCertificates certificates_;
  std::unique_ptr<UpstreamServer> upstream_;
};

TEST_F(GrpcsFetcherTest, PrivateCaAndClientCertificateReachTheUpstream) {
  StartUpstream("server");
  EXPECT_TRUE(FetchWith(MutualTls()).ok());

  FetcherPolicy no_client_certificate = MutualTls();
  no_client_certificate.tls.cert_file.clear();
  no_client_certificate.tls.key_file.clear();
  EXPECT_EQ(FetchWith(no_client_certificate).status().code(),
            absl::StatusCode::kUnavailable);
  FetcherPolicy system_roots = MutualTls();
  system_roots.tls.ca_file.clear();
  EXPECT_EQ(FetchWith(system_roots).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(GrpcsFetcherTest, ServerNameIsWhatTheCertificateIsCheckedAgainst) {
  StartUpstream("named_server");  // For origin.test only.
  EXPECT_EQ(FetchWith(MutualTls()).status().code(),
            absl::StatusCode::kUnavailable);
  FetcherPolicy named = MutualTls();
  named.tls.server_name = "origin.test";
  absl::StatusOr<std::string> value = FetchWith(named);
  EXPECT_TRUE(value.ok()) << value.status();
}

TEST(GrpcsFetcherSettingsTest, BadTlsSettingsAreRefused) {
  FetcherPolicy plaintext;
  plaintext.tls.ca_file = "/etc/hostname";
  EXPECT_EQ(Create("grpc://127.0.0.1:1/a.B/C", plaintext).status().code(),
            absl::StatusCode::kInvalidArgument);
  FetcherPolicy half;
  half.tls.cert_file = "/etc/hostname";
  EXPECT_EQ(Create("grpcs://127.0.0.1:1/a.B/C", half).status().code(),
            absl::StatusCode::kInvalidArgument);
  FetcherPolicy missing;
  missing.tls.ca_file = "/no/such/ca.pem";
  EXPECT_EQ(Create("grpcs://127.0.0.1:1/a.B/C", missing).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(GrpcFetcherUnreachableTest, UnreachableUpstreamIsUnavailable) {
  std::string uri;
  {
    std::unique_ptr<UpstreamServer> gone = UpstreamServer::Start();
    ASSERT_NE(gone, nullptr);
    uri = gone->GetUri();
  }
  absl::StatusOr<std::unique_ptr<Fetcher>> fetcher = Create(uri, {});
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();

  absl::StatusOr<std::string> value =
      StartFetch(**fetcher, MakeRequest(Get("k")))->Wait();

  EXPECT_EQ(value.status().code(), absl::StatusCode::kUnavailable)
      << value.status();
}

TEST_F(GrpcFetcherTest, GrpcsSpeaksTlsOnly) {
  std::string uri = upstream_->GetUri();
  uri.replace(0, 4, "grpcs");
  absl::StatusOr<std::unique_ptr<Fetcher>> fetcher = Create(uri, {});
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();

  absl::StatusOr<std::string> value =
      StartFetch(**fetcher, MakeRequest(Get("tls")))->Wait();

  EXPECT_EQ(value.status().code(), absl::StatusCode::kUnavailable)
      << value.status();
  EXPECT_EQ(upstream_->Calls("tls"), 0);
}

TEST(GrpcFetcherUriTest, RejectsBadUris) {
  for (const char* uri : {
           "grpc:127.0.0.1:1/pkg.Svc/Method",
           "grpc://127.0.0.1/pkg.Svc/Method",
           "grpc://:1/pkg.Svc/Method",
           "grpc://127.0.0.1:0/pkg.Svc/Method",
           "grpc://127.0.0.1:65536/pkg.Svc/Method",
           "grpc://127.0.0.1:http/pkg.Svc/Method",
           "grpc://127.0.0.1:1",
           "grpc://127.0.0.1:1/",
           "grpc://127.0.0.1:1/pkg.Svc",
           "grpc://127.0.0.1:1/pkg.Svc/",
           "grpc://127.0.0.1:1//Method",
           "grpc://127.0.0.1:1/pkg.Svc/Method/More",
           "grpcs://127.0.0.1:1/pkg.Svc/Method?retries=3",
       }) {
    absl::StatusOr<std::unique_ptr<Fetcher>> fetcher = Create(uri, {});
    EXPECT_EQ(fetcher.status().code(), absl::StatusCode::kInvalidArgument)
        << uri;
    EXPECT_THAT(fetcher.status().message(), HasSubstr(uri));
  }
  EXPECT_TRUE(Create("grpc://localhost:50051/Svc/Method", {}).ok());
  EXPECT_TRUE(Create("grpcs://[::1]:443/pkg.v1.Svc/Method", {}).ok());
}

}  // namespace
}  // namespace singleflight
