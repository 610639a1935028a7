// TLS, mutual TLS, bearer tokens and limits, end to end: a real singleflightd
// and real clients, with certificates the test makes with openssl.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/certificates.h"
#include "tests/testing/server_process.h"

namespace singleflight {
namespace e2e {
namespace {

using ::testing::HasSubstr;

class SecurityE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certificates_ = new TestCertificates(); }
  static void TearDownTestSuite() { delete certificates_; }

  void SetUp() override {
    ASSERT_TRUE(certificates_->ok()) << "openssl failed";
  }

  std::unique_ptr<ServerProcess> Start(std::vector<std::string> args) {
    auto server = ServerProcess::Start(args);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  // A Do over TLS, with a client certificate if `client` is not empty.
  grpc::Status TlsDo(const ServerProcess& server, const std::string& client) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = certificates_->Pem("ca.pem");
    if (!client.empty()) {
      options.pem_private_key = certificates_->Pem(client + ".key");
      options.pem_cert_chain = certificates_->Pem(client + ".pem");
    }
    auto stub = v1::SingleFlight::NewStub(
        grpc::CreateChannel(server.target(), grpc::SslCredentials(options)));
    return Call(*stub, "");
  }

  static grpc::Status Call(v1::SingleFlight::Stub& stub,
                           const std::string& token) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    v1::DoResponse response;
    return stub.Do(&context, MakeRequest("k", ""), &response);
  }

  static TestCertificates* certificates_;
};

TestCertificates* SecurityE2eTest::certificates_ = nullptr;

TEST_F(SecurityE2eTest, TlsServesTlsClientsOnly) {
  auto server = Start({"--tls_cert=" + certificates_->Path("server.pem"),
                       "--tls_key=" + certificates_->Path("server.key")});
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(TlsDo(*server, "").ok());
  ClientOptions plaintext;
  plaintext.timeout = absl::Seconds(2);
  EXPECT_FALSE(Client::Connect(server->target(), plaintext)->Do("k").ok());
}

TEST_F(SecurityE2eTest, MutualTlsRefusesClientsWithoutATrustedCertificate) {
  auto server = Start({"--tls_cert=" + certificates_->Path("server.pem"),
                       "--tls_key=" + certificates_->Path("server.key"),
                       "--tls_client_ca=" + certificates_->Path("ca.pem")});
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(TlsDo(*server, "client").ok());
  EXPECT_FALSE(TlsDo(*server, "").ok());
  EXPECT_FALSE(TlsDo(*server, "rogue").ok());
}

