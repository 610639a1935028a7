#ifndef SINGLEFLIGHT_SERVER_PEM_FILES_H_
#define SINGLEFLIGHT_SERVER_PEM_FILES_H_

#include <string>

#include "absl/status/status.h"

namespace singleflight {

// Checks a server's TLS files as a handshake would use them: `cert_file`
// holds a PEM certificate chain, `key_file` a PEM private key, and the key
// belongs to the chain's first certificate. NOT_FOUND for a file that cannot
// be read, INVALID_ARGUMENT (naming the file) for the rest.
absl::Status CheckCertificateAndKey(const std::string& cert_file,
                                    const std::string& key_file);

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_PEM_FILES_H_
