#include "fetchers/http_fetcher.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "fetchers/cache_control.h"

namespace singleflight {
namespace {

constexpr absl::string_view kKeyPlaceholder = "{key}";
// How much of an error answer's body its status message quotes.
constexpr size_t kQuotedBodyBytes = 200;
// The event thread's longest sleep. libcurl's own timers, and
// curl_multi_wakeup, end it sooner.
constexpr int kMaxPollMillis = 1000;

// libcurl's process-wide setup, done once, before the first multi handle.
CURLcode InitializeCurl() {
  static const CURLcode result = curl_global_init(CURL_GLOBAL_DEFAULT);
  return result;
}

// One HTTP request, and what has arrived of its answer. Owned by the
// fetcher's queue, then by the event thread.
struct Transfer {
  Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
    curl_slist_free_all(connect_to);
  }

  // Adds `line` to the headers; false if out of memory.
  bool AddHeader(const std::string& line) {
    curl_slist* longer = curl_slist_append(headers, line.c_str());
    if (longer == nullptr) return false;
    headers = longer;
    return true;
  }

  uint64_t id = 0;
  CURL* easy = nullptr;
  // Where the answer's Cache-Control goes (FetchRequest::directives), if
  // the fetcher's cache policy respects it.
  std::optional<CacheDirectives>* directives = nullptr;
  curl_slist* headers = nullptr;
  // With BackendTls::server_name: where to connect for that name.
  curl_slist* connect_to = nullptr;
  // The POST body, which libcurl reads in place.
  std::string payload;
  size_t max_value_bytes = 0;
  // The value; for an answer that is not 2xx, only the start of its body.
  std::string body;
  bool too_large = false;
  // Requests sent for this transfer (see OnRequestAboutToBeSent).
  int requests_sent = 0;
  char error[CURL_ERROR_SIZE] = "";
  FetchCallback done;
};

// libcurl's CURLOPT_PREREQFUNCTION, called each time a request is about to go
// out. When a reused keep-alive connection dies before any byte of the
// answer, libcurl quietly sends the request again on a new one: the origin
// may then see two requests for one flight. One flight, one origin request:
// a second one is refused, and the transfer fails.
int OnRequestAboutToBeSent(void* transfer_ptr, char*, char*, int, int) {
  auto* transfer = static_cast<Transfer*>(transfer_ptr);
  return ++transfer->requests_sent == 1 ? CURL_PREREQFUNC_OK
                                        : CURL_PREREQFUNC_ABORT;
}

// libcurl's CURLOPT_WRITEFUNCTION: collects the body. Returning less than
// given aborts the transfer.
size_t OnBodyData(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  size_t bytes = size * count;
  long http_status = 0;
  curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &http_status);
  if (http_status / 100 != 2) {
    size_t room = kQuotedBodyBytes + 1 -
                  std::min(transfer->body.size(), kQuotedBodyBytes + 1);
    transfer->body.append(data, std::min(bytes, room));
    return bytes;
  }
  if (bytes > transfer->max_value_bytes - transfer->body.size()) {
    transfer->too_large = true;
    return 0;
  }
  transfer->body.append(data, bytes);
  return bytes;
}

// The start of `text`, printable ASCII only, for a status message.
std::string Quote(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  std::string quoted;
  for (char c : text.substr(0, kQuotedBodyBytes)) {
    if (absl::ascii_isprint(c)) {
      quoted.push_back(c);
    } else {
      quoted.push_back(absl::ascii_isspace(c) ? ' ' : '?');
    }
  }
  if (text.size() > kQuotedBodyBytes) quoted.append("...");
  return quoted;
}

bool IsValidHeader(absl::string_view name, absl::string_view value) {
  return !name.empty() &&
         std::all_of(
             name.begin(), name.end(),
             [](char c) { return absl::ascii_isgraph(c) && c != ':'; }) &&
         value.find_first_of(absl::string_view("\r\n\0", 3)) ==
             absl::string_view::npos;
}

// The header line for libcurl, which sends an empty value only as `name;`.
std::string HeaderLine(absl::string_view name, absl::string_view value) {
  return value.empty() ? absl::StrCat(name, ";")
                       : absl::StrCat(name, ": ", value);
}

