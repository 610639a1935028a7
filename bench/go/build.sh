#!/usr/bin/env bash
# Builds the Go baseline server, offline, from Debian 12's Go packages:
#   bench/go/build.sh OUT_DIR      ->  OUT_DIR/sf-go-baseline
# Installs the missing packages first (scripts/install-deps.sh), then
# works in GOPATH mode under OUT_DIR (stubs generated from
# proto/singleflight/v1/singleflight.proto into OUT_DIR/gopath; nothing
# generated is committed). No network is used but apt's. Never run in CI.
set -euo pipefail
if (($# != 1)); then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"

"$root/scripts/install-deps.sh" golang-go golang-golang-x-sync-dev \
  golang-google-grpc-dev golang-goprotobuf-dev protoc-gen-go-grpc

# Debian's protoc-gen-go is v1.3 (APIv1, what Debian's grpc-go 1.33 is built
# with), so the well-known Duration comes from github.com/golang/protobuf.
src="$out/gopath/src/sfbaseline"
gen="$out/gen"
rm -rf "$src" "$gen"
mkdir -p "$src/singleflight_v1" "$gen"
cp "$root/bench/go/main.go" "$src/"
proto=singleflight/v1/singleflight.proto
map="M$proto=sfbaseline/singleflight_v1"
map+=",Mgoogle/protobuf/duration.proto=github.com/golang/protobuf/ptypes/duration"
protoc -I "$root/proto" -I /usr/include \
  --plugin=protoc-gen-go=/usr/bin/protoc-gen-go \
  --plugin=protoc-gen-go-grpc=/usr/bin/protoc-gen-go-grpc \
  --go_out="$map,paths=source_relative:$gen" \
  --go-grpc_out="$map,paths=source_relative:$gen" \
  "$root/proto/$proto"
mv "$gen"/singleflight/v1/*.go "$src/singleflight_v1/"

export GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0
export GOPATH="$out/gopath:/usr/share/gocode" GOCACHE="$out/.gocache"
cd "$src"
go vet . ./singleflight_v1
go build -trimpath -o "$out/sf-go-baseline" .
echo "bench/go/build.sh: built $out/sf-go-baseline ($(go version))"
