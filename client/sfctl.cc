// sfctl: the command-line client of singleflightd (see kUsage below).
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "HOST:PORT of the server");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30),
          "deadline of each call, retries included, for example 500ms or 2s");
ABSL_FLAG(bool, json, false,
          "print JSON (one document per line) instead of text");
ABSL_FLAG(bool, tls, false,
          "connect with TLS, trusting the system's roots unless --ca_cert "
          "says otherwise");
ABSL_FLAG(std::string, ca_cert, "",
          "PEM file of the roots the server's certificate must chain to; "
          "implies --tls");
ABSL_FLAG(std::string, client_cert, "",
          "PEM certificate chain presented to the server (mutual TLS); needs "
          "--client_key; implies --tls");
ABSL_FLAG(std::string, client_key, "",
          "PEM private key of --client_cert; implies --tls");
ABSL_FLAG(std::string, token_file, "",
          "file holding a bearer token to send with every call (for a "
          "server started with token files)");
ABSL_FLAG(int, max_receive_message_bytes,
          singleflight::kDefaultMaxReceiveMessageBytes,
          "largest reply accepted (default: the server's largest value, 64 "
          "MiB, and its framing); -1 for no limit");
ABSL_FLAG(std::string, fetcher, "",
          "do, stream, forget: the fetcher to use; empty selects the "
          "server's default");
ABSL_FLAG(std::string, payload, "",
          "do: handed to the fetcher if this call starts the flight");
ABSL_FLAG(int, n, 1,
          "do: number of concurrent callers; above 1, prints a summary "
          "instead of the value");
ABSL_FLAG(bool, watch, false,
          "inflight: refresh every --watch_interval, like top, until "
          "interrupted or --watch_count refreshes");
ABSL_FLAG(absl::Duration, watch_interval, absl::Seconds(1),
          "inflight --watch: time between refreshes");
ABSL_FLAG(int, watch_count, 0,
          "inflight --watch: stop after this many refreshes (0: never)");

