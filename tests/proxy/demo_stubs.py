"""Generates and imports the Python stubs of demo.proto (shared by
greeter_upstream.py and greeter_client.py; run with /usr/bin/python3, whose
Debian python3-grpcio they need).

load(NAME) runs protoc with grpc_python_plugin (Debian: protobuf-compiler,
protobuf-compiler-grpc; $PROTOC and $GRPC_PYTHON_PLUGIN name others) on
NAME.proto of this directory (default demo) into a temporary directory,
removed at exit, and returns the modules (NAME_pb2, NAME_pb2_grpc).
"""

import atexit
import importlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def load(name="demo"):
    out = tempfile.mkdtemp(prefix="demo-stubs-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    protoc = os.environ.get("PROTOC", "protoc")
    plugin = os.environ.get("GRPC_PYTHON_PLUGIN", "/usr/bin/grpc_python_plugin")
    subprocess.run(
        [protoc, f"--proto_path={HERE}", f"--python_out={out}",
         f"--grpc_out={out}", f"--plugin=protoc-gen-grpc={plugin}",
         str(HERE / f"{name}.proto")],
        check=True)
    sys.path.insert(0, out)
    return (importlib.import_module(f"{name}_pb2"),
            importlib.import_module(f"{name}_pb2_grpc"))