TEST_F(SecurityE2eTest, TokensGrantRolesAndAreCheckedOnEveryRpc) {
  std::string caller_file = certificates_->Path("caller.token");
  std::string admin_file = certificates_->Path("admin.token");
  std::ofstream(caller_file) << "caller-secret\n";
  std::ofstream(admin_file) << "admin-secret\n";
  auto server = Start({"--caller_token_file=" + caller_file,
                       "--admin_token_file=" + admin_file});
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->Output(), ::testing::Not(HasSubstr("secret")));
  auto channel =
      grpc::CreateChannel(server->target(), grpc::InsecureChannelCredentials());
  auto stub = v1::SingleFlight::NewStub(channel);

  EXPECT_EQ(Call(*stub, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Call(*stub, "guess").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Call(*stub, "caller-secret").ok());
  EXPECT_TRUE(Call(*stub, "admin-secret").ok());

  auto forget = [&](const std::string& token) {
    grpc::ClientContext context;
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    v1::ForgetRequest request;
    request.set_key("k");
    v1::ForgetResponse response;
    return stub->Forget(&context, request, &response).error_code();
  };
  EXPECT_EQ(forget(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(forget("caller-secret"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(forget("admin-secret"), grpc::StatusCode::OK);

  grpc::ClientContext inflight_context;
  inflight_context.AddMetadata("authorization", "Bearer caller-secret");
  v1::InFlightResponse flights;
  EXPECT_EQ(stub->InFlight(&inflight_context, {}, &flights).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  grpc::ClientContext stream_context;
  auto stream = stub->DoStream(&stream_context);
  stream->WritesDone();
  v1::DoResponse ignored;
  while (stream->Read(&ignored)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // Health stays open, for load balancers and orchestrators.
  grpc::ClientContext health_context;
  grpc::health::v1::HealthCheckResponse health;
  EXPECT_TRUE(grpc::health::v1::Health::NewStub(channel)
                  ->Check(&health_context, {}, &health)
                  .ok());
}

TEST_F(SecurityE2eTest, SighupReloadsTokenFilesAndOpenStreamsGoOn) {
  std::string caller_file = certificates_->Path("reloaded-caller.token");
  std::ofstream(caller_file) << "old-secret\n";
  auto started = ServerProcess::StartCapturingStderr(
      {"--caller_token_file=" + caller_file});
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<ServerProcess> server = *std::move(started);
  auto stub = v1::SingleFlight::NewStub(grpc::CreateChannel(
      server->target(), grpc::InsecureChannelCredentials()));
  ASSERT_TRUE(Call(*stub, "old-secret").ok());
  grpc::ClientContext stream_context;
  stream_context.set_deadline(std::chrono::system_clock::now() +
                              std::chrono::seconds(30));
  stream_context.AddMetadata("authorization", "Bearer old-secret");
  auto stream = stub->DoStream(&stream_context);
  v1::DoResponse reply;
  ASSERT_TRUE(stream->Write(MakeRequest("before", "", 1)));
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(reply.id(), 1u);

  // A file that cannot be read keeps the old token.
  std::remove(caller_file.c_str());
  server->Signal(SIGHUP);
  EXPECT_TRUE(PollUntil(absl::Seconds(10), [&] {
    return server->Stderr().find("tokens not reloaded") != std::string::npos;
  }));
  EXPECT_TRUE(Call(*stub, "old-secret").ok());

  std::ofstream(caller_file) << "new-secret\n";
  server->Signal(SIGHUP);
  EXPECT_TRUE(PollUntil(absl::Seconds(10),
                        [&] { return Call(*stub, "new-secret").ok(); }));
  EXPECT_EQ(Call(*stub, "old-secret").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // The stream opened with the old token goes on.
  ASSERT_TRUE(stream->Write(MakeRequest("after", "", 2)));
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(reply.id(), 2u);
  EXPECT_EQ(reply.value(), "after");
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// A Do on a connection of its own, trusting only `ca`.
grpc::Status FreshTlsDo(const ServerProcess& server, const std::string& ca) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ca;
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = v1::SingleFlight::NewStub(grpc::CreateCustomChannel(
      server.target(), grpc::SslCredentials(options), arguments));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  v1::DoResponse response;
  return stub->Do(&context, MakeRequest("k", ""), &response);
}

TEST_F(SecurityE2eTest, ChangedCertificateFilesServeNewConnections) {
  std::string cert = certificates_->Path("watched-server.pem");
  std::string key = certificates_->Path("watched-server.key");
  std::ofstream(cert) << certificates_->Pem("server.pem");
  std::ofstream(key) << certificates_->Pem("server.key");
  auto server = Start({"--tls_cert=" + cert, "--tls_key=" + key});
  ASSERT_NE(server, nullptr);
  const std::string ca = certificates_->Pem("ca.pem");
  const std::string new_ca = certificates_->Pem("rogue_ca.pem");
  ASSERT_TRUE(FreshTlsDo(*server, ca).ok());
  // A connection opened before the change.
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ca;
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto open = v1::SingleFlight::NewStub(grpc::CreateCustomChannel(
      server->target(), grpc::SslCredentials(options), arguments));
  ASSERT_TRUE(Call(*open, "").ok());

  std::ofstream(key) << certificates_->Pem("rogue_server.key");
  std::ofstream(cert) << certificates_->Pem("rogue_server.pem");
  EXPECT_TRUE(PollUntil(absl::Seconds(15),
                        [&] { return FreshTlsDo(*server, new_ca).ok(); }));
  EXPECT_FALSE(FreshTlsDo(*server, ca).ok());
  EXPECT_TRUE(Call(*open, "").ok());
}

TEST_F(SecurityE2eTest, KeyOfAnotherCertificateStopsStartUp) {
  CommandResult mismatched =
      RunBinary("singleflightd",
                {"--listen=127.0.0.1:0",
                 "--tls_cert=" + certificates_->Path("server.pem"),
                 "--tls_key=" + certificates_->Path("rogue_server.key")});
  EXPECT_EQ(mismatched.exit_code, 2);
  EXPECT_THAT(mismatched.err, HasSubstr("does not belong to the certificate"));
  CommandResult not_a_certificate = RunBinary(
      "singleflightd", {"--check_config=/dev/null",
                        "--tls_cert=" + certificates_->Path("server.key"),
                        "--tls_key=" + certificates_->Path("server.key")});
  EXPECT_EQ(not_a_certificate.exit_code, 2);
  EXPECT_THAT(not_a_certificate.err, HasSubstr("holds no PEM certificate"));
}

TEST_F(SecurityE2eTest, LimitsRefuseWithResourceExhausted) {
  auto server =
      Start({"--fetcher=slow=echo:?delay=1s", "--default_fetcher=slow",
             "--max_waiters=2", "--max_flights=1", "--max_stream_pending=2",
             "--max_message_bytes=4096"});
  ASSERT_NE(server, nullptr);
  std::unique_ptr<Client> client = Client::Connect(server->target());
  std::vector<std::thread> waiters;
  for (int i = 0; i < 2; ++i) {
    waiters.emplace_back([&] { EXPECT_TRUE(client->Do("a").ok()); });
  }
  ASSERT_TRUE(WaitForWaiters(*client, "a", 2));
  EXPECT_EQ(client->Do("a").status().code(),
            absl::StatusCode::kResourceExhausted);  // A third waiter.
  EXPECT_EQ(client->Do("b").status().code(),
            absl::StatusCode::kResourceExhausted);  // A second flight.
  EXPECT_EQ(client->Do("c", "", std::string(8192, 'p')).status().code(),
            absl::StatusCode::kResourceExhausted);  // A message too large.
  for (std::thread& waiter : waiters) waiter.join();

  std::vector<v1::DoRequest> items;
  for (int i = 1; i <= 3; ++i) items.push_back(MakeRequest("s", "", i));
  std::vector<int> codes(4, -1);
  EXPECT_TRUE(client
                  ->DoStream(items,
                             [&](const v1::DoResponse& reply) {
                               codes[reply.id()] = reply.status().code();
                             })
                  .ok());
  // --max_stream_pending does not refuse: the third item waits until the
  // stream is back under its limit (the server stops reading), then succeeds.
  EXPECT_EQ(codes[1], 0);
  EXPECT_EQ(codes[2], 0);
  EXPECT_EQ(codes[3], 0);
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
