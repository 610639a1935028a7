#ifndef SINGLEFLIGHT_SERVER_ACCESS_CONTROL_H_
#define SINGLEFLIGHT_SERVER_ACCESS_CONTROL_H_

#include <grpcpp/support/string_ref.h>

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace singleflight {

// What a call needs to be allowed.
enum class Role {
  kCaller,  // Do, DoStream.
  kAdmin,   // Forget, InFlight (and everything a caller may do).
};

// Bearer-token access control: callers present `authorization: Bearer TOKEN`.
// A caller token allows Do and DoStream; an admin token allows every RPC.
// Without any token configured, every call is allowed. Tokens are compared in
// constant time.
//
// Thread-safe: Check may run on any thread while Replace swaps the tokens
// (a token file reloaded on SIGHUP).
class AccessControl {
 public:
  // No tokens: everything is allowed.
  AccessControl() = default;
  AccessControl(const AccessControl& other);
  AccessControl& operator=(const AccessControl& other);

  // Tokens read from files (surrounding whitespace trimmed) or, for an empty
  // path, from the environment variables SINGLEFLIGHT_CALLER_TOKEN and
  // SINGLEFLIGHT_ADMIN_TOKEN; never from flag values, which show in `ps`.
  // Fails with NOT_FOUND for an unreadable file and INVALID_ARGUMENT for an
  // empty token.
  static absl::StatusOr<AccessControl> Load(const std::string& caller_file,
                                            const std::string& admin_file);

  AccessControl(std::string caller_token, std::string admin_token);

  bool enabled() const;

  // Takes the tokens of `other` from now on; calls checked before keep the
  // answer they got.
  void Replace(const AccessControl& other);

  // OK if `metadata` carries a token that allows `role`; UNAUTHENTICATED if
  // it carries no valid token, PERMISSION_DENIED if its token's role is
  // too low.
  absl::Status Check(
      const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
      Role role) const;

 private:
  mutable absl::Mutex mu_;
  std::string caller_token_ ABSL_GUARDED_BY(mu_);
  std::string admin_token_ ABSL_GUARDED_BY(mu_);
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_ACCESS_CONTROL_H_
