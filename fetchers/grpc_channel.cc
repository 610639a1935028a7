#include "fetchers/grpc_channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace singleflight {

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeBackendChannel(
    const std::string& address, bool use_tls, const BackendTls& tls,
    size_t max_receive_bytes) {
  absl::Status tls_usable = CheckBackendTls(tls);
  if (!tls_usable.ok()) return tls_usable;
  grpc::SslCredentialsOptions ssl;
  for (auto [file, pem] : {std::pair{&tls.ca_file, &ssl.pem_root_certs},
                           std::pair{&tls.cert_file, &ssl.pem_cert_chain},
                           std::pair{&tls.key_file, &ssl.pem_private_key}}) {
    if (file->empty()) continue;
    std::ifstream in(*file);
    std::stringstream contents;
    contents << in.rdbuf();
    *pem = contents.str();
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      use_tls ? grpc::SslCredentials(ssl) : grpc::InsecureChannelCredentials();
  grpc::ChannelArguments arguments;
  if (!tls.server_name.empty()) {
    arguments.SetSslTargetNameOverride(tls.server_name);
  }
  arguments.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<size_t>(max_receive_bytes, INT_MAX)));
  return grpc::CreateCustomChannel(address, credentials, arguments);
}

absl::StatusOr<Metadata> LowerCaseAndCheck(Metadata metadata,
                                           absl::string_view what) {
  for (auto& [name, value] : metadata) {
    absl::AsciiStrToLower(&name);
    bool name_ok = !name.empty() && !absl::StartsWith(name, "grpc-") &&
                   std::all_of(name.begin(), name.end(), [](char c) {
                     return absl::ascii_isdigit(c) || absl::ascii_islower(c) ||
                            c == '-' || c == '_' || c == '.';
                   });
    if (!name_ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " \"", name,
          "\" is not a gRPC metadata name (0-9 a-z - _ ., not grpc-*)"));
    }
    bool value_ok = absl::EndsWith(name, "-bin") ||
                    std::all_of(value.begin(), value.end(),
                                [](char c) { return c >= 0x20 && c <= 0x7e; });
    if (!value_ok) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " \"", name,
                       "\" has a value that is not printable ASCII; binary "
                       "values need a name ending in -bin"));
    }
  }
  return metadata;
}

}  // namespace singleflight
