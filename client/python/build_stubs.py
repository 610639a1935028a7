#!/usr/bin/python3
"""Generates the Python gRPC stubs of singleflight.proto.

Usage: /usr/bin/python3 client/python/build_stubs.py [OUT_DIR]

OUT_DIR defaults to client/python/build/stubs, where singleflight_client
finds them by itself; stubs generated elsewhere must be on PYTHONPATH. Needs
Debian's protobuf-compiler (protoc) and protobuf-compiler-grpc
(grpc_python_plugin).
"""

import pathlib
import subprocess
import sys

PYTHON_DIR = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = PYTHON_DIR.parent.parent / "proto"
PROTO = "singleflight/v1/singleflight.proto"
PLUGIN = "/usr/bin/grpc_python_plugin"


def build_stubs(out_dir: pathlib.Path) -> None:
    """Writes singleflight/v1/singleflight_pb2{,_grpc}.py under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "protoc",
            f"--proto_path={PROTO_ROOT}",
            f"--python_out={out_dir}",
            f"--grpc_out={out_dir}",
            f"--plugin=protoc-gen-grpc={PLUGIN}",
            PROTO,
        ],
        check=True,
    )


def main() -> None:
    if len(sys.argv) > 2:
        sys.exit(__doc__)
    default = PYTHON_DIR / "build" / "stubs"
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) == 2 else default
    build_stubs(out_dir)
    print(f"stubs in {out_dir}")


if __name__ == "__main__":
    main()
