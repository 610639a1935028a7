#!/usr/bin/env bash
# The Python client as an installed package, singleflight-client:
#   1. a fresh virtual environment outside the repository (seeing Debian's
#      grpcio and protobuf), and `pip install client/python` into it, offline
#      (the build generates the stubs into the package);
#   2. from outside the repository, with that environment's python: the sync
#      and the asyncio client call a singleflightd over TLS with a caller
#      token (refused without it), and over mutual TLS;
#   3. python_client_test.py against the installed package: a plain server,
#      the fake, and the TLS server with caller and admin tokens;
#   4. an sdist is self-contained: a wheel built from it away from the
#      repository holds the stubs, the .proto and py.typed.
#
# Usage: tests/clients/python_package_test.sh [BIN_DIR]
# BIN_DIR (default build/bin) holds singleflightd. Needs /usr/bin/python3 with
# Debian's python3-venv, python3-wheel, python3-grpcio and python3-protobuf;
# protoc and /usr/bin/grpc_python_plugin; openssl. No package index is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
bin=$(realpath "${1:-build/bin}")
source tests/clients/live_server.sh
sf_setup
unset PYTHONPATH
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
venv=$SF_WORK/venv
python=$venv/bin/python
outside=$SF_WORK/outside  # The working directory of what runs the package.
mkdir -p "$outside"

give_up_on_failure() {  # Later steps need the earlier ones.
  if ((sf_failed > 0)); then
    sf_summary python-package || true
    exit 1
  fi
}
logged() {  # LOG CMD...: runs CMD into LOG, shown if CMD fails.
  local log=$1
  shift
  "$@" >"$log" 2>&1 || { local status=$?; cat "$log"; return "$status"; }
}

# 1. A virtual environment, and the package installed into it.
sf_check "a venv outside the repository (Debian: python3-venv)" logged \
  "$SF_WORK/venv.log" timeout 120 /usr/bin/python3 -m venv \
  --system-site-packages "$venv"
give_up_on_failure
sf_check "it sees grpcio, protobuf and wheel (Debian: python3-grpcio, python3-wheel)" \
  "$python" -c 'import grpc, google.protobuf, wheel'
sf_check "pip install client/python, offline" logged "$SF_WORK/pip.log" \
  timeout 300 "$venv/bin/pip" install --no-build-isolation --no-index \
  "$repo/client/python"
give_up_on_failure

# TLS: a CA, and a server (127.0.0.1) and a client certificate it signed;
# and the tokens.
certificates() (  # The certificates, and the tokens beside them.
  sf_make_certificates "$SF_WORK/certs" && cd "$SF_WORK/certs" || exit 1
  head -c 24 /dev/urandom | base64 >caller.token
  head -c 24 /dev/urandom | base64 >admin.token
)
sf_check "openssl makes the certificates" certificates
give_up_on_failure
certs=$SF_WORK/certs
sf_start_server "$bin" --fetcher=slow=echo:?delay=1s \
  --tls_cert="$certs/server.pem" --tls_key="$certs/server.key" \
  --caller_token_file="$certs/caller.token" \
  --admin_token_file="$certs/admin.token"
tokens_tls=$SF_TARGET
sf_start_server "$bin" --tls_cert="$certs/server.pem" \
  --tls_key="$certs/server.key" --tls_client_ca="$certs/ca.pem"
mutual_tls=$SF_TARGET

# 2. The installed package, from outside the repository (-I: neither
# PYTHONPATH nor the script's directory is on sys.path).
cat >"$outside/call.py" <<'PY'
import asyncio
import pathlib
import sys

import grpc

import singleflight_client as sf

tokens_tls, mutual_tls, certs, venv = sys.argv[1:]
certs = pathlib.Path(certs)
failed = 0


def check(what, ok, detail=""):
    global failed
    failed += not ok
    print(f"  {'ok' if ok else 'FAILED'}: {what}" + ("" if ok else f": {detail}"))


package = pathlib.Path(sf.__file__).parent
check("singleflight_client is the venv's",
      package.is_relative_to(pathlib.Path(venv).resolve()), package)
for name in ("_stubs/singleflight_pb2.py", "_stubs/singleflight_pb2_grpc.py",
             "py.typed", "proto-path/singleflight/v1/singleflight.proto"):
    check(f"it has {name}", (package / name).is_file(), package / name)

tls = sf.TlsOptions.from_files(ca_file=certs / "ca.pem")
token = (certs / "caller.token").read_text()
mutual = sf.TlsOptions.from_files(ca_file=certs / "ca.pem",
                                  cert_file=certs / "client.pem",
                                  key_file=certs / "client.key")


