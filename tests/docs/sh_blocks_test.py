#!/usr/bin/python3
"""Checks that every ```sh block of the docs is covered by CI, and runs the
ones that say so.

Usage: tests/docs/sh_blocks_test.py BIN_DIR FILE.md [FILE.md ...]
       (from the repository's root; BIN_DIR holds singleflightd)

The line just before each ```sh fence must be an HTML comment that says how
CI covers the block, one of:

  <!-- ci: run -->                 this test runs the block
  <!-- ci: run with a server -->   the same, with a singleflightd of BIN_DIR
                                   listening on 127.0.0.1:50051 (fetchers:
                                   echo, and slow=echo:?delay=5s)
  <!-- ci: run until it listens --> the block starts a server that runs
                                   until stopped: it passes once its output
                                   says "listening on", and is then stopped
  <!-- ci: covered by PATH ... --> another CI step runs what the block shows
                                   (PATH, a file of the repository, is that
                                   step's script or test)
  <!-- ci: not run: REASON -->     CI cannot run it (REASON says why)

A block is run as one bash script (-euo pipefail) from the repository's
root, in a process group of its own that is killed when the script ends (so
that servers it starts with & stop), within 180 s; it passes if it exits 0
(or, for "run until it listens", once it says so).
``` console blocks are readme_test.py's and are not looked at here. Exits 1
if any block has no such comment or fails.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

TIMEOUT_S = 180
MARKER = re.compile(r"^<!-- ci: (run until it listens|run with a server|run|"
                    r"covered by (\S+).*|"
                    r"not run: .+) -->$")


def sh_blocks(path):
    """Yields (line number, marker line, block text) for each ```sh block."""
    lines = open(path).read().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i
            body = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            marker = lines[start - 1] if start > 0 else ""
            yield start + 1, marker, "\n".join(body) + "\n"
        i += 1


class Server:
    """singleflightd on 127.0.0.1:50051, as the docs' examples expect."""

    def __init__(self, bin_dir):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.popen = subprocess.Popen(
            [os.path.join(bin_dir, "singleflightd"),
             "--listen=127.0.0.1:50051", "--fetcher=slow=echo:?delay=5s"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            self.log.seek(0)
            text = self.log.read()
            if "listening on" in text:
                return
            if self.popen.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"singleflightd did not start: {text}")
            time.sleep(0.05)

    def stop(self):
        self.popen.terminate()
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def run(text, until=None):
    """Runs `text` with bash; returns (exit status, output). With `until`,
    stops it once its output contains `until` (status 0 then)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as script:
        script.write("set -euo pipefail\n" + text)
        script.flush()
        with tempfile.NamedTemporaryFile("w") as out, \
                open(out.name) as output:
            popen = subprocess.Popen(["bash", script.name], stdout=out,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
            deadline = time.time() + TIMEOUT_S
            status, seen = None, ""
            while status is None:
                status = popen.poll()
                seen += output.read()  # Its own offset: never the writer's.
                if until is not None and until in seen:
                    status = 0
                if status is None and time.time() > deadline:
                    status = f"timed out after {TIMEOUT_S} s"
                time.sleep(0.05)
            try:
                os.killpg(popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            popen.wait()
            return status, seen + output.read()


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    bin_dir, files = sys.argv[1], sys.argv[2:]
    failures = 0
    for path in files:
        for line, marker, text in sh_blocks(path):
            where = f"{path}:{line}"
            found = MARKER.match(marker.strip())
            if not found:
                print(f"FAIL {where}: the line before ```sh must say how CI "
                      "covers the block (<!-- ci: ... -->; see "
                      "tests/docs/sh_blocks_test.py)")
                failures += 1
                continue
            kind = found.group(1)
            if kind.startswith("covered by"):
                if not os.path.exists(found.group(2)):
                    print(f"FAIL {where}: {found.group(2)} does not exist")
                    failures += 1
                else:
                    print(f"ok {where}: covered by {found.group(2)}")
                continue
            if kind.startswith("not run"):
                print(f"ok {where}: {kind}")
                continue
            server = Server(bin_dir) if kind == "run with a server" else None
            try:
                status, output = run(
                    text, "listening on" if kind == "run until it listens"
                    else None)
            finally:
                if server:
                    server.stop()
            if status != 0:
                print(f"FAIL {where}: exit status {status}\n{text}--- output:"
                      f"\n{output}")
                failures += 1
            else:
                print(f"ok {where}: ran")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
