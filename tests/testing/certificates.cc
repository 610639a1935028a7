#include "tests/testing/certificates.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace singleflight {
namespace {

// A directory name unique within the process too.
std::string NewDirectory() {
  static std::atomic<int> count{0};
  return absl::StrCat(::testing::TempDir(), "/certs_", getpid(), "_",
                      count.fetch_add(1));
}

}  // namespace

TestCertificates::TestCertificates() : dir_(NewDirectory()) {
  std::string script =
      absl::StrCat("set -e; mkdir -p ", dir_, "; cd ", dir_, R"(
    q() { "$@" > /dev/null 2>&1; }
    ca() {  # NAME
      q openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" \
        -keyout $1.key -out $1.pem
    }
    leaf() {  # NAME CA EXT
      q openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout $1.key \
        -out $1.csr
      printf '%s\n' "$3" > $1.ext
      q openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key \
        -CAcreateserial -days 2 -out $1.pem -extfile $1.ext
    }
    ca ca; ca rogue_ca
    leaf server ca "subjectAltName=IP:127.0.0.1,DNS:localhost"
    leaf named_server ca "subjectAltName=DNS:origin.test"
    leaf client ca "extendedKeyUsage=clientAuth"
    leaf rogue rogue_ca "extendedKeyUsage=clientAuth"
    leaf rogue_server rogue_ca "subjectAltName=IP:127.0.0.1,DNS:localhost"
  )");
  ok_ = std::system(script.c_str()) == 0;
}

TestCertificates::~TestCertificates() {
  std::system(("rm -rf " + dir_).c_str());
}

std::string TestCertificates::Path(const std::string& name) const {
  return dir_ + "/" + name;
}

std::string TestCertificates::Pem(const std::string& name) const {
  std::ifstream file(Path(name));
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

}  // namespace singleflight
