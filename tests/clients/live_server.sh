# shellcheck shell=bash
# Shared by the shell tests of clients and tools (source it): a live
# singleflightd, background processes that are killed on exit, a work
# directory that is removed on exit, and pass/fail counting.
#
#   sf_setup                        work dir in $SF_WORK, EXIT trap
#   sf_background CMD...            runs CMD in the background, killed on exit
#   sf_start_server BIN_DIR ARGS... starts singleflightd on 127.0.0.1:0; sets
#                                   SF_TARGET and, with --metrics_listen,
#                                   SF_METRICS_URL
#   sf_wait_for FILE REGEX [SECS]   waits for a line of FILE matching REGEX
#   sf_make_certificates DIR        openssl makes, in DIR, a CA (ca.pem,
#                                   ca.key) and a server (127.0.0.1) and a
#                                   client certificate it signed
#                                   (server.pem/.key, client.pem/.key)
#   sf_check WHAT CMD...            runs CMD, counts and reports the outcome
#   sf_summary NAME                 prints "NAME: P passed, F failed"; its
#                                   exit status is 0 iff none failed

sf_pids=()
sf_passed=0
sf_failed=0

sf_cleanup() {
  local pid
  for pid in "${sf_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${sf_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$SF_WORK"
}

sf_setup() {
  SF_WORK=$(mktemp -d)
  trap sf_cleanup EXIT
}

sf_background() {
  "$@" &
  sf_pids+=("$!")
}

sf_wait_for() {
  local file=$1 regex=$2 seconds=${3:-20} i
  for ((i = 0; i < seconds * 20; i++)); do
    grep -qE "$regex" "$file" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "timed out waiting for /$regex/ in $file:" >&2
  cat "$file" >&2
  return 1
}

sf_start_server() {
  local bin_dir=$1
  shift
  local out="$SF_WORK/singleflightd.$RANDOM.out"
  sf_background "$bin_dir/singleflightd" --listen=127.0.0.1:0 "$@" \
    >"$out" 2>&1
  sf_wait_for "$out" '^singleflightd listening on ' || return 1
  # shellcheck disable=SC2034  # Both are for the sourcing script.
  SF_TARGET=$(sed -n 's/^singleflightd listening on \([0-9.]*:[0-9]*\).*/\1/p' \
    "$out")
  # shellcheck disable=SC2034
  SF_METRICS_URL=$(sed -n 's/^singleflightd metrics on \(http[^ ]*\)$/\1/p' \
    "$out")
}

sf_check() {
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
    sf_passed=$((sf_passed + 1))
  else
    echo "FAILED: $what"
    sf_failed=$((sf_failed + 1))
  fi
}

sf_summary() {
  echo "$1: $sf_passed passed, $sf_failed failed"
  ((sf_failed == 0))
}

sf_make_certificates() (  # A subshell: it changes directory.
  mkdir -p "$1" && cd "$1" || exit 1
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca \
    -keyout ca.key -out ca.pem 2>/dev/null || exit 1
  for name in server client; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" \
      -addext subjectAltName=IP:127.0.0.1 -keyout "$name.key" \
      -out "$name.csr" 2>/dev/null &&
      openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key \
        -CAcreateserial -days 1 -copy_extensions copy \
        -out "$name.pem" 2>/dev/null || exit 1
  done
)