absl::StatusCode CurlErrorToCode(CURLcode error) {
  switch (error) {
    case CURLE_OPERATION_TIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
      return absl::StatusCode::kUnavailable;
    case CURLE_OUT_OF_MEMORY:
      return absl::StatusCode::kResourceExhausted;
    default:
      return absl::StatusCode::kInternal;
  }
}

// The status of a transfer that ended with `error` before a final answer.
absl::Status CurlError(CURLcode error, const char* detail) {
  std::string message =
      absl::StrCat("origin request failed: ", curl_easy_strerror(error));
  if (detail[0] != '\0') absl::StrAppend(&message, " (", Quote(detail), ")");
  return absl::Status(CurlErrorToCode(error), message);
}

// The status of a final answer that is not 2xx.
absl::Status HttpError(const Transfer& transfer, long http_status) {
  std::string message = absl::StrCat("origin answered HTTP ", http_status);
  if (http_status / 100 == 3) {
    char* location = nullptr;
    curl_easy_getinfo(transfer.easy, CURLINFO_REDIRECT_URL, &location);
    absl::StrAppend(&message, " (a redirect");
    if (location != nullptr) absl::StrAppend(&message, " to ", Quote(location));
    absl::StrAppend(&message, ", which is not followed)");
  }
  std::string body = Quote(transfer.body);
  if (!body.empty()) absl::StrAppend(&message, ": ", body);
  return absl::Status(HttpFetcher::HttpStatusToCode(http_status), message);
}

// What the answer's Cache-Control headers say, if it has any.
std::optional<CacheDirectives> Directives(CURL* easy) {
  std::string joined;
  curl_header* header = nullptr;
  for (size_t index = 0;
       curl_easy_header(easy, "Cache-Control", index, CURLH_HEADER, -1,
                        &header) == CURLHE_OK;
       ++index) {
    if (!joined.empty()) joined += ",";
    joined += header->value;
    if (index + 1 >= header->amount) break;
  }
  if (joined.empty()) return std::nullopt;
  return ParseCacheControl(joined);
}

// What a finished transfer delivers.
absl::StatusOr<std::string> Outcome(Transfer& transfer, CURLcode result) {
  long http_status = 0;
  curl_easy_getinfo(transfer.easy, CURLINFO_RESPONSE_CODE, &http_status);
  bool answered = http_status != 0;
  if (answered && http_status / 100 != 2) {
    return HttpError(transfer, http_status);
  }
  if (result == CURLE_OK) return std::move(transfer.body);
  if (result == CURLE_ABORTED_BY_CALLBACK && transfer.requests_sent > 1) {
    return absl::UnavailableError(
        "origin request failed: the connection closed before any answer "
        "(not sent again: one origin request per flight)");
  }
  if (transfer.too_large || result == CURLE_FILESIZE_EXCEEDED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("origin answer is larger than max_value_bytes (",
                     transfer.max_value_bytes, ")"));
  }
  return CurlError(result, transfer.error);
}

// Checks that `uri` is an origin URL with a host, which libcurl can parse.
absl::Status ValidateOriginUrl(const FetcherUri& uri) {
  absl::string_view authority = uri.target;
  bool has_authority = absl::ConsumePrefix(&authority, "//") &&
                       authority.substr(0, authority.find('/')) != "";
  std::string sample =
      absl::StrReplaceAll(uri.text, {{kKeyPlaceholder, "key"}});
  CURLU* url = curl_url();
  CURLUcode parsed = url == nullptr
                         ? CURLUE_OUT_OF_MEMORY
                         : curl_url_set(url, CURLUPART_URL, sample.c_str(), 0);
  char* host = nullptr;
  if (parsed == CURLUE_OK) parsed = curl_url_get(url, CURLUPART_HOST, &host, 0);
  bool has_host = parsed == CURLUE_OK && host != nullptr && host[0] != '\0';
  curl_free(host);
  curl_url_cleanup(url);
  if (has_authority && has_host) return absl::OkStatus();
  std::string message =
      absl::StrCat("fetcher URI \"", uri.text, "\" is not an origin URL like ",
                   uri.scheme, "://HOST[:PORT]/PATH/{key}");
  if (parsed != CURLUE_OK) {
    absl::StrAppend(&message, " (", curl_url_strerror(parsed), ")");
  }
  return absl::InvalidArgumentError(message);
}

