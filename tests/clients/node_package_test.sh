#!/usr/bin/env bash
# The Node client as an installable package, @singleflight/client:
#   1. `npm pack` of client/node ships its proto, its TypeScript declarations
#      and its code, and nothing else of the repository;
#   2. the tarball is installed into an empty folder outside the repository
#      (its dependencies from the npm registry), and a script there calls a
#      live singleflightd over TLS with a caller token (and is refused
#      without the token);
#   3. a TypeScript file type-checks against the installed index.d.ts (tsc
#      from the npm registry, in a temporary folder), and misuses do not;
#   4. node_client.test.js's suites of tokens, TLS and mutual TLS, against
#      servers started here (certificates made by openssl).
#
# Usage: tests/clients/node_package_test.sh [BIN_DIR]
# BIN_DIR (default build/bin) holds singleflightd. Needs node (18 or later),
# npm reaching its registry, and openssl.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-build/bin}")
repo=$PWD
source tests/clients/live_server.sh
sf_setup
export npm_config_update_notifier=false npm_config_fund=false \
  npm_config_audit=false
# Every npm command is bounded: the registry may be slow, never hanging.
npm_() { timeout --kill-after=10 300 npm --loglevel=error "$@"; }
TYPESCRIPT=typescript@5.9.3

if [[ ! client/node/node_modules/.package-lock.json -nt \
      client/node/package-lock.json ]]; then
  npm_ ci --prefix client/node >/dev/null
fi

# Certificates: a CA, and a server (127.0.0.1) and a client certificate it
# signed. Tokens: files ending with a newline, as editors write them.
certs=$SF_WORK/certs
sf_check "openssl makes the certificates" sf_make_certificates "$certs"
echo "caller-$RANDOM$RANDOM" >"$SF_WORK/caller.token"
echo "admin-$RANDOM$RANDOM" >"$SF_WORK/admin.token"
tokens=(--caller_token_file="$SF_WORK/caller.token"
  --admin_token_file="$SF_WORK/admin.token")
tls=(--tls_cert="$certs/server.pem" --tls_key="$certs/server.key")
sf_start_server "$bin" "${tokens[@]}"
token_target=$SF_TARGET
sf_start_server "$bin" "${tls[@]}" --caller_token_file="$SF_WORK/caller.token"
tls_target=$SF_TARGET
sf_start_server "$bin" "${tls[@]}" --tls_client_ca="$certs/ca.pem"
mtls_target=$SF_TARGET

# 1. The tarball.
tarball=$SF_WORK/pack/singleflight-client-0.1.0.tgz
pack() {
  mkdir -p "$SF_WORK/pack"
  if ! (cd client/node && npm_ pack --pack-destination "$SF_WORK/pack" \
        >"$SF_WORK/pack.log" 2>&1); then
    cat "$SF_WORK/pack.log"
    return 1
  fi
  tarball=$(echo "$SF_WORK"/pack/singleflight-client-*.tgz)
  [[ -f $tarball ]] || return 1
  echo "$(basename "$tarball"): $(du -k "$tarball" | cut -f1) KiB"
}
sf_check "npm pack client/node" pack
ships() {
  local listing file
  listing=$(tar -tzf "$tarball" | sort)
  for file in package.json README.md index.js index.d.ts lib/client.js \
      lib/errors.js lib/flight-key.js lib/retry.js \
      proto/singleflight/v1/singleflight.proto; do
    grep -qx "package/$file" <<<"$listing" ||
      { echo "missing: $file"; return 1; }
  done
  if grep -E '^package/(node_modules|tools)/|package-lock' <<<"$listing"; then
    echo "shipped by mistake (above)"
    return 1
  fi
  tar -xzOf "$tarball" package/proto/singleflight/v1/singleflight.proto |
    cmp - proto/singleflight/v1/singleflight.proto
}
sf_check "it ships the proto (as in proto/), index.d.ts and lib/, no more" ships

