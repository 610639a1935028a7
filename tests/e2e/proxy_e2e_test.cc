// End-to-end tests of proxy mode: singleflightd with --proxy_upstream in
// front of a real upstream gRPC server (in this process), called by an
// unchanged generated client of the upstream's service.
#include <arpa/inet.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/certificates.h"
#include "tests/testing/server_process.h"
#include "tests/testing/upstream_server.h"
#include "upstream.grpc.pb.h"

namespace singleflight {
namespace e2e {
namespace {

using testing::GetReply;
using testing::GetRequest;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using testing::Upstream;

constexpr char kGet[] = "/singleflight.testing.Upstream/Get";
constexpr char kService[] = "/singleflight.testing.Upstream/*";

// What a caller saw of one unary call.
struct Seen {
  grpc::Status status;
  GetReply reply;
  std::multimap<std::string, std::string> initial;
  std::multimap<std::string, std::string> trailing;
};

std::multimap<std::string, std::string> Copy(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  std::multimap<std::string, std::string> copy;
  for (const auto& [name, value] : metadata) {
    copy.emplace(std::string(name.data(), name.size()),
                 std::string(value.data(), value.size()));
  }
  return copy;
}

std::string Only(const std::multimap<std::string, std::string>& metadata,
                 const std::string& name) {
  auto [begin, end] = metadata.equal_range(name);
  std::vector<std::string> values;
  for (auto it = begin; it != end; ++it) values.push_back(it->second);
  return absl::StrJoin(values, "|");
}

class ProxyTest : public ::testing::Test {
 protected:
  // Starts an upstream (with reflection or not) and a proxy in front of it.
  void StartBoth(bool reflection, std::vector<std::string> args) {
    upstream_ = UpstreamServer::Start(nullptr, reflection);
    ASSERT_NE(upstream_, nullptr);
    StartProxy(absl::StrCat("127.0.0.1:", upstream_->port()), std::move(args));
  }

  void StartProxy(const std::string& upstream, std::vector<std::string> args) {
    args.push_back("--proxy_upstream=" + upstream);
    auto server = ServerProcess::Start(args);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(server_->target(),
                                   grpc::InsecureChannelCredentials());
    stub_ = Upstream::NewStub(channel_);
  }

  Seen Get(
      const GetRequest& request,
      const std::vector<std::pair<std::string, std::string>>& metadata = {},
      absl::Duration timeout = absl::Seconds(20)) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    for (const auto& [name, value] : metadata) context.AddMetadata(name, value);
    Seen seen;
    seen.status = stub_->Get(&context, request, &seen.reply);
    seen.initial = Copy(context.GetServerInitialMetadata());
    seen.trailing = Copy(context.GetServerTrailingMetadata());
    return seen;
  }

  // `callers` concurrent identical Gets.
  std::vector<Seen> GetConcurrently(
      int callers, const GetRequest& request,
      const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
    std::vector<Seen> seen(callers);
    std::vector<std::thread> threads;
    for (int i = 0; i < callers; ++i) {
      threads.emplace_back([this, &seen, i, &request, &metadata] {
        seen[i] = Get(request, metadata);
      });
    }
    for (std::thread& thread : threads) thread.join();
    return seen;
  }