def sync_calls():
    with sf.Client(tokens_tls, tls=tls, token=token, timeout=10) as client:
        result = client.do("pkg:sync", payload="sync value")
        check("sync Do over TLS with the caller token",
              result == sf.DoResult(b"sync value", False), result)
    with sf.Client(tokens_tls, tls=tls, timeout=10) as client:
        try:
            client.do("pkg:sync")
            check("... UNAUTHENTICATED without it", False, "no error")
        except sf.SingleFlightError as error:
            check("... UNAUTHENTICATED without it",
                  error.code == grpc.StatusCode.UNAUTHENTICATED, error)
    with sf.Client(mutual_tls, tls=mutual, timeout=10) as client:
        result = client.do("pkg:sync-mtls")
        check("sync Do over mutual TLS", result.value == b"pkg:sync-mtls",
              result)


async def async_calls():
    async with sf.AsyncClient(tokens_tls, tls=tls, token=token,
                              timeout=10) as client:
        result = await client.do("pkg:async", payload=b"async value")
        check("async Do over TLS with the caller token",
              result == sf.DoResult(b"async value", False), result)
        values = [r.value async for r in client.stream(["pkg:s1", "pkg:s2"])]
        check("async stream over TLS with the caller token",
              sorted(values) == [b"pkg:s1", b"pkg:s2"], values)
    async with sf.AsyncClient(tokens_tls, tls=tls, timeout=10) as client:
        try:
            await client.do("pkg:async")
            check("... UNAUTHENTICATED without it", False, "no error")
        except sf.SingleFlightError as error:
            check("... UNAUTHENTICATED without it",
                  error.code == grpc.StatusCode.UNAUTHENTICATED, error)
    async with sf.AsyncClient(mutual_tls, tls=mutual, timeout=10) as client:
        result = await client.do("pkg:async-mtls")
        check("async Do over mutual TLS", result.value == b"pkg:async-mtls",
              result)


sync_calls()
asyncio.run(async_calls())
sys.exit(failed > 0)
PY
call_installed() {
  (cd "$outside" && timeout 60 "$python" -I call.py "$tokens_tls" \
    "$mutual_tls" "$certs" "$venv")
}
sf_check "the installed package: sync and async Do over TLS with a token, and mutual TLS" \
  call_installed

# 3. The client's tests against the installed package. The fake imports the
# stubs as singleflight.v1, which build_stubs.py OUT_DIR makes.
sf_start_server "$bin" --fetcher=slow=echo:?delay=1s
plain=$SF_TARGET
/usr/bin/python3 client/python/build_stubs.py "$SF_WORK/stubs" >/dev/null
sf_background env PYTHONPATH="$SF_WORK/stubs" /usr/bin/python3 \
  tests/clients/fake_server.py >"$SF_WORK/fake.out" 2>&1
sf_wait_for "$SF_WORK/fake.out" '^fake listening on '
fake=$(sed -n 's/^fake listening on //p' "$SF_WORK/fake.out")
client_tests() {
  (cd "$outside" && SF_TARGET=$plain SF_FAKE_TARGET=$fake \
    SF_TOKEN_TARGET=$tokens_tls SF_TLS_CA="$certs/ca.pem" \
    SF_CALLER_TOKEN_FILE="$certs/caller.token" \
    SF_ADMIN_TOKEN_FILE="$certs/admin.token" \
    timeout 120 "$python" -I "$repo/tests/clients/python_client_test.py")
}
sf_check "python_client_test.py with the installed package" logged \
  "$SF_WORK/client_tests.log" client_tests
none_skipped() { tail -n 3 "$SF_WORK/client_tests.log"; ! grep -q skipped= "$SF_WORK/client_tests.log"; }
sf_check "... none skipped" none_skipped

# 4. An sdist builds by itself: away from proto/, from its own .proto.
sdist() {
  (cd client/python && timeout 120 "$python" -c '
import sys
from setuptools import build_meta
print(build_meta.build_sdist(sys.argv[1]))' "$SF_WORK/dist")
}
sf_check "an sdist of client/python" logged "$SF_WORK/sdist.log" sdist
wheel_of_sdist() {
  (cd "$outside" && timeout 300 "$venv/bin/pip" wheel --no-deps \
    --no-build-isolation --no-index --wheel-dir="$SF_WORK/wheels" \
    "$SF_WORK"/dist/singleflight-client-*.tar.gz)
}
sf_check "a wheel built from it, away from the repository" logged \
  "$SF_WORK/wheel.log" wheel_of_sdist
wheel_has_everything() {
  "$python" - "$SF_WORK"/wheels/singleflight_client-*.whl <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
wanted = {f"singleflight_client/{name}" for name in (
    "__init__.py", "aio.py", "client.py", "tls.py", "py.typed",
    "_stubs/__init__.py", "_stubs/singleflight_pb2.py",
    "_stubs/singleflight_pb2_grpc.py",
    "proto-path/singleflight/v1/singleflight.proto")}
print("missing:", sorted(wanted - names) or "nothing")
sys.exit(bool(wanted - names))
PY
}
sf_check "... holds the stubs, the .proto and py.typed" wheel_has_everything

sf_summary python-package
