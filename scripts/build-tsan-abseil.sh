#!/usr/bin/env bash
# ThreadSanitizer sees only instrumented code, and Debian's Abseil is not: its
# Mutex would look like no synchronization at all. This builds the same
# Abseil (Debian's source package, same patches and version) with
# -fsanitize=thread into $1 (default build-tsan/abseil), once.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="$(realpath -m "${1:-build-tsan/abseil}")"
if [[ -f "$prefix/lib/cmake/absl/abslConfig.cmake" ]]; then
  exit 0
fi
work="$(dirname "$prefix")/abseil-src"
rm -rf "$work" && mkdir -p "$work/lists/partial"
cat > "$work/sources.list" <<'LIST'
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm-updates main
deb-src http://deb.debian.org/debian-security bookworm-security main
LIST
apt_options=(-o "Dir::Etc::sourcelist=$work/sources.list"
             -o "Dir::Etc::sourceparts=/nonexistent"
             -o "Dir::State::Lists=$work/lists" -q)
apt-get "${apt_options[@]}" update > /dev/null
version="$(dpkg-query -W -f='${Version}' libabsl-dev)"
(cd "$work" && apt-get "${apt_options[@]}" source --download-only \
  "abseil=$version" > /dev/null 2>&1)
dpkg-source -x "$work"/abseil_*.dsc "$work/tree" > /dev/null
cmake -S "$work/tree" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON -DBUILD_TESTING=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
  -DCMAKE_INSTALL_PREFIX="$prefix" > /dev/null
cmake --build "$work/build" --target install > /dev/null
rm -rf "$work"