// Addresses `url` to `server_name` (its host replaced, so that the
// certificate is checked against that name, sent as SNI and Host) while
// still connecting to the URL's own host and port, through
// transfer.connect_to.
absl::StatusOr<std::string> AddressTo(const std::string& url,
                                      const std::string& server_name,
                                      Transfer& transfer) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> parsed(curl_url(),
                                                             &curl_url_cleanup);
  char* host = nullptr;
  char* port = nullptr;
  if (parsed == nullptr ||
      curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK ||
      curl_url_get(parsed.get(), CURLUPART_HOST, &host, 0) != CURLUE_OK ||
      curl_url_get(parsed.get(), CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
          CURLUE_OK) {
    curl_free(host);
    return absl::InvalidArgumentError(absl::StrCat("cannot parse ", url));
  }
  std::string route =
      absl::StrCat(server_name, ":", port, ":", host, ":", port);
  curl_free(host);
  curl_free(port);
  char* renamed = nullptr;
  if (curl_url_set(parsed.get(), CURLUPART_HOST, server_name.c_str(), 0) !=
          CURLUE_OK ||
      curl_url_get(parsed.get(), CURLUPART_URL, &renamed, 0) != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls: server_name \"", server_name, "\" is not a host"));
  }
  std::string result(renamed);
  curl_free(renamed);
  transfer.connect_to = curl_slist_append(nullptr, route.c_str());
  if (transfer.connect_to == nullptr) {
    return absl::ResourceExhaustedError("cannot build CONNECT_TO");
  }
  curl_easy_setopt(transfer.easy, CURLOPT_CONNECT_TO, transfer.connect_to);
  return result;
}

// Builds the request for `request` on `url_template`, ready to be added to a
// multi handle.
absl::StatusOr<std::unique_ptr<Transfer>> NewTransfer(
    const std::string& url_template, const FetcherPolicy& policy,
    FetchRequest& request) {
  auto transfer = std::make_unique<Transfer>();
  transfer->directives = request.directives;
  transfer->easy = curl_easy_init();
  if (transfer->easy == nullptr) {
    return absl::ResourceExhaustedError("cannot create a libcurl handle");
  }
  CURL* easy = transfer->easy;
  char* escaped_key = curl_easy_escape(easy, request.key.data(),
                                       static_cast<int>(request.key.size()));
  if (escaped_key == nullptr) {
    return absl::ResourceExhaustedError("cannot percent-encode the key");
  }
  std::string url =
      absl::StrReplaceAll(url_template, {{kKeyPlaceholder, escaped_key}});
  curl_free(escaped_key);
  const BackendTls& tls = policy.tls;
  if (!tls.server_name.empty()) {
    absl::StatusOr<std::string> renamed =
        AddressTo(url, tls.server_name, *transfer);
    if (!renamed.ok()) return renamed.status();
    url = *std::move(renamed);
  }
  if (!tls.ca_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, tls.ca_file.c_str());
    // Only those roots: Debian's libcurl also trusts /etc/ssl/certs by
    // default (its CA path), which would let any public CA vouch too.
    curl_easy_setopt(easy, CURLOPT_CAPATH, nullptr);
  }
  if (!tls.cert_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_SSLCERT, tls.cert_file.c_str());
    curl_easy_setopt(easy, CURLOPT_SSLKEY, tls.key_file.c_str());
  }

  std::vector<std::string> lines;
  bool has_content_type = false;
  const Metadata& forwarded = request.metadata;
  for (const Metadata* headers : {&policy.headers, &forwarded}) {
    for (const auto& [name, value] : *headers) {
      if (!IsValidHeader(name, value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("metadata \"", absl::CHexEscape(name),
                         "\" cannot be sent as an HTTP header"));
      }
      has_content_type |= absl::EqualsIgnoreCase(name, "content-type");
      lines.push_back(HeaderLine(name, value));
    }
  }
  // No "Expect: 100-continue" round trip before a large POST body.
  lines.push_back("Expect:");
  if (!request.payload.empty()) {
    transfer->payload = std::move(request.payload);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(transfer->payload.size()));
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, transfer->payload.data());
    if (!has_content_type) {
      lines.push_back("Content-Type: application/octet-stream");
    }
  }
  for (const std::string& line : lines) {
    if (!transfer->AddHeader(line)) {
      return absl::ResourceExhaustedError("cannot build the HTTP headers");
    }
  }

  transfer->max_value_bytes = policy.max_value_bytes;
  long timeout_ms = 0;  // None, for an infinite timeout.
  if (policy.timeout != absl::InfiniteDuration()) {
    timeout_ms = static_cast<long>(
        std::clamp<int64_t>(absl::ToInt64Milliseconds(policy.timeout), 1,
                            std::numeric_limits<long>::max()));
  }
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "singleflight");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(
      easy, CURLOPT_MAXFILESIZE_LARGE,
      static_cast<curl_off_t>(std::min<uint64_t>(
          policy.max_value_bytes, std::numeric_limits<curl_off_t>::max())));
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBodyData);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
  curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, &OnRequestAboutToBeSent);
  curl_easy_setopt(easy, CURLOPT_PREREQDATA, transfer.get());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer.get());
  return transfer;
}

}  // namespace