namespace singleflight {
namespace {

using ::grpc::health::v1::HealthCheckResponse;

constexpr char kUsage[] =
    R"(sfctl talks to singleflightd (singleflight.v1.SingleFlight).

Usage: sfctl [--target=HOST:PORT] [--timeout=DURATION] [--json]
             [--tls] [--ca_cert=FILE] [--client_cert=FILE --client_key=FILE]
             [--token_file=FILE] COMMAND ...

Commands (their options may come before or after their arguments):
  do KEY [--fetcher=F] [--payload=P] [-n N]
      Joins or starts the flight for KEY and prints its value; a value from
      the fetcher's cache is followed by a line
        age=DURATION stale=BOOL
      With -n N
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
      Go's Forget: prints forgotten=true if a flight for KEY was running
      (and drops KEY's cached value, if the fetcher has a cache policy).
  purge [PREFIX] [--fetcher=F]
      Drops every cached value of the fetcher whose key starts with PREFIX
      (all of them without one), for every tenant: prints dropped=N.
  inflight [--watch [--watch_interval=1s] [--watch_count=N]]
      Prints the flights in progress, oldest first:
        fetcher=F key=KEY waiters=N age=DURATION forgotten=BOOL
      With --watch, refreshes every --watch_interval like top (clearing a
      terminal; elsewhere each refresh follows the last), each refresh
      headed by "HH:MM:SS TARGET: N in flight", until interrupted or after
      --watch_count refreshes.
  health [SERVICE]
      grpc.health.v1.Health/Check of SERVICE (default: the whole server);
      prints SERVING, NOT_SERVING, ... and exits 0 only for SERVING.

--json prints one JSON document per line, in the proto3 JSON mapping that
grpcurl and buf curl print (byte strings such as values are base64):
  do          {"value":"aGVsbG8=","shared":false}
  do -n N     {"replies":R,"shared":S,"errors":E,"distinct_values":V,
               "error_counts":{"CODE: message":COUNT}}
  stream      each reply: {"id":"1","value":"YQ==","shared":false} (a failed
              item also has "status":{"code":CODE,"message":"..."})
  forget      {"forgotten":true}
  inflight    {"flights":[{"fetcher":"F","key":"K","waiters":1,
               "age":"0.400s","forgotten":false}]} (oldest first; one
              document per refresh with --watch)
  health      {"status":"SERVING"}

TLS: --tls, --ca_cert, --client_cert and --client_key connect with TLS; a
plaintext server then fails the call with UNAVAILABLE (handshake failed).
--token_file=FILE sends "authorization: Bearer TOKEN" with every call, for a
server that checks tokens (UNAUTHENTICATED / PERMISSION_DENIED otherwise).

Calls that fail with UNAVAILABLE are retried (up to 4 attempts, with
exponential backoff) within --timeout, except forget. Every call naming a
key sends the x-flight-key routing header (docs/CLIENTS.md).

Exit status: 0 on success; 1 if a call or an item failed, with
"sfctl: CODE: message" on stderr (or health is not SERVING); 2 on a usage
error.)";

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

// Prints `message` as one line of proto3 JSON, default values included.
void PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  // Only a message with Any fields of unknown types can fail to print.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  absl::PrintF("%s\n", json);
  std::fflush(stdout);
}

google::protobuf::Value NumberValue(double number) {
  google::protobuf::Value value;
  value.set_number_value(number);
  return value;
}

int DoOnce(Client& client, const std::string& key, bool json) {
  absl::StatusOr<DoResult> result = client.Do(key, absl::GetFlag(FLAGS_fetcher),
                                              absl::GetFlag(FLAGS_payload));
  if (!result.ok()) return CallFailed(result.status());
  if (json) {
    google::protobuf::Struct reply;
    auto& fields = *reply.mutable_fields();
    fields["value"].set_string_value(absl::Base64Escape(result->value));
    fields["shared"].set_bool_value(result->shared);
    // As in the text form: only for a value from the fetcher's cache.
    if (result->age > absl::ZeroDuration() || result->stale) {
      fields["age_seconds"] = NumberValue(absl::ToDoubleSeconds(result->age));
      fields["stale"].set_bool_value(result->stale);
    }
    PrintJson(reply);
    return 0;
  }
  std::fwrite(result->value.data(), 1, result->value.size(), stdout);
  std::fputc('\n', stdout);
  if (result->age > absl::ZeroDuration() || result->stale) {
    absl::PrintF("age=%s stale=%s\n", absl::FormatDuration(result->age),
                 result->stale ? "true" : "false");
  }
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

  // Prints the summary, as text or JSON; returns the exit status.
  int Report(bool json) {
    absl::MutexLock lock(&mu_);
    int error_count = 0;
    for (const auto& [error, count] : errors_) error_count += count;
    if (json) {
      google::protobuf::Struct summary;
      auto& fields = *summary.mutable_fields();
      fields["replies"] = NumberValue(replies_);
      fields["shared"] = NumberValue(shared_);
      fields["errors"] = NumberValue(error_count);
      fields["distinct_values"] = NumberValue(values_.size());
      auto& counts = *fields["error_counts"].mutable_struct_value();
      for (const auto& [error, count] : errors_) {
        (*counts.mutable_fields())[error] = NumberValue(count);
      }
      PrintJson(summary);
    } else {
      absl::PrintF("replies=%d shared=%d errors=%d distinct_values=%d\n",
                   replies_, shared_, error_count, values_.size());
      for (const auto& [error, count] : errors_) {
        absl::FPrintF(stderr, "error: %s (x%d)\n", error, count);
      }
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

int DoConcurrently(Client& client, const std::string& key, int callers,
                   bool json) {
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
  return tally.Report(json);
}

int Stream(Client& client, const std::vector<std::string>& keys, bool json) {
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
        if (reply.status().code() != 0) item_failed = true;
        if (json) {
          PrintJson(reply);
          return;
        }
        if (reply.status().code() != 0) {
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

int Forget(Client& client, const std::string& key, bool json) {
  absl::StatusOr<bool> forgotten =
      client.Forget(key, absl::GetFlag(FLAGS_fetcher));
  if (!forgotten.ok()) return CallFailed(forgotten.status());
  if (json) {
    v1::ForgetResponse response;
    response.set_forgotten(*forgotten);
    PrintJson(response);
  } else {
    absl::PrintF("forgotten=%s\n", *forgotten ? "true" : "false");
  }
  return 0;
}

int Purge(Client& client, const std::string& prefix, bool json) {
  absl::StatusOr<uint64_t> dropped =
      client.Purge(prefix, absl::GetFlag(FLAGS_fetcher));
  if (!dropped.ok()) return CallFailed(dropped.status());
  if (json) {
    v1::PurgeResponse response;
    response.set_dropped(*dropped);
    PrintJson(response);
  } else {
    absl::PrintF("dropped=%d\n", *dropped);
  }
  return 0;
}

absl::Duration Age(const v1::Flight& flight) {
  return absl::Seconds(flight.age().seconds()) +
         absl::Nanoseconds(flight.age().nanos());
}

// The flights in progress, oldest first.
absl::StatusOr<v1::InFlightResponse> OldestFirst(Client& client) {
  absl::StatusOr<v1::InFlightResponse> response = client.InFlight();
  if (!response.ok()) return response.status();
  auto& flights = *response->mutable_flights();
  std::stable_sort(
      flights.begin(), flights.end(),
      [](const v1::Flight& a, const v1::Flight& b) { return Age(a) > Age(b); });
  return response;
}

void PrintFlights(const v1::InFlightResponse& response, bool json) {
  if (json) {
    PrintJson(response);
    return;
  }
  for (const v1::Flight& flight : response.flights()) {
    absl::PrintF("fetcher=%s key=%s waiters=%d age=%.1fs forgotten=%s\n",
                 flight.fetcher(), flight.key(), flight.waiters(),
                 absl::ToDoubleSeconds(Age(flight)),
                 flight.forgotten() ? "true" : "false");
  }
  std::fflush(stdout);
}

int InFlightOnce(Client& client, bool json) {
  absl::StatusOr<v1::InFlightResponse> response = OldestFirst(client);
  if (!response.ok()) return CallFailed(response.status());
  PrintFlights(*response, json);
  return 0;
}

// inflight --watch: a refresh every `interval`, `count` times (0: forever).
// A failed refresh is reported and the watch goes on; returns 1 if any
// failed.
int WatchInFlight(Client& client, bool json, absl::Duration interval,
                  int count) {
  const bool terminal = !json && isatty(STDOUT_FILENO);
  const std::string target = absl::GetFlag(FLAGS_target);
  int exit_status = 0;
  for (int refresh = 0; count == 0 || refresh < count; ++refresh) {
    if (refresh > 0) absl::SleepFor(interval);
    absl::StatusOr<v1::InFlightResponse> response = OldestFirst(client);
    if (terminal) absl::PrintF("\033[H\033[2J");  // Home, clear screen.
    if (!json) {
      absl::PrintF(
          "%s %s: %s\n",
          absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone()),
          target,
          response.ok()
              ? absl::StrFormat("%d in flight", response->flights_size())
              : Describe(response.status()));
    }
    if (response.ok()) {
      PrintFlights(*response, json);
    } else {
      exit_status = 1;
      if (json) CallFailed(response.status());
    }
    if (!json && !terminal) absl::PrintF("\n");
    std::fflush(stdout);
  }
  return exit_status;
}

int Health(Client& client, const std::string& service, bool json) {
  absl::StatusOr<HealthCheckResponse::ServingStatus> status =
      client.Health(service);
  if (!status.ok()) return CallFailed(status.status());
  if (json) {
    HealthCheckResponse response;
    response.set_status(*status);
    PrintJson(response);
  } else {
    absl::PrintF("%s\n", HealthCheckResponse::ServingStatus_Name(*status));
  }
  return *status == HealthCheckResponse::SERVING ? 0 : 1;
}

// The channel credentials the TLS flags ask for: null for plaintext.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials() {
  const std::string ca_cert = absl::GetFlag(FLAGS_ca_cert);
  const std::string client_cert = absl::GetFlag(FLAGS_client_cert);
  const std::string client_key = absl::GetFlag(FLAGS_client_key);
  if (!absl::GetFlag(FLAGS_tls) && ca_cert.empty() && client_cert.empty() &&
      client_key.empty()) {
    return nullptr;
  }
  return TlsCredentialsFromFiles(ca_cert, client_cert, client_key);
}

// The usage errors of flags that do not apply to `command`, if any.
std::string MisappliedFlag(const std::string& command) {
  if (command != "do" &&
      (absl::GetFlag(FLAGS_n) != 1 || !absl::GetFlag(FLAGS_payload).empty())) {
    return "-n and --payload apply to do only";
  }
  if ((command == "inflight" || command == "health") &&
      !absl::GetFlag(FLAGS_fetcher).empty()) {
    return "--fetcher does not apply to " + command;
  }
  if (command != "inflight" && absl::GetFlag(FLAGS_watch)) {
    return "--watch applies to inflight only";
  }
  if (!absl::GetFlag(FLAGS_watch) && absl::GetFlag(FLAGS_watch_count) != 0) {
    return "--watch_count needs --watch";
  }
  if (absl::GetFlag(FLAGS_watch_count) < 0) {
    return "--watch_count must not be negative";
  }
  if (absl::GetFlag(FLAGS_watch_interval) <= absl::ZeroDuration()) {
    return "--watch_interval must be positive";
  }
  return "";
}

// Runs COMMAND ARGS... (`args`, the positional arguments); the flags are
// already parsed.
int Run(const std::vector<std::string>& args) {
  if (args.empty()) return UsageError("a command is required");
  const std::string& command = args[0];
  const size_t operands = args.size() - 1;
  const int callers = absl::GetFlag(FLAGS_n);
  const bool json = absl::GetFlag(FLAGS_json);
  if (std::string misapplied = MisappliedFlag(command); !misapplied.empty()) {
    return UsageError(misapplied);
  }

  ClientOptions options;
  options.timeout = absl::GetFlag(FLAGS_timeout);
  options.max_receive_message_bytes =
      absl::GetFlag(FLAGS_max_receive_message_bytes);
  if (options.timeout <= absl::ZeroDuration()) {
    return UsageError("--timeout must be positive");
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      Credentials();
  if (!credentials.ok()) {
    return UsageError(std::string(credentials.status().message()));
  }
  options.credentials = *std::move(credentials);
  if (std::string path = absl::GetFlag(FLAGS_token_file); !path.empty()) {
    std::ifstream file(path);
    std::stringstream token;
    token << file.rdbuf();
    if (!file) return UsageError("cannot read --token_file " + path);
    options.bearer_token = std::string(absl::StripAsciiWhitespace(token.str()));
  }
  std::unique_ptr<Client> client =
      Client::Connect(absl::GetFlag(FLAGS_target), options);

  if (command == "do") {
    if (operands != 1) return UsageError("do takes exactly one KEY");
    if (callers < 1 || callers > kMaxCallers) {
      return UsageError(
          absl::StrFormat("-n must be between 1 and %d", kMaxCallers));
    }
    return callers == 1 ? DoOnce(*client, args[1], json)
                        : DoConcurrently(*client, args[1], callers, json);
  }
  if (command == "stream") {
    if (operands == 0) return UsageError("stream takes at least one KEY");
    return Stream(*client, {args.begin() + 1, args.end()}, json);
  }
  if (command == "forget") {
    if (operands != 1) return UsageError("forget takes exactly one KEY");
    return Forget(*client, args[1], json);
  }
  if (command == "purge") {
    if (operands > 1) return UsageError("purge takes at most one PREFIX");
    return Purge(*client, operands == 1 ? args[1] : "", json);
  }
  if (command == "inflight") {
    if (operands != 0) return UsageError("inflight takes no arguments");
    if (absl::GetFlag(FLAGS_watch)) {
      return WatchInFlight(*client, json, absl::GetFlag(FLAGS_watch_interval),
                           absl::GetFlag(FLAGS_watch_count));
    }
    return InFlightOnce(*client, json);
  }
  if (command == "health") {
    if (operands > 1) return UsageError("health takes at most one SERVICE");
    return Health(*client, operands == 1 ? args[1] : "", json);
  }
  return UsageError(absl::StrFormat(
      "unknown command \"%s\" (known: do, stream, forget, purge, inflight, "
      "health)",
      command));
}

}  // namespace
}  // namespace singleflight

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(singleflight::kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  return singleflight::Run({positional.begin() + 1, positional.end()});
}
