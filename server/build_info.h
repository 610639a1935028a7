#ifndef SINGLEFLIGHT_SERVER_BUILD_INFO_H_
#define SINGLEFLIGHT_SERVER_BUILD_INFO_H_

namespace singleflight {

// What this binary was built from: the project's version (CMake's
// PROJECT_VERSION) and the git commit of the source tree when the build
// was last configured ("unknown" outside a git checkout; "-dirty" when it
// had uncommitted changes).
const char* BuildVersion();
const char* BuildCommit();

}  // namespace singleflight

#endif  // SINGLEFLIGHT_SERVER_BUILD_INFO_H_