// Runs the transfers of one HttpFetcher on one thread, through one libcurl
// multi handle (which keeps the connection cache).
//
// Thread-safe: Start, Cancel and Stop may be called from any thread; Run is
// the event thread.
class HttpFetcher::EventLoop {
 public:
  // Takes ownership of `multi`.
  explicit EventLoop(CURLM* multi) : multi_(multi) {}
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  // REQUIRES: Run has returned, or was never called.
  ~EventLoop() { curl_multi_cleanup(multi_); }

  // Hands `transfer` to the event thread. Returns its id, for Cancel.
  uint64_t Start(std::unique_ptr<Transfer> transfer) {
    uint64_t id;
    {
      absl::MutexLock lock(&mu_);
      id = next_id_++;
      transfer->id = id;
      queued_.push_back(std::move(transfer));
    }
    curl_multi_wakeup(multi_);
    return id;
  }

  // Aborts transfer `id` and drops its callback, unless it has finished.
  void Cancel(uint64_t id) {
    {
      absl::MutexLock lock(&mu_);
      cancelled_.push_back(id);
    }
    curl_multi_wakeup(multi_);
  }

  // Makes Run return soon.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    curl_multi_wakeup(multi_);
  }

  // Runs transfers until Stop, then aborts those left, dropping their
  // callbacks.
  void Run() {
    while (true) {
      std::vector<std::unique_ptr<Transfer>> queued;
      std::vector<uint64_t> cancelled;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) break;
        queued.swap(queued_);
        cancelled.swap(cancelled_);
      }
      for (std::unique_ptr<Transfer>& transfer : queued) {
        Add(std::move(transfer));
      }
      for (uint64_t id : cancelled) Abort(id);
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
        if (message->msg == CURLMSG_DONE) {
          Finish(message->easy_handle, message->data.result);
        }
      }
      curl_multi_poll(multi_, nullptr, 0, kMaxPollMillis, nullptr);
    }
    for (auto& [id, transfer] : running_) {
      curl_multi_remove_handle(multi_, transfer->easy);
    }
    running_.clear();
  }

 private:
  void Add(std::unique_ptr<Transfer> transfer) {
    CURLMcode added = curl_multi_add_handle(multi_, transfer->easy);
    if (added != CURLM_OK) {
      transfer->done(absl::InternalError(absl::StrCat(
          "cannot start an HTTP request: ", curl_multi_strerror(added))));
      return;
    }
    uint64_t id = transfer->id;
    running_.emplace(id, std::move(transfer));
  }

  void Abort(uint64_t id) {
    auto it = running_.find(id);
    if (it == running_.end()) return;  // Finished already.
    curl_multi_remove_handle(multi_, it->second->easy);
    running_.erase(it);
  }

  void Finish(CURL* easy, CURLcode result) {
    Transfer* finished = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &finished);
    auto it = running_.find(finished->id);
    std::unique_ptr<Transfer> transfer = std::move(it->second);
    running_.erase(it);
    curl_multi_remove_handle(multi_, easy);
    absl::StatusOr<std::string> outcome = Outcome(*transfer, result);
    if (outcome.ok() && transfer->directives != nullptr) {
      *transfer->directives = Directives(easy);
    }
    FetchCallback done = std::move(transfer->done);
    transfer.reset();
    done(std::move(outcome));
  }

  CURLM* const multi_;
  absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::unique_ptr<Transfer>> queued_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> cancelled_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The transfers added to multi_, by id. Event thread only.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Transfer>> running_;
};

