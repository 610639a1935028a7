#ifndef SINGLEFLIGHT_CLIENT_FLIGHT_KEY_H_
#define SINGLEFLIGHT_CLIENT_FLIGHT_KEY_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace singleflight {

// The request header that names a call's flight, so that a proxy in front of
// several servers can send every call for one (fetcher, key) to the same
// server (for example nginx: `hash $http_x_flight_key consistent`).
inline constexpr char kFlightKeyHeader[] = "x-flight-key";

// The value of kFlightKeyHeader for (fetcher, key): FNV-1a 64 over the bytes
// of `fetcher`, one 0x00 byte, and the bytes of `key`, written as 16
// lower-case hex digits. The fetcher is hashed as sent: an empty fetcher (the
// server's default) and the default's name hash differently. The Python and
// Node clients compute the same value (tests/clients/flight_key_vectors.json).
inline std::string FlightKey(absl::string_view fetcher, absl::string_view key) {
  constexpr uint64_t kOffsetBasis = 0xcbf29ce484222325u;
  constexpr uint64_t kPrime = 0x100000001b3u;
  uint64_t hash = kOffsetBasis;
  auto add = [&hash](unsigned char byte) {
    hash ^= byte;
    hash *= kPrime;
  };
  for (char c : fetcher) add(static_cast<unsigned char>(c));
  add(0);
  for (char c : key) add(static_cast<unsigned char>(c));
  return absl::StrFormat("%016x", hash);
}

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CLIENT_FLIGHT_KEY_H_