# 2. Installed in an empty folder, outside the repository.
# Under /tmp: no package.json or node_modules of the repository above it.
app=$SF_WORK/app
mkdir "$app"
install_tarball() {
  [[ $app != "$repo"/* ]] || return 1
  if ! (cd "$app" && npm_ init -y && npm_ install "$tarball") \
      >"$SF_WORK/install.log" 2>&1; then
    cat "$SF_WORK/install.log"
    return 1
  fi
  [[ -f $app/node_modules/@singleflight/client/proto/singleflight/v1/singleflight.proto &&
     -f $app/node_modules/@grpc/grpc-js/package.json ]]
}
sf_check "npm install of the tarball into an empty folder" install_tarball
cat >"$app/call.mjs" <<'EOF'
// Calls Do over TLS with a caller token; then without the token, which the
// server refuses. A warning (say, a .proto not found) fails, except Node's
// DEP0123: grpc-js sends the address as the TLS server name when the target
// is an IP address.
import { Client, SingleFlightError } from '@singleflight/client';

process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.code === 'DEP0123') return;
  console.error(`warning: ${warning.name}: ${warning.message}`);
  process.exitCode = 1;
});
const [target, caFile, tokenFile] = process.argv.slice(2);
const options = { timeoutMs: 10000, retry: { maxAttempts: 1 }, tls: { caFile } };
const client = new Client(target, { ...options, tokenFile });
const anonymous = new Client(target, options);
try {
  const { value, shared } = await client.do('package:node');
  console.log(`value=${value} shared=${shared}`);
  if (value.toString() !== 'package:node') process.exitCode = 1;
  try {
    await anonymous.do('package:node');
    console.log('without the token: succeeded');
    process.exitCode = 1;
  } catch (error) {
    console.log(`without the token: ${error.codeName}`);
    if (!(error instanceof SingleFlightError) || error.codeName !== 'UNAUTHENTICATED') {
      process.exitCode = 1;
    }
  }
} finally {
  client.close();
  anonymous.close();
}
EOF
installed_calls() {
  (cd "$app" && timeout 60 node call.mjs "$tls_target" "$certs/ca.pem" \
    "$SF_WORK/caller.token")
}
sf_check "the installed package calls singleflightd over TLS with a token" \
  installed_calls

# 3. TypeScript.
cat >"$app/tsconfig.json" <<'EOF'
{
  "compilerOptions": {
    "strict": true,
    "noEmit": true,
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "target": "es2022",
    "skipLibCheck": false
  },
  "files": ["consumer.mts"]
}
EOF
cat >"$app/consumer.mts" <<'EOF'
import {
  Client, SingleFlightError, FLIGHT_KEY_HEADER, flightKey, DEFAULT_RETRY,
  DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
} from '@singleflight/client';
import type {
  ClientOptions, DoResult, Flight, StreamResult, StatusCodeName, TlsOptions,
} from '@singleflight/client';

const tls: TlsOptions = { caFile: 'ca.pem', cert: Buffer.from(''), key: '' };
const options: ClientOptions = {
  timeoutMs: null,
  tls,
  tokenFile: 'token',
  retry: { maxAttempts: DEFAULT_RETRY.maxAttempts + 1 },
  maxReceiveMessageBytes: DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
  channelOptions: { 'grpc.keepalive_time_ms': 10000 },
};
const header: 'x-flight-key' = FLIGHT_KEY_HEADER;
const hash: string = flightKey('', 'key');

export async function use(client: Client): Promise<void> {
  const result: DoResult = await client.do('key', { fetcher: 'f', payload: 'p', timeoutMs: 5 });
  const value: Buffer = result.value;
  const forgotten: boolean = await client.forget('key', { fetcher: 'f' });
  const flights: Flight[] = await client.inflight({ timeoutMs: null });
  for await (const reply of client.stream([{ key: 'a', id: 7 }, 'b'])) {
    const item: StreamResult = reply;
    const name: StatusCodeName | undefined = item.error?.codeName;
    console.log(item.id, item.request.key, name, value, forgotten, flights, header, hash);
  }
  try {
    await client.do('key');
  } catch (error) {
    if (error instanceof SingleFlightError) console.log(error.code, error.details);
  }
  client.close();
}
new Client('127.0.0.1:50051', options);
new Client('127.0.0.1:50051', { tls: true, token: 't' });

// Misuses, each of which must be a type error.
// @ts-expect-error a key is a string
await new Client('t').do(42);
// @ts-expect-error tls takes files or PEMs, not a path
new Client('t', { tls: 'ca.pem' });
// @ts-expect-error no such option
new Client('t', { timeout: 5 });
// @ts-expect-error forget resolves to a boolean
const wrong: string = await new Client('t').forget('k');
console.log(wrong);
EOF
typecheck() {
  if ! npm_ install --prefix "$SF_WORK/tsc" "$TYPESCRIPT" \
        >"$SF_WORK/tsc.log" 2>&1 ||
     ! (cd "$app" && timeout 120 "$SF_WORK/tsc/node_modules/.bin/tsc" -p .) \
        >>"$SF_WORK/tsc.log" 2>&1; then
    cat "$SF_WORK/tsc.log"
    return 1
  fi
}
sf_check "a TypeScript file type-checks against the installed index.d.ts" \
  typecheck

# 4. The client's own tests of tokens and TLS.
node_tests() {
  local status=0
  SF_TOKEN_TARGET=$token_target SF_TLS_TARGET=$tls_target \
    SF_MTLS_TARGET=$mtls_target SF_CERTS=$certs \
    SF_CALLER_TOKEN_FILE=$SF_WORK/caller.token \
    SF_ADMIN_TOKEN_FILE=$SF_WORK/admin.token \
    timeout 120 node --test --test-reporter=spec \
    tests/clients/node_client.test.js >"$SF_WORK/node.log" 2>&1 || status=$?
  cat "$SF_WORK/node.log"
  # None of these suites may be skipped.
  ((status == 0)) &&
    ! grep -E 'SF_(TOKEN|TLS|MTLS)_TARGET is not set' "$SF_WORK/node.log"
}
sf_check "node_client.test.js: tokens, TLS and mutual TLS" node_tests

sf_summary node_package
