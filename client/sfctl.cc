// sfctl: the command-line client of singleflightd (see kUsage below).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/client.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "HOST:PORT of the server");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30),
          "deadline of each call, for example 500ms or 2s");
ABSL_FLAG(std::string, fetcher, "",
          "do, stream, forget: the fetcher to use; empty selects the "
          "server's default");
ABSL_FLAG(std::string, payload, "",
          "do: handed to the fetcher if this call starts the flight");
ABSL_FLAG(int, n, 1,
          "do: number of concurrent callers; above 1, prints a summary "
          "instead of the value");

namespace singleflight {
namespace {

constexpr char kUsage[] =
    R"(sfctl talks to singleflightd (singleflight.v1.SingleFlight).

Usage: sfctl [--target=HOST:PORT] [--timeout=DURATION] COMMAND ...

Commands (their options may come before or after their arguments):
  do KEY [--fetcher=F] [--payload=P] [-n N]
      Joins or starts the flight for KEY and prints its value. With -n N
      (N > 1), N callers call at once and one summary line is printed:
        replies=R shared=S errors=E distinct_values=V
      (R calls got a value, S of them shared their flight, E failed, with
      V different values), then one line per distinct error on stderr:
        error: CODE: message (xCOUNT)
  stream KEY... [--fetcher=F]
      Sends one request per KEY on one DoStream (ids 1, 2, ... in order)
      and prints each reply as it arrives:
        id=ID key=KEY shared=BOOL value=VALUE
        id=ID key=KEY error=CODE: message
  forget KEY [--fetcher=F]
      Go's Forget: prints forgotten=true if a flight for KEY was running.
  inflight
      Prints the flights in progress, oldest first:
        fetcher=F key=KEY waiters=N age=DURATION forgotten=BOOL

Exit status: 0 on success; 1 if a call or an item failed, with
"sfctl: CODE: message" on stderr; 2 on a usage error.)";

constexpr int kMaxCallers = 10000;

int UsageError(const std::string& message) {
  absl::FPrintF(stderr, "sfctl: %s\nRun 'sfctl --help' for usage.\n", message);
  return 2;
}

std::string Describe(const absl::Status& status) {
  return absl::StrFormat("%s: %s", absl::StatusCodeToString(status.code()),
                         status.message());
}

int CallFailed(const absl::Status& status) {
  absl::FPrintF(stderr, "sfctl: %s\n", Describe(status));
  return 1;
}

int DoOnce(Client& client, const std::string& key) {
  absl::StatusOr<DoResult> result = client.Do(key, absl::GetFlag(FLAGS_fetcher),
                                              absl::GetFlag(FLAGS_payload));
  if (!result.ok()) return CallFailed(result.status());
  std::fwrite(result->value.data(), 1, result->value.size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

// The outcomes of concurrent callers, tallied as they come in.
// Thread-safe.
class Tally {
 public:
  void Add(const absl::StatusOr<DoResult>& result) {
    absl::MutexLock lock(&mu_);
    if (!result.ok()) {
      ++errors_[Describe(result.status())];
      return;
    }
    ++replies_;
    if (result->shared) ++shared_;
    values_.insert(result->value);
  }

  // Prints the summary; returns the exit status.
  int Report() {
    absl::MutexLock lock(&mu_);
    int error_count = 0;
    for (const auto& [error, count] : errors_) error_count += count;
    absl::PrintF("replies=%d shared=%d errors=%d distinct_values=%d\n",
                 replies_, shared_, error_count, values_.size());
    for (const auto& [error, count] : errors_) {
      absl::FPrintF(stderr, "error: %s (x%d)\n", error, count);
    }
    return error_count == 0 ? 0 : 1;
  }

 private:
  absl::Mutex mu_;
  int replies_ ABSL_GUARDED_BY(mu_) = 0;
  int shared_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_set<std::string> values_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> errors_ ABSL_GUARDED_BY(mu_);
};

int DoConcurrently(Client& client, const std::string& key, int callers) {
  const std::string fetcher = absl::GetFlag(FLAGS_fetcher);
  const std::string payload = absl::GetFlag(FLAGS_payload);
  Tally tally;
  absl::Notification go;
  std::vector<std::thread> threads;
  threads.reserve(callers);
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&] {
      go.WaitForNotification();
      tally.Add(client.Do(key, fetcher, payload));
    });
  }
  go.Notify();
  for (std::thread& thread : threads) thread.join();
  return tally.Report();
}

