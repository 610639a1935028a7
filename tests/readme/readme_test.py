#!/usr/bin/python3
"""Runs the ```console examples of a Markdown file and checks their output.

Usage: readme_test.py FILE.md [FILE.md ...]   (from the repository's root)

Each console block is a transcript: a line `$ COMMAND` runs COMMAND with
bash; the lines after it, up to the next `$ ` line, are its expected output.
An expected line ending in ` (re)` is a regular expression for the whole
line; a line `...` stands for any number of lines. A command ending in `&`
runs in the background: its expected lines must appear (among others) in its output within
30 s, and it is stopped (SIGTERM) at the end of its block. Every command runs
in the repository's root, in a shell of its own. Commands that run `npx buf`
are left to tests/tools/operating_test.sh, which runs them where buf is
installed, against a server of its own. Commands run with
a 60 s limit. Exits 1 on the first mismatch, printing both outputs.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

TIMEOUT_S = 60
BACKGROUND_WAIT_S = 30


def blocks(markdown):
    """The console blocks: lists of [line number, command, expected lines].

    A command line ending in a backslash continues on the next line.
    """
    found = []
    block = None
    continued = False
    for number, line in enumerate(markdown.splitlines(), 1):
        if line.startswith("```"):
            if block:
                found.append(block)
            block = [] if line.strip() == "```console" else None
            continue
        if block is None:
            continue
        if continued:
            block[-1][1] += " " + line.strip().rstrip("\\").strip()
            continued = line.endswith("\\")
        elif line.startswith("$ "):
            block.append([number, line[2:].rstrip("\\").strip(), []])
            continued = line.endswith("\\")
        elif block:
            block[-1][2].append(line)
    return found


def matches(expected, actual):
    """Whether `actual` lines fit `expected` lines (with `...` and (re))."""
    if not expected:
        return not actual
    head = expected[0]
    if head == "...":
        return any(matches(expected[1:], actual[i:])
                   for i in range(len(actual) + 1))
    if not actual:
        return False
    if head.endswith(" (re)"):
        fits = re.fullmatch(head[:-5], actual[0]) is not None
    else:
        fits = head == actual[0]
    return fits and matches(expected[1:], actual[1:])


def fail(path, number, command, expected, actual):
    print(f"{path}:{number}: $ {command}", file=sys.stderr)
    print("expected:\n  " + "\n  ".join(expected), file=sys.stderr)
    print("got:\n  " + "\n  ".join(actual), file=sys.stderr)
    return 1


def stop(processes):
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_block(path, block):
    """Runs one block; its background commands are stopped at its end."""
    background = []
    try:
        for number, command, expected in block:
            if "npx buf" in command:
                continue
            if command.endswith("&"):
                log = tempfile.TemporaryFile(mode="w+")
                process = subprocess.Popen(
                    ["bash", "-c", "exec " + command[:-1]],
                    stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
                background.append(process)
                deadline = time.time() + BACKGROUND_WAIT_S
                while True:
                    log.seek(0)
                    lines = log.read().splitlines()
                    if matches(["..."] + expected + ["..."], lines):
                        break
                    if time.time() > deadline or process.poll() is not None:
                        return fail(path, number, command, expected, lines)
                    time.sleep(0.1)
            else:
                result = subprocess.run(
                    ["bash", "-c", command], stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S)
                lines = result.stdout.splitlines()
                if not matches(expected, lines):
                    return fail(path, number, command, expected, lines)
            print(f"ok {path}:{number}: $ {command}")
        return 0
    finally:
        stop(background)


def run_file(path):
    with open(path) as f:
        markdown = f.read()
    for block in blocks(markdown):
        if run_block(path, block):
            return 1
    return 0


def main():
    status = 0
    for path in sys.argv[1:]:
        status = status or run_file(path)
    return status


if __name__ == "__main__":
    sys.exit(main())
