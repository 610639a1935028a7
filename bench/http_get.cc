#include "bench/http_get.h"

#include <curl/curl.h>

#include <algorithm>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace singleflight {
namespace bench {
namespace {

// The largest body HttpGet takes: a /metrics page is far smaller.
constexpr size_t kMaxBody = size_t{64} << 20;

// Stops the transfer (by taking fewer bytes than given) past kMaxBody.
size_t AppendBody(char* data, size_t size, size_t count, void* body) {
  auto* text = static_cast<std::string*>(body);
  if (text->size() + size * count > kMaxBody) return 0;
  text->append(data, size * count);
  return size * count;
}

}  // namespace

absl::StatusOr<std::string> HttpGet(absl::string_view url,
                                    absl::Duration timeout) {
  if (!absl::StartsWith(url, "http://") && !absl::StartsWith(url, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an http:// or https:// URL: ", url));
  }
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(),
                                                           &curl_easy_cleanup);
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  const std::string target(url);
  std::string body;
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl.get(), CURLOPT_URL, target.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  // At least 1 ms: 0 would mean no timeout at all.
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(
                       1, absl::ToInt64Milliseconds(timeout))));
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error);
  CURLcode code = curl_easy_perform(curl.get());
  std::string reason = error[0] != '\0' ? error : curl_easy_strerror(code);
  switch (code) {
    case CURLE_OK:
      break;
    case CURLE_URL_MALFORMAT:
      return absl::InvalidArgumentError(
          absl::StrCat("cannot fetch ", url, ": ", reason));
    case CURLE_OPERATION_TIMEDOUT:
      return absl::DeadlineExceededError(absl::StrCat(
          url, " did not answer within ", absl::FormatDuration(timeout)));
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", url, ": ", reason));
    default:
      return absl::UnavailableError(absl::StrCat(url, ": ", reason));
  }
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    return absl::UnavailableError(
        absl::StrCat(url, " answered HTTP ", status, ", not 200"));
  }
  return body;
}

}  // namespace bench
}  // namespace singleflight