int Stream(Client& client, const std::vector<std::string>& keys) {
  std::vector<v1::DoRequest> requests(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    requests[i].set_id(i + 1);
    requests[i].set_key(keys[i]);
    requests[i].set_fetcher(absl::GetFlag(FLAGS_fetcher));
  }
  bool item_failed = false;
  absl::Status status =
      client.DoStream(requests, [&](const v1::DoResponse& reply) {
        uint64_t id = reply.id();
        std::string key = id >= 1 && id <= keys.size() ? keys[id - 1] : "";
        if (reply.status().code() != 0) {
          item_failed = true;
          absl::PrintF("id=%d key=%s error=%s\n", id, key,
                       Describe(absl::Status(
                           static_cast<absl::StatusCode>(reply.status().code()),
                           reply.status().message())));
        } else {
          absl::PrintF("id=%d key=%s shared=%s value=%s\n", id, key,
                       reply.shared() ? "true" : "false", reply.value());
        }
        std::fflush(stdout);
      });
  if (!status.ok()) return CallFailed(status);
  return item_failed ? 1 : 0;
}

int Forget(Client& client, const std::string& key) {
  absl::StatusOr<bool> forgotten =
      client.Forget(key, absl::GetFlag(FLAGS_fetcher));
  if (!forgotten.ok()) return CallFailed(forgotten.status());
  absl::PrintF("forgotten=%s\n", *forgotten ? "true" : "false");
  return 0;
}

absl::Duration Age(const v1::Flight& flight) {
  return absl::Seconds(flight.age().seconds()) +
         absl::Nanoseconds(flight.age().nanos());
}

int InFlight(Client& client) {
  absl::StatusOr<v1::InFlightResponse> response = client.InFlight();
  if (!response.ok()) return CallFailed(response.status());
  std::vector<v1::Flight> flights(response->flights().begin(),
                                  response->flights().end());
  std::stable_sort(
      flights.begin(), flights.end(),
      [](const v1::Flight& a, const v1::Flight& b) { return Age(a) > Age(b); });
  for (const v1::Flight& flight : flights) {
    absl::PrintF("fetcher=%s key=%s waiters=%d age=%.1fs forgotten=%s\n",
                 flight.fetcher(), flight.key(), flight.waiters(),
                 absl::ToDoubleSeconds(Age(flight)),
                 flight.forgotten() ? "true" : "false");
  }
  return 0;
}

// Runs COMMAND ARGS... (`args`, the positional arguments); the flags are
// already parsed.
int Run(const std::vector<std::string>& args) {
  if (args.empty()) return UsageError("a command is required");
  const std::string& command = args[0];
  const size_t operands = args.size() - 1;
  const int callers = absl::GetFlag(FLAGS_n);
  if (command != "do" &&
      (callers != 1 || !absl::GetFlag(FLAGS_payload).empty())) {
    return UsageError("-n and --payload apply to do only");
  }
  if (command == "inflight" && !absl::GetFlag(FLAGS_fetcher).empty()) {
    return UsageError("--fetcher does not apply to inflight");
  }

  ClientOptions options;
  options.timeout = absl::GetFlag(FLAGS_timeout);
  if (options.timeout <= absl::ZeroDuration()) {
    return UsageError("--timeout must be positive");
  }
  std::unique_ptr<Client> client =
      Client::Connect(absl::GetFlag(FLAGS_target), options);

  if (command == "do") {
    if (operands != 1) return UsageError("do takes exactly one KEY");
    if (callers < 1 || callers > kMaxCallers) {
      return UsageError(
          absl::StrFormat("-n must be between 1 and %d", kMaxCallers));
    }
    return callers == 1 ? DoOnce(*client, args[1])
                        : DoConcurrently(*client, args[1], callers);
  }
  if (command == "stream") {
    if (operands == 0) return UsageError("stream takes at least one KEY");
    return Stream(*client, {args.begin() + 1, args.end()});
  }
  if (command == "forget") {
    if (operands != 1) return UsageError("forget takes exactly one KEY");
    return Forget(*client, args[1]);
  }
  if (command == "inflight") {
    if (operands != 0) return UsageError("inflight takes no arguments");
    return InFlight(*client);
  }
  return UsageError(absl::StrFormat(
      "unknown command \"%s\" (known: do, stream, forget, inflight)", command));
}

}  // namespace
}  // namespace singleflight

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(singleflight::kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  return singleflight::Run({positional.begin() + 1, positional.end()});
}