  std::unique_ptr<UpstreamServer> upstream_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Upstream::Stub> stub_;
};

GetRequest Request(const std::string& key, int delay_ms = 0) {
  GetRequest request;
  request.set_key(key);
  request.set_delay_ms(delay_ms);
  return request;
}

TEST_F(ProxyTest, HundredIdenticalCallsMakeOneUpstreamCall) {
  StartBoth(/*reflection=*/true, {std::string("--proxy_coalesce=") + kGet});
  std::vector<Seen> seen = GetConcurrently(100, Request("hot", 1000));
  EXPECT_EQ(upstream_->Calls("hot"), 1);
  std::set<std::string> bytes;
  for (const Seen& one : seen) {
    ASSERT_TRUE(one.status.ok()) << one.status.error_message();
    bytes.insert(one.reply.SerializeAsString());
    EXPECT_EQ(one.reply.call_number(), 1);
    EXPECT_EQ(Only(one.initial, "x-upstream-key"), "hot");
    EXPECT_EQ(Only(one.trailing, "x-upstream-call"), "1");
  }
  EXPECT_THAT(bytes, SizeIs(1));
}

TEST_F(ProxyTest, DifferentRequestsAndUncoalescedMethodsDoNotShare) {
  StartBoth(/*reflection=*/true, {std::string("--proxy_coalesce=") + kGet});
  std::thread other(
      [this] { EXPECT_TRUE(Get(Request("b", 500)).status.ok()); });
  EXPECT_TRUE(Get(Request("a", 500)).status.ok());
  other.join();
  EXPECT_EQ(upstream_->Calls("a"), 1);
  EXPECT_EQ(upstream_->Calls("b"), 1);
  // The same key with other request bytes is another request.
  GetRequest bigger = Request("a", 500);
  bigger.set_value_size(3);
  std::thread third(
      [this] { EXPECT_TRUE(Get(Request("a", 500)).status.ok()); });
  Seen seen = Get(bigger);
  third.join();
  EXPECT_EQ(seen.reply.value(), "vvv");
  EXPECT_EQ(upstream_->Calls("a"), 3);
}

TEST_F(ProxyTest, UnnamedMethodsAreForwardedOneToOne) {
  StartBoth(/*reflection=*/true, {});
  std::vector<Seen> seen = GetConcurrently(5, Request("plain", 200));
  EXPECT_EQ(upstream_->Calls("plain"), 5);
  std::set<int64_t> numbers;
  for (const Seen& one : seen) {
    ASSERT_TRUE(one.status.ok()) << one.status.error_message();
    numbers.insert(one.reply.call_number());
    EXPECT_EQ(Only(one.initial, "x-upstream-key"), "plain");
  }
  EXPECT_THAT(numbers, SizeIs(5));
  // Known unary from reflection: the short path carries errors, details and
  // trailers as well.
  GetRequest failing = Request("plain-failing");
  failing.set_fail_code(static_cast<int>(grpc::StatusCode::ABORTED));
  failing.set_fail_message("aborted upstream");
  failing.set_fail_details("details-bytes");
  Seen failed = Get(failing);
  EXPECT_EQ(failed.status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(failed.status.error_message(), "aborted upstream");
  EXPECT_EQ(failed.status.error_details(), "details-bytes");
  EXPECT_EQ(Only(failed.trailing, "x-upstream-call"), "1");
  EXPECT_EQ(Only(failed.initial, "x-upstream-key"), "plain-failing");
}

TEST_F(ProxyTest, ErrorsDetailsAndTrailersReachEveryWaiter) {
  StartBoth(/*reflection=*/true, {std::string("--proxy_coalesce=") + kGet});
  GetRequest request = Request("broken", 500);
  request.set_fail_code(
      static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  request.set_fail_message("upstream says no");
  request.set_fail_details(std::string("\x08\x09\x12\x03raw\x00bytes", 13));
  std::vector<Seen> seen = GetConcurrently(10, request);
  EXPECT_EQ(upstream_->Calls("broken"), 1);
  for (const Seen& one : seen) {
    EXPECT_EQ(one.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_EQ(one.status.error_message(), "upstream says no");
    EXPECT_EQ(one.status.error_details(), request.fail_details());
    EXPECT_EQ(Only(one.trailing, "x-upstream-call"), "1");
  }
  // Forwarded one to one, the same.
  Seen direct = Get(request, {}, absl::Seconds(20));
  EXPECT_EQ(direct.status.error_details(), request.fail_details());
}

TEST_F(ProxyTest, KeyMetadataSeparatesTenantsAndIsForwarded) {
  upstream_ = UpstreamServer::Start(nullptr, /*reflection=*/true);
  ASSERT_NE(upstream_, nullptr);
  std::string config = ::testing::TempDir() + "proxy_tenants.yaml";
  std::ofstream(config) << "proxy:\n"
                        << "  upstream: 127.0.0.1:" << upstream_->port() << "\n"
                        << "  coalesce:\n"
                        << "    - method: " << kGet << "\n"
                        << "      key_metadata: [x-tenant]\n"
                        << "      forward_metadata: [x-tenant]\n";
  auto server = ServerProcess::Start({"--config=" + config});
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  stub_ = Upstream::NewStub(grpc::CreateChannel(
      server_->target(), grpc::InsecureChannelCredentials()));
  std::vector<std::thread> threads;
  for (const char* tenant : {"a", "a", "b"}) {
    threads.emplace_back([this, tenant] {
      EXPECT_TRUE(Get(Request("shared-key", 500),
                      {{"x-tenant", tenant}, {"x-secret", "s"}})
                      .status.ok());
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(upstream_->Calls("shared-key"), 2);
  // Coalesced calls carry only what the policy forwards.
  bool tenant_seen = false;
  for (const auto& [name, value] : upstream_->LastMetadata("shared-key")) {
    EXPECT_NE(name, "x-secret");
    tenant_seen = tenant_seen || name == "x-tenant";
  }
  EXPECT_TRUE(tenant_seen);
}

TEST_F(ProxyTest, StreamingMethodsAreForwardedEvenWhenAPatternNamesThem) {
  StartBoth(/*reflection=*/true, {std::string("--proxy_coalesce=") + kService});
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    auto reader = stub_->Watch(&context, Request("w"));
    GetReply reply;
    std::vector<std::string> values;
    while (reader->Read(&reply)) values.push_back(reply.value());
    grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_THAT(values, ::testing::ElementsAre("watch-1-of-w", "watch-2-of-w",
                                               "watch-3-of-w"));
    EXPECT_EQ(Only(Copy(context.GetServerInitialMetadata()), "x-upstream-key"),
              "w");
  }
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    auto stream = stub_->Exchange(&context);
    GetReply reply;
    for (const char* key : {"x", "y", "z"}) {
      ASSERT_TRUE(stream->Write(Request(key)));
      // Full duplex: each reply comes before the next request is sent.
      ASSERT_TRUE(stream->Read(&reply));
      EXPECT_EQ(reply.value(), absl::StrCat("value-of-", key));
    }
    stream->WritesDone();
    EXPECT_FALSE(stream->Read(&reply));
    EXPECT_TRUE(stream->Finish().ok());
  }
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    GetReply reply;
    auto writer = stub_->Collect(&context, &reply);
    for (const char* key : {"p", "q"}) ASSERT_TRUE(writer->Write(Request(key)));
    writer->WritesDone();
    EXPECT_TRUE(writer->Finish().ok());
    EXPECT_EQ(reply.value(), "p,q");
  }
}

TEST_F(ProxyTest, WithoutDescriptorsAPatternIsTrustedAndAStreamIsRefused) {
  StartBoth(/*reflection=*/false,
            {std::string("--proxy_coalesce=") + kService});
  EXPECT_TRUE(Get(Request("trusted")).status.ok());
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  auto reader = stub_->Watch(&context, Request("w"));
  GetReply reply;
  while (reader->Read(&reply)) {
  }
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(status.error_message(), HasSubstr("not a unary method"));
}

TEST_F(ProxyTest, ADescriptorSetNamesTheUnaryMethods) {
  upstream_ = UpstreamServer::Start(nullptr, /*reflection=*/false);
  ASSERT_NE(upstream_, nullptr);
  google::protobuf::FileDescriptorSet set;
  GetRequest::descriptor()->file()->CopyTo(set.add_file());
  std::string path = ::testing::TempDir() + "upstream.pb";
  std::ofstream(path, std::ios::binary) << set.SerializeAsString();
  StartProxy(absl::StrCat("127.0.0.1:", upstream_->port()),
             {std::string("--proxy_coalesce=") + kService,
              "--proxy_descriptor_set=" + path});
  std::vector<Seen> seen = GetConcurrently(20, Request("described", 500));
  EXPECT_EQ(upstream_->Calls("described"), 1);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  auto reader = stub_->Watch(&context, Request("w"));
  GetReply reply;
  int replies = 0;
  while (reader->Read(&reply)) ++replies;
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(replies, 3);
}

TEST_F(ProxyTest, DeadlinesAndCancellationReachTheUpstream) {
  StartBoth(/*reflection=*/true, {std::string("--proxy_coalesce=") + kGet});
  GetRequest hang = Request("hang-forwarded");
  hang.set_hang(true);
  // Forwarded one to one (Watch): the caller's deadline goes up.
  {
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Milliseconds(300)));
    auto reader = stub_->Watch(&context, hang);
    GetReply reply;
    EXPECT_FALSE(reader->Read(&reply));
    EXPECT_EQ(reader->Finish().error_code(),
              grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  EXPECT_TRUE(upstream_->WaitForCancelled("hang-forwarded", absl::Seconds(10)));
  // Coalesced: the upstream call is cancelled when its last waiter leaves.
  hang.set_key("hang-coalesced");
  std::vector<std::thread> callers;
  for (int i = 0; i < 3; ++i) {
    callers.emplace_back([this, &hang, i] {
      Seen seen = Get(hang, {}, absl::Milliseconds(300 + 200 * i));
      EXPECT_EQ(seen.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(upstream_->Calls("hang-coalesced"), 1);
  EXPECT_TRUE(upstream_->WaitForCancelled("hang-coalesced", absl::Seconds(10)));
}

TEST_F(ProxyTest, InFlightShowsAProxiedFlightThatForgetForgets) {
  StartBoth(/*reflection=*/true, {std::string("--proxy_coalesce=") + kGet});
  std::thread caller(
      [this] { EXPECT_TRUE(Get(Request("slow", 1500)).status.ok()); });
  ASSERT_TRUE(upstream_->WaitForCalls("slow", 1, absl::Seconds(10)));
  std::unique_ptr<Client> client = Client::Connect(server_->target());
  absl::StatusOr<v1::InFlightResponse> flights = client->InFlight();
  ASSERT_TRUE(flights.ok()) << flights.status();
  ASSERT_EQ(flights->flights_size(), 1);
  const v1::Flight& flight = flights->flights(0);
  EXPECT_EQ(flight.fetcher(), kGet);
  EXPECT_THAT(flight.key(), ::testing::MatchesRegex("[0-9a-f]{64}"));
  absl::StatusOr<bool> forgotten = client->Forget(flight.key(), kGet);
  ASSERT_TRUE(forgotten.ok()) << forgotten.status();
  EXPECT_TRUE(*forgotten);
  // The next caller starts a new upstream call.
  EXPECT_EQ(Get(Request("slow", 1500)).reply.call_number(), 2);
  caller.join();
  CommandResult inflight =
      RunSfctl({"--target=" + server_->target(), "inflight"});
  EXPECT_EQ(inflight.exit_code, 0) << inflight.err;
}

TEST_F(ProxyTest, AnUnreachableUpstreamIsUnavailable) {
  // A port nobody listens on: the upstream server's, once it is gone.
  int port = 0;
  {
    std::unique_ptr<UpstreamServer> gone = UpstreamServer::Start();
    ASSERT_NE(gone, nullptr);
    port = gone->port();
  }
  StartProxy(absl::StrCat("127.0.0.1:", port),
             {std::string("--proxy_coalesce=") + kGet});
  EXPECT_EQ(Get(Request("x")).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // And forwarded on the short path for known unary methods.
  google::protobuf::FileDescriptorSet set;
  GetRequest::descriptor()->file()->CopyTo(set.add_file());
  std::string path = ::testing::TempDir() + "unreachable.pb";
  std::ofstream(path, std::ios::binary) << set.SerializeAsString();
  auto described =
      ServerProcess::Start({absl::StrCat("--proxy_upstream=127.0.0.1:", port),
                            "--proxy_descriptor_set=" + path});
  ASSERT_TRUE(described.ok()) << described.status();
  auto described_stub = Upstream::NewStub(grpc::CreateChannel(
      (*described)->target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext unary_context;
  GetReply unary_reply;
  EXPECT_EQ(described_stub->Get(&unary_context, Request("x"), &unary_reply)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  auto reader = stub_->Watch(&context, Request("w"));
  GetReply reply;
  EXPECT_FALSE(reader->Read(&reply));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ProxyTest, BadProxySettingsStopStartUp) {
  CommandResult bad_pattern = RunBinary(
      "singleflightd", {"--listen=127.0.0.1:0", "--proxy_upstream=127.0.0.1:1",
                        "--proxy_coalesce=/no-method"});
  EXPECT_NE(bad_pattern.exit_code, 0);
  EXPECT_THAT(bad_pattern.err, HasSubstr("--proxy_coalesce=/no-method"));
  CommandResult no_upstream = RunBinary(
      "singleflightd",
      {"--listen=127.0.0.1:0", std::string("--proxy_coalesce=") + kGet});
  EXPECT_NE(no_upstream.exit_code, 0);
  EXPECT_THAT(no_upstream.err, HasSubstr("need a proxy upstream"));
  CommandResult bad_set = RunBinary(
      "singleflightd", {"--listen=127.0.0.1:0", "--proxy_upstream=127.0.0.1:1",
                        "--proxy_descriptor_set=/nonexistent.pb"});
  EXPECT_NE(bad_set.exit_code, 0);
  EXPECT_THAT(bad_set.err, HasSubstr("cannot read /nonexistent.pb"));
}

TEST_F(ProxyTest, CallerTokensGuardProxiedMethodsAndStayInTheTier) {
  upstream_ = UpstreamServer::Start(nullptr, /*reflection=*/true);
  ASSERT_NE(upstream_, nullptr);
  std::string token_file = ::testing::TempDir() + "proxy_caller.token";
  std::ofstream(token_file) << "caller-secret\n";
  StartProxy(absl::StrCat("127.0.0.1:", upstream_->port()),
             {"--caller_token_file=" + token_file});
  EXPECT_EQ(Get(Request("guarded")).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  Seen allowed =
      Get(Request("guarded"), {{"authorization", "Bearer caller-secret"}});
  EXPECT_TRUE(allowed.status.ok()) << allowed.status.error_message();
  for (const auto& [name, value] : upstream_->LastMetadata("guarded")) {
    EXPECT_NE(name, "authorization");
  }
}

// Sends `messages` raw request messages on `method`, half-closes, and
// returns the call's status.
grpc::Status SendRaw(grpc::GenericStub& stub, const std::string& method,
                     const std::vector<std::string>& messages) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  grpc::CompletionQueue queue;
  auto call = stub.PrepareCall(&context, method, &queue);
  void* tag = nullptr;
  bool ok = false;
  int next = 1;
  call->StartCall(reinterpret_cast<void*>(next++));
  queue.Next(&tag, &ok);
  for (const std::string& message : messages) {
    grpc::Slice slice(message);
    grpc::ByteBuffer buffer(&slice, 1);
    call->Write(buffer, reinterpret_cast<void*>(next++));
    queue.Next(&tag, &ok);
  }
  call->WritesDone(reinterpret_cast<void*>(next++));
  queue.Next(&tag, &ok);
  grpc::ByteBuffer reply;
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(next++));
  // Reads are not requested: Finish drains the call.
  queue.Next(&tag, &ok);
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  return status;
}

TEST_F(ProxyTest, MalformedCallsGetAClearStatusAndTheProxyGoesOn) {
  StartBoth(/*reflection=*/true, {std::string("--proxy_coalesce=") + kGet});
  grpc::GenericStub generic(channel_);
  std::string request = Request("twice").SerializeAsString();
  grpc::Status twice = SendRaw(generic, kGet, {request, request});
  EXPECT_EQ(twice.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(twice.error_message(), HasSubstr("more than one request"));
  grpc::Status none = SendRaw(generic, kGet, {});
  EXPECT_EQ(none.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(none.error_message(), HasSubstr("no request message"));
  // Bytes the upstream cannot parse: its own error comes back.
  grpc::Status garbage = SendRaw(generic, kGet, {"\xff\xff\xff"});
  EXPECT_FALSE(garbage.ok());
  EXPECT_EQ(upstream_->Calls("twice"), 0);
  // A method the upstream does not have.
  grpc::Status missing =
      SendRaw(generic, "/singleflight.testing.Upstream/Nope", {""});
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_TRUE(Get(Request("after")).status.ok());
}

// One HTTP/2 frame.
std::string Frame(uint8_t type, uint8_t flags, uint32_t stream,
                  const std::string& payload) {
  std::string frame;
  for (int shift : {16, 8, 0}) frame.push_back(char(payload.size() >> shift));
  frame.push_back(char(type));
  frame.push_back(char(flags));
  for (int shift : {24, 16, 8, 0}) frame.push_back(char(stream >> shift));
  return frame + payload;
}

// An HPACK literal header without indexing (short strings, no Huffman).
std::string Literal(const std::string& name, const std::string& value) {
  return std::string(1, '\0') + char(name.size()) + name + char(value.size()) +
         value;
}

// Sends one gRPC call of `path` with the extra header `name: value`, as a
// raw HTTP/2 client that checks nothing (gRPC's own clients refuse to send
// such headers), and reads the answer for up to 300 ms.
void SendRawCall(int port, const std::string& path, const std::string& name,
                 const std::string& value, const std::string& message) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  std::string headers = Literal(":method", "POST") +
                        Literal(":scheme", "http") + Literal(":path", path) +
                        Literal(":authority", "x") +
                        Literal("content-type", "application/grpc") +
                        Literal("te", "trailers") + Literal(name, value);
  std::string framed(1, '\0');
  for (int shift : {24, 16, 8, 0})
    framed.push_back(char(message.size() >> shift));
  framed += message;
  std::string bytes = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + Frame(4, 0, 0, "") +
                      Frame(1, 4, 1, headers) + Frame(0, 1, 1, framed);
  ASSERT_EQ(write(fd, bytes.data(), bytes.size()), ssize_t(bytes.size()));
  timeval timeout = {0, 300000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  char buffer[4096];
  while (read(fd, buffer, sizeof(buffer)) > 0) {
  }
  close(fd);
}

TEST_F(ProxyTest, MetadataGrpcCannotSendIsRefusedNotForwarded) {
  StartBoth(/*reflection=*/true,
            {std::string("--proxy_coalesce=") + kGet, "--config=" + [] {
               std::string path = ::testing::TempDir() + "proxy_forward.yaml";
               std::ofstream(path)
                   << "proxy:\n  coalesce:\n    - method: "
                      "/singleflight.testing.Upstream/Exchange\n"
                      "      key_metadata: [x-bad]\n"
                      "      forward_metadata: [x-bad]\n";
               return path;
             }()});
  int port =
      std::stoi(server_->target().substr(server_->target().rfind(':') + 1));
  std::string request = Request("raw").SerializeAsString();
  // Forwarded (Watch), coalesced (Get), coalesced and forwarded by policy.
  for (const char* path : {"/singleflight.testing.Upstream/Watch", kGet,
                           "/singleflight.testing.Upstream/Exchange"}) {
    SendRawCall(port, path, "x-bad", "a\x01b", request);
    SendRawCall(port, path, "X-Upper", "v", request);
    SendRawCall(port, path, "x-high", "caf\xe9", request);
  }
  // Still serving; only well-formed metadata went up.
  EXPECT_TRUE(Get(Request("after-raw")).status.ok());
}

TEST_F(ProxyTest, SpeaksTlsToTheUpstreamCheckedAgainstItsCa) {
  TestCertificates certificates;
  ASSERT_TRUE(certificates.ok()) << "openssl failed";
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back(
      {certificates.Pem("server.key"), certificates.Pem("server.pem")});
  upstream_ = UpstreamServer::Start(grpc::SslServerCredentials(options),
                                    /*reflection=*/true);
  ASSERT_NE(upstream_, nullptr);
  std::string address = absl::StrCat("127.0.0.1:", upstream_->port());
  StartProxy(address, {"--proxy_upstream_tls",
                       "--proxy_ca_file=" + certificates.Path("ca.pem"),
                       std::string("--proxy_coalesce=") + kGet});
  std::vector<Seen> seen = GetConcurrently(10, Request("secure", 300));
  for (const Seen& one : seen)
    EXPECT_TRUE(one.status.ok()) << one.status.error_message();
  EXPECT_EQ(upstream_->Calls("secure"), 1);
  // Against another CA, the upstream is not trusted.
  StartProxy(address, {"--proxy_upstream_tls",
                       "--proxy_ca_file=" + certificates.Path("rogue_ca.pem"),
                       std::string("--proxy_coalesce=") + kGet});
  EXPECT_EQ(Get(Request("secure")).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ProxyTest, APatternsTimeoutEndsItsFlightsAndCancelsTheUpstreamCall) {
  upstream_ = UpstreamServer::Start(nullptr, /*reflection=*/true);
  ASSERT_NE(upstream_, nullptr);
  std::string config = ::testing::TempDir() + "proxy_timeout.yaml";
  std::ofstream(config) << "proxy:\n  coalesce:\n    - method: " << kGet
                        << "\n      timeout: 300ms\n";
  StartProxy(absl::StrCat("127.0.0.1:", upstream_->port()),
             {"--config=" + config});
  GetRequest hang = Request("too-slow");
  hang.set_hang(true);
  std::vector<Seen> seen = GetConcurrently(3, hang);
  for (const Seen& one : seen) {
    EXPECT_EQ(one.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  EXPECT_EQ(upstream_->Calls("too-slow"), 1);
  EXPECT_TRUE(upstream_->WaitForCancelled("too-slow", absl::Seconds(10)));
}

TEST_F(ProxyTest, CallsBeyondMaxCallsAreRefused) {
  upstream_ = UpstreamServer::Start(nullptr, /*reflection=*/true);
  ASSERT_NE(upstream_, nullptr);
  std::string config = ::testing::TempDir() + "proxy_max_calls.yaml";
  std::ofstream(config) << "proxy:\n  max_calls: 2\n";
  StartProxy(absl::StrCat("127.0.0.1:", upstream_->port()),
             {"--config=" + config});
  GetRequest hang = Request("held");
  hang.set_hang(true);
  std::vector<std::unique_ptr<grpc::ClientContext>> held;
  std::vector<std::unique_ptr<grpc::ClientReader<GetReply>>> readers;
  for (int i = 0; i < 2; ++i) {
    held.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(stub_->Watch(held.back().get(), hang));
  }
  ASSERT_TRUE(upstream_->WaitForCalls("held", 2, absl::Seconds(10)));
  Seen refused = Get(Request("third"));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("max_calls"));
  for (auto& context : held) context->TryCancel();
  for (auto& reader : readers) reader->Finish();
  EXPECT_TRUE(PollUntil(absl::Seconds(10),
                        [this] { return Get(Request("fourth")).status.ok(); }));
}

TEST_F(ProxyTest, CallersCancellingAtAnyMomentLeaveNothingBehind) {
  StartBoth(/*reflection=*/true, {std::string("--proxy_coalesce=") + kGet});
  std::vector<std::thread> callers;
  for (int i = 0; i < 8; ++i) {
    callers.emplace_back([this, i] {
      for (int j = 0; j < 25; ++j) {
        absl::Duration deadline = absl::Milliseconds(1 + (i * 25 + j) % 40);
        Get(Request(absl::StrCat("storm-", j % 3), 20), {}, deadline);
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
        auto stream = stub_->Exchange(&context);
        stream->Write(Request("storm"));
        GetReply reply;
        stream->Read(&reply);
        stream->Finish();
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  std::unique_ptr<Client> client = Client::Connect(server_->target());
  EXPECT_TRUE(PollUntil(absl::Seconds(10), [&client] {
    absl::StatusOr<v1::InFlightResponse> flights = client->InFlight();
    return flights.ok() && flights->flights_size() == 0;
  }));
  EXPECT_TRUE(Get(Request("after")).status.ok());
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
