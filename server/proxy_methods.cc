#include "server/proxy_methods.h"

#include <google/protobuf/descriptor.pb.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace singleflight {
namespace {

// A protobuf full name: dot-separated identifiers.
bool IsFullName(absl::string_view name) {
  if (name.empty() || name.front() == '.' || name.back() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(c) || c == '_' || c == '.';
  });
}

bool IsIdentifier(absl::string_view name) {
  return !name.empty() && name.find('.') == absl::string_view::npos &&
         IsFullName(name);
}

MethodKind KindOf(const google::protobuf::MethodDescriptorProto& method) {
  if (method.client_streaming()) {
    return method.server_streaming() ? MethodKind::kBidi
                                     : MethodKind::kClientStreaming;
  }
  return method.server_streaming() ? MethodKind::kServerStreaming
                                   : MethodKind::kUnary;
}

void AddFile(const google::protobuf::FileDescriptorProto& file,
             UpstreamMethods& methods) {
  std::string prefix =
      file.package().empty() ? "/" : "/" + file.package() + ".";
  for (const auto& service : file.service()) {
    for (const auto& method : service.method()) {
      methods.Add(absl::StrCat(prefix, service.name(), "/", method.name()),
                  KindOf(method));
    }
  }
}

}  // namespace

bool IsMethodPath(absl::string_view method) {
  if (!absl::ConsumePrefix(&method, "/")) return false;
  size_t slash = method.find('/');
  return slash != absl::string_view::npos &&
         IsFullName(method.substr(0, slash)) &&
         IsIdentifier(method.substr(slash + 1));
}

absl::StatusOr<MethodPattern> MethodPattern::Parse(absl::string_view pattern) {
  absl::string_view service = pattern;
  if (absl::ConsumeSuffix(&service, "/*") &&
      absl::ConsumePrefix(&service, "/") && IsFullName(service)) {
    return MethodPattern(absl::StrCat("/", service, "/"));
  }
  if (IsMethodPath(pattern)) return MethodPattern(std::string(pattern));
  return absl::InvalidArgumentError(absl::StrCat(
      "method pattern \"", pattern,
      "\" is neither /package.Service/Method nor /package.Service/*"));
}

bool MethodPattern::Matches(absl::string_view method) const {
  if (text_.back() != '/') return method == text_;
  return absl::StartsWith(method, text_) &&
         method.find('/', text_.size()) == absl::string_view::npos &&
         method.size() > text_.size();
}

absl::StatusOr<UpstreamMethods> UpstreamMethods::FromFileDescriptors(
    const std::vector<std::string>& files) {
  UpstreamMethods methods;
  for (const std::string& bytes : files) {
    google::protobuf::FileDescriptorProto file;
    if (!file.ParseFromString(bytes)) {
      return absl::InvalidArgumentError(
          "a file descriptor from the upstream does not parse");
    }
    AddFile(file, methods);
  }
  return methods;
}

absl::StatusOr<UpstreamMethods> UpstreamMethods::FromDescriptorSetFile(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream contents;
  contents << in.rdbuf();
  google::protobuf::FileDescriptorSet set;
  if (!set.ParseFromString(contents.str())) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        " is not a FileDescriptorSet (write one with protoc -o FILE or "
        "buf build -o FILE)"));
  }
  UpstreamMethods methods;
  for (const auto& file : set.file()) AddFile(file, methods);
  if (methods.size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " declares no service"));
  }
  return methods;
}

bool UpstreamMethods::Find(absl::string_view method, MethodKind& kind) const {
  auto it = kinds_.find(method);
  if (it == kinds_.end()) return false;
  kind = it->second;
  return true;
}

std::vector<std::string> UpstreamMethods::Paths() const {
  std::vector<std::string> paths;
  for (const auto& [path, kind] : kinds_) paths.push_back(path);
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace singleflight
