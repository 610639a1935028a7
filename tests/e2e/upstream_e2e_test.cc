// End-to-end tests of singleflightd with a gRPC upstream (in this process)
// and a plugin fetcher.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"
#include "tests/testing/upstream_server.h"

namespace singleflight {
namespace e2e {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string ExamplePluginPath() {
  return absl::StrCat(SF_PLUGIN_DIR, "/libsf_example_plugin.so");
}

// How a singleflightd that was expected to refuse its flags ended.
struct Refusal {
  // The exit code, or -1 if it did not exit by itself within 20 s.
  int exit_code = -1;
  std::string err;
};

// Runs singleflightd with `args`, its stderr going to an unlinked temporary
// file, and waits up to 20 s for it to exit; kills it if it does not.
Refusal RunSingleflightd(const std::vector<std::string>& args) {
  Refusal refusal;
  std::string path = ::testing::TempDir() + "singleflightd_err_XXXXXX";
  int err = mkostemp(path.data(), O_CLOEXEC);
  if (err < 0) {
    ADD_FAILURE() << "mkostemp: " << std::strerror(errno);
    return refusal;
  }
  unlink(path.c_str());
  std::string binary = absl::StrCat(SF_BIN_DIR, "/singleflightd");
  std::vector<char*> argv = {binary.data()};
  for (const std::string& arg : args) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, err, STDERR_FILENO);
  pid_t pid = 0;
  int error = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(),
                          environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    ADD_FAILURE() << "cannot run " << binary << ": " << std::strerror(error);
    close(err);
    return refusal;
  }
  int status = 0;
  bool exited = PollUntil(
      absl::Seconds(20), [&] { return waitpid(pid, &status, WNOHANG) == pid; });
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  } else if (WIFEXITED(status)) {
    refusal.exit_code = WEXITSTATUS(status);
  }
  char buffer[4096];
  ssize_t n;
  lseek(err, 0, SEEK_SET);
  while ((n = read(err, buffer, sizeof(buffer))) > 0) {
    refusal.err.append(buffer, n);
  }
  close(err);
  return refusal;
}

class UpstreamE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    upstream_ = UpstreamServer::Start();
    ASSERT_NE(upstream_, nullptr);
    auto server = ServerProcess::Start(
        {absl::StrCat("--fetcher=up=", upstream_->GetUri()),
         absl::StrCat("--fetcher=plug=plugin:", ExamplePluginPath(),
                      "?delay_ms=300&prefix=p-")});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = Client::Connect(server_->target());
  }

  std::unique_ptr<UpstreamServer> upstream_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(UpstreamE2eTest, HundredCallersMakeOneUpstreamCall) {
  testing::GetRequest get;
  get.set_key("hot");
  get.set_delay_ms(1500);
  const std::string payload = get.SerializeAsString();
  constexpr int kCallers = 100;
  std::vector<absl::StatusOr<DoResult>> results(kCallers);
  absl::Notification go;
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      go.WaitForNotification();
      results[i] = client_->Do("hot", "up", payload);
    });
  }
  go.Notify();
  for (std::thread& caller : callers) caller.join();

  EXPECT_EQ(upstream_->Calls("hot"), 1);
  std::set<std::string> values;
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(results[i].ok())
        << "caller " << i << ": " << results[i].status();
    EXPECT_TRUE(results[i]->shared) << "caller " << i;
    values.insert(results[i]->value);
  }
  ASSERT_EQ(values.size(), 1u);
  testing::GetReply reply;
  ASSERT_TRUE(reply.ParseFromString(*values.begin()));
  EXPECT_EQ(reply.value(), "value-of-hot");
  EXPECT_EQ(reply.call_number(), 1);
}

TEST_F(UpstreamE2eTest, UpstreamErrorReachesTheCaller) {
  testing::GetRequest get;
  get.set_key("missing");
  get.set_fail_code(static_cast<int>(absl::StatusCode::kNotFound));
  get.set_fail_message("no such thing");

  absl::StatusOr<DoResult> result =
      client_->Do("missing", "up", get.SerializeAsString());

  EXPECT_EQ(result.status(), absl::NotFoundError("no such thing"));
}

TEST_F(UpstreamE2eTest, PluginFetcherAnswersThroughTheServer) {
  absl::StatusOr<DoResult> result = client_->Do("abc", "plug");

  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->value, "p-cba");
}

TEST(UpstreamE2eRefusalTest, MissingPluginStopsTheServerWithAClearMessage) {
  const std::string path = "/nonexistent/libsf_missing_plugin.so";

  Refusal refusal = RunSingleflightd(
      {"--listen=127.0.0.1:0", absl::StrCat("--fetcher=bad=plugin:", path)});

  EXPECT_NE(refusal.exit_code, 0);
  EXPECT_NE(refusal.exit_code, -1) << "singleflightd did not exit";
  EXPECT_THAT(refusal.err,
              AllOf(HasSubstr("cannot load plugin"), HasSubstr(path)));
}

}  // namespace
}  // namespace e2e
}  // namespace singleflight
