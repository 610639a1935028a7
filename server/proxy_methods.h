#ifndef SINGLEFLIGHT_SERVER_PROXY_METHODS_H_
#define SINGLEFLIGHT_SERVER_PROXY_METHODS_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace singleflight {

// What the proxy knows of an upstream's methods, and which of them it may
// coalesce. Immutable once built; thread-safe.

// A method name pattern: "/package.Service/Method", or "/package.Service/*"
// for every method of a service.
class MethodPattern {
 public:
  // Fails with INVALID_ARGUMENT on anything else.
  static absl::StatusOr<MethodPattern> Parse(absl::string_view pattern);

  bool Matches(absl::string_view method) const;
  const std::string& text() const { return text_; }

 private:
  explicit MethodPattern(std::string text) : text_(std::move(text)) {}
  // Ends with '/' for a whole service.
  std::string text_;
};

// Whether `method` is a well-formed "/package.Service/Method" path.
bool IsMethodPath(absl::string_view method);

enum class MethodKind { kUnary, kClientStreaming, kServerStreaming, kBidi };

// The methods an upstream serves and their kinds, by path
// ("/package.Service/Method"), from its protobuf descriptors.
class UpstreamMethods {
 public:
  // From serialized google.protobuf.FileDescriptorProto messages.
  // INVALID_ARGUMENT on bytes that do not parse.
  static absl::StatusOr<UpstreamMethods> FromFileDescriptors(
      const std::vector<std::string>& files);
  // From a file holding a serialized google.protobuf.FileDescriptorSet (as
  // `protoc -o FILE` or `buf build -o FILE` write it). NOT_FOUND if it cannot
  // be read, INVALID_ARGUMENT if it does not parse or declares no service.
  static absl::StatusOr<UpstreamMethods> FromDescriptorSetFile(
      const std::string& path);

  // The kind of `method`; false if it is not known.
  bool Find(absl::string_view method, MethodKind& kind) const;
  // Every method known, sorted.
  std::vector<std::string> Paths() const;
  size_t size() const { return kinds_.size(); }

  void Add(std::string path, MethodKind kind) {
    kinds_[std::move(path)] = kind;
  }

 private:
  absl::flat_hash_map<std::string, MethodKind> kinds_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_PROXY_METHODS_H_
