#!/usr/bin/env bash
# Checks the locking annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED,
# ...) of every C++ source of the project with clang 14's -Wthread-safety,
# as errors: g++ ignores them. Uses the compile commands of a configured
# build directory ($1, default build/), compiling for syntax only.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"
if ! command -v clang++-14 > /dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q --no-install-recommends clang-14
fi
cmake -S . -B "$build_dir" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON > /dev/null
# Generated headers must exist before sources that include them are read.
cmake --build "$build_dir" --target sf_proto sf_test_reflection_proto > /dev/null
/usr/bin/python3 - "$build_dir" <<'PY'
import json, os, shlex, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

build_dir = sys.argv[1]
root = os.getcwd()
ours = ("core/", "server/", "fetchers/", "client/", "bench/", "plugins/", "tests/")
commands = {}
for entry in json.load(open(os.path.join(build_dir, "compile_commands.json"))):
    source = os.path.relpath(entry["file"], root)
    if not source.startswith(ours) or not source.endswith(".cc"):
        continue
    args = shlex.split(entry["command"])[1:]
    # Keep defines, include paths and the language standard; drop the rest.
    kept, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg in ("-o", "-MF", "-MT", "-c"):
            skip = arg != "-c"
            continue
        if arg.startswith(("-D", "-I", "-std=")) or arg == "-isystem":
            kept.append(arg)
            if arg == "-isystem":
                kept.append(args[i + 1])
                skip = True
    commands[source] = (source, ["clang++-14", "-fsyntax-only", "-Wthread-safety",
                              "-Werror=thread-safety", "-Wno-unknown-warning-option",
                              *kept, entry["file"]], entry["directory"])

def check(item):
    source, command, directory = item
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    return source, done.returncode, done.stderr

failed = 0
with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
    for source, code, stderr in pool.map(check, [commands[s] for s in sorted(commands)]):
        if code != 0:
            failed += 1
            print(stderr, end="")
print(f"check-thread-safety: {len(commands)} sources, {failed} with errors")
sys.exit(1 if failed else 0)
PY
