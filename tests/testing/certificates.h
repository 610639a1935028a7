#ifndef SINGLEFLIGHT_TESTS_TESTING_CERTIFICATES_H_
#define SINGLEFLIGHT_TESTS_TESTING_CERTIFICATES_H_

#include <string>

namespace singleflight {

// Test certificates, made by openssl in a directory of their own under the
// test's temporary directory (removed by the destructor). Each NAME has
// NAME.pem and NAME.key:
//   ca, rogue_ca   two CAs;
//   server         from ca, for IP 127.0.0.1 and DNS localhost;
//   named_server   from ca, for DNS origin.test only;
//   client         a client certificate from ca;
//   rogue          a client certificate from rogue_ca;
//   rogue_server   from rogue_ca, for 127.0.0.1 and localhost.
//
// Thread-compatible.
class TestCertificates {
 public:
  TestCertificates();
  ~TestCertificates();
  TestCertificates(const TestCertificates&) = delete;
  TestCertificates& operator=(const TestCertificates&) = delete;

  // Whether openssl made them all.
  bool ok() const { return ok_; }
  // The path of file `name` (for example "ca.pem"), and its contents.
  std::string Path(const std::string& name) const;
  std::string Pem(const std::string& name) const;

 private:
  const std::string dir_;
  bool ok_ = false;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_TESTS_TESTING_CERTIFICATES_H_