absl::StatusOr<std::unique_ptr<Fetcher>> HttpFetcher::Create(
    const FetcherUri& uri, const FetcherPolicy& policy,
    const FetcherEnvironment& environment) {
  absl::Status valid_url = ValidateOriginUrl(uri);
  if (!valid_url.ok()) return valid_url;
  if (!policy.tls.empty() && uri.scheme != "https") {
    return absl::InvalidArgumentError("tls settings need an https:// URI");
  }
  absl::Status tls = CheckBackendTls(policy.tls);
  if (!tls.ok()) return tls;
  if (!policy.tls.server_name.empty()) {
    std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> probe(
        curl_url(), &curl_url_cleanup);
    if (probe == nullptr ||
        curl_url_set(probe.get(), CURLUPART_HOST,
                     policy.tls.server_name.c_str(), 0) != CURLUE_OK) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tls: server_name \"", policy.tls.server_name, "\" is not a host"));
    }
  }
  for (const auto& [name, value] : policy.headers) {
    if (!IsValidHeader(name, value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("header \"", absl::CHexEscape(name),
                       "\" is not a valid HTTP header"));
    }
  }
  CURLcode initialized = InitializeCurl();
  if (initialized != CURLE_OK) {
    return absl::InternalError(absl::StrCat("cannot initialize libcurl: ",
                                            curl_easy_strerror(initialized)));
  }
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) {
    return absl::InternalError("cannot create a libcurl multi handle");
  }
  return std::unique_ptr<Fetcher>(
      new HttpFetcher(uri.text, policy, std::make_shared<EventLoop>(multi)));
}

HttpFetcher::HttpFetcher(std::string url_template, const FetcherPolicy& policy,
                         std::shared_ptr<EventLoop> loop)
    : url_template_(std::move(url_template)),
      policy_(policy),
      loop_(std::move(loop)),
      thread_([loop = loop_.get()] { loop->Run(); }) {}

HttpFetcher::~HttpFetcher() {
  loop_->Stop();
  thread_.join();
}

void HttpFetcher::Fetch(FetchRequest request, FetchCallback done) {
  // Nobody wants the value: the callback may be dropped.
  if (request.cancellation->IsCancelled()) return;
  absl::StatusOr<std::unique_ptr<Transfer>> transfer =
      NewTransfer(url_template_, policy_, request);
  if (!transfer.ok()) {
    done(transfer.status());
    return;
  }
  (*transfer)->done = std::move(done);
  uint64_t id = loop_->Start(*std::move(transfer));
  // The signal may outlive the fetcher, and be raised on any thread.
  std::weak_ptr<EventLoop> loop = loop_;
  request.cancellation->OnCancel([loop, id] {
    if (std::shared_ptr<EventLoop> alive = loop.lock()) alive->Cancel(id);
  });
}

absl::StatusCode HttpFetcher::HttpStatusToCode(long http_status) {
  switch (http_status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kAborted;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 499:
      return absl::StatusCode::kCancelled;
    case 500:
      return absl::StatusCode::kInternal;
    case 501:
      return absl::StatusCode::kUnimplemented;
    case 502:
    case 503:
      return absl::StatusCode::kUnavailable;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
  }
  switch (http_status / 100) {
    case 2:
      return absl::StatusCode::kOk;
    case 3:
    case 4:
      return absl::StatusCode::kFailedPrecondition;
    case 5:
      return absl::StatusCode::kInternal;
    default:
      return absl::StatusCode::kUnknown;
  }
}

}  // namespace singleflight
