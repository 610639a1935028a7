#!/usr/bin/env python3
"""Runs the shell commands of Markdown pages' console blocks and compares
their output with the pages'.

Usage: run_doc_commands.py TARGET DOC... --cwd DIR --select TEXT --flights CMD

In each ```console block, a line "$ COMMAND" starts a command; it goes on
over the next lines while a line ends with "\\" or "|"; the lines after it,
up to the next "$ " line or the block's end, are its expected output (stdout
and stderr). Only commands that contain TEXT (--select), and "$ wait", are
run, in order, with bash in DIR, after 127.0.0.1:50051 is replaced by TARGET.

- A command ending with "&" runs in the background; the next command waits
  until CMD (--flights, which prints one line per flight in progress) shows
  one more flight than before it started.
- "$ wait" waits for the background commands; its output is theirs, in the
  order they started.
- Expected output that ends with a line "..." need only begin the output.
- Output that is JSON (one or more documents) is compared as JSON: the order
  of documents and of list items does not matter, and durations ("1.07s")
  match any duration.
- Anything else is compared line by line.

Prints "ok: COMMAND" or "FAILED: COMMAND" and the difference for each;
exits with status 1 if any failed. Python's standard library only.
"""

import argparse
import json
import re
import subprocess
import sys
import time

DOC_ADDRESS = "127.0.0.1:50051"
TIMEOUT_SECONDS = 30
DURATION = re.compile(r"^\d+(\.\d+)?s$")


def console_commands(markdown):
    """Yields (command, expected output) of every console block command."""
    in_console = False
    command, expected = None, []
    for line in markdown.splitlines():
        if line.startswith("```"):
            if in_console and command is not None:
                yield command, "\n".join(expected)
            in_console = line.strip() == "```console"
            command, expected = None, []
        elif in_console and line.startswith("$ "):
            if command is not None:
                yield command, "\n".join(expected)
            command, expected = line[2:], []
        elif in_console and command is not None and not expected and (
                command.endswith("\\") or command.endswith("|")):
            command += "\n" + line
        elif in_console and command is not None:
            expected.append(line)


def json_documents(text):
    """The JSON documents in text, or None if it is not only JSON."""
    decoder = json.JSONDecoder()
    documents, position = [], 0
    text = text.strip()
    while position < len(text):
        try:
            document, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return None
        documents.append(document)
        position = end
        while position < len(text) and text[position].isspace():
            position += 1
    return documents if documents else None


def normalized(value):
    """value with durations blanked and lists put in a canonical order."""
    if isinstance(value, dict):
        return {key: normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [normalized(item) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, str) and DURATION.match(value):
        return "<duration>"
    return value


def difference(expected, actual):
    """None if actual matches expected, else a description of how not."""
    expected_lines = expected.rstrip().splitlines()
    actual_lines = actual.rstrip().splitlines()
    if expected_lines and expected_lines[-1] == "...":
        prefix = expected_lines[:-1]
        if actual_lines[:len(prefix)] == prefix:
            return None
    else:
        expected_json = json_documents(expected)
        if expected_json is not None:
            actual_json = json_documents(actual)
            if actual_json is not None and (normalized(expected_json) ==
                                            normalized(actual_json)):
                return None
        elif expected_lines == actual_lines:
            return None
    return f"expected:\n{expected}\nactual:\n{actual}"


def flight_count(flights_command):
    result = subprocess.run(flights_command, shell=True, capture_output=True,
                            text=True, timeout=TIMEOUT_SECONDS, check=True)
    return len(result.stdout.splitlines())


def wait_for_more_flights(flights_command, before):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if flight_count(flights_command) > before:
            return True
        time.sleep(0.01)
    return False


def run(shell_command, cwd):
    result = subprocess.run(["bash", "-c", shell_command], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=TIMEOUT_SECONDS)
    return result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("docs", nargs="+")
    parser.add_argument("--cwd", required=True)
    parser.add_argument("--select", required=True)
    parser.add_argument("--flights", required=True)
    args = parser.parse_args()
    commands = []
    for path in args.docs:
        with open(path, encoding="utf-8") as doc:
            commands.extend(
                (command, expected)
                for command, expected in console_commands(doc.read())
                if args.select in command or command == "wait")
    background, failures = [], 0
    for command, expected in commands:
        shell_command = command.replace(DOC_ADDRESS, args.target)
        title = " ".join(command.replace("\\\n", " ").split())
        if shell_command.endswith("&"):
            before = flight_count(args.flights)
            background.append(subprocess.Popen(
                ["bash", "-c", shell_command[:-1]], cwd=args.cwd,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            problem = (None if wait_for_more_flights(args.flights, before)
                       else "no new flight appeared")
        elif command == "wait":
            outputs = [process.communicate(timeout=TIMEOUT_SECONDS)[0]
                       for process in background]
            background = []
            problem = difference(expected, "".join(outputs))
        else:
            problem = difference(expected, run(shell_command, args.cwd))
        if problem is None:
            print(f"ok: {title}")
        else:
            failures += 1
            print(f"FAILED: {title}\n{problem}")
    for process in background:
        process.kill()
    print(f"ran {len(commands)} commands of {', '.join(args.docs)}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
