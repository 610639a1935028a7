#!/usr/bin/python3
"""Calls Do once with the Python client; prints the reply as sfctl --json does.

Usage: do_once.py TARGET KEY FETCHER   (singleflight_client on PYTHONPATH)
Prints {"value": BASE64, "shared": BOOL}; on failure, "CODE: details" on
stderr and exit status 1.
"""

import base64
import json
import sys

from singleflight_client import Client, SingleFlightError


def main():
    target, key, fetcher = sys.argv[1:]
    with Client(target, timeout=20.0) as client:
        try:
            result = client.do(key, fetcher=fetcher)
        except SingleFlightError as error:
            sys.exit(str(error))
    print(json.dumps({
        "value": base64.b64encode(result.value).decode(),
        "shared": result.shared,
    }))


if __name__ == "__main__":
    main()
