#include "server/build_info.h"

namespace singleflight {

// SF_VERSION and SF_COMMIT are defined for this file only
// (server/CMakeLists.txt).
const char* BuildVersion() { return SF_VERSION; }
const char* BuildCommit() { return SF_COMMIT; }

}  // namespace singleflight
