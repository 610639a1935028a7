#include "server/access_control.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace singleflight {
namespace {

// Equal, in time that depends only on the lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return difference == 0;
}

absl::StatusOr<std::string> ReadToken(const std::string& file,
                                      const char* variable) {
  std::string token;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return absl::NotFoundError("cannot read token file " + file);
    std::stringstream contents;
    contents << in.rdbuf();
    token = std::string(absl::StripAsciiWhitespace(contents.str()));
    if (token.empty()) {
      return absl::InvalidArgumentError("token file " + file + " is empty");
    }
  } else if (const char* value = std::getenv(variable)) {
    token = std::string(absl::StripAsciiWhitespace(value));
    if (token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(variable, " is empty"));
    }
  }
  return token;
}

}  // namespace

absl::StatusOr<AccessControl> AccessControl::Load(
    const std::string& caller_file, const std::string& admin_file) {
  absl::StatusOr<std::string> caller =
      ReadToken(caller_file, "SINGLEFLIGHT_CALLER_TOKEN");
  if (!caller.ok()) return caller.status();
  absl::StatusOr<std::string> admin =
      ReadToken(admin_file, "SINGLEFLIGHT_ADMIN_TOKEN");
  if (!admin.ok()) return admin.status();
  return AccessControl(*std::move(caller), *std::move(admin));
}

AccessControl::AccessControl(std::string caller_token, std::string admin_token)
    : caller_token_(std::move(caller_token)),
      admin_token_(std::move(admin_token)) {}

AccessControl::AccessControl(const AccessControl& other) { Replace(other); }

AccessControl& AccessControl::operator=(const AccessControl& other) {
  if (this != &other) Replace(other);
  return *this;
}

void AccessControl::Replace(const AccessControl& other) {
  std::string caller, admin;
  {
    absl::ReaderMutexLock lock(&other.mu_);
    caller = other.caller_token_;
    admin = other.admin_token_;
  }
  absl::MutexLock lock(&mu_);
  caller_token_ = std::move(caller);
  admin_token_ = std::move(admin);
}

bool AccessControl::enabled() const {
  absl::ReaderMutexLock lock(&mu_);
  return !caller_token_.empty() || !admin_token_.empty();
}

absl::Status AccessControl::Check(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
    Role role) const {
  absl::ReaderMutexLock lock(&mu_);
  if (caller_token_.empty() && admin_token_.empty()) return absl::OkStatus();
  auto header = metadata.find("authorization");
  absl::string_view token;
  if (header != metadata.end()) {
    token = absl::string_view(header->second.data(), header->second.size());
  }
  if (!absl::ConsumePrefix(&token, "Bearer ") || token.empty()) {
    return absl::UnauthenticatedError(
        "this server wants \"authorization: Bearer TOKEN\"");
  }
  bool is_admin =
      !admin_token_.empty() && ConstantTimeEquals(token, admin_token_);
  bool is_caller =
      !caller_token_.empty() && ConstantTimeEquals(token, caller_token_);
  if (!is_admin && !is_caller) {
    return absl::UnauthenticatedError("the bearer token is not valid");
  }
  if (role == Role::kAdmin && !is_admin) {
    return absl::PermissionDeniedError("this call needs the admin token");
  }
  return absl::OkStatus();
}

}  // namespace singleflight
