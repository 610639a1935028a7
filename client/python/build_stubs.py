#!/usr/bin/python3
"""Generates the Python gRPC stubs of singleflight.proto.

Usage: /usr/bin/python3 client/python/build_stubs.py [OUT_DIR]

Without OUT_DIR: into the package, singleflight_client/_stubs/, as
`pip install client/python` does at build time (setup.py imports this file);
then PYTHONPATH=client/python is all the repository's scripts need.
With OUT_DIR: protoc's own layout, OUT_DIR/singleflight/v1/*.py, for code that
imports singleflight.v1 (tests/clients/fake_server.py); with OUT_DIR on
PYTHONPATH, singleflight_client uses those when it has none of its own.

Runs `python3 -m grpc_tools.protoc` if grpc_tools is installed, else protoc
with grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc);
$PROTOC and $GRPC_PYTHON_PLUGIN name others. The stubs are not kept in the
repository.
"""

import filecmp
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional

PYTHON_DIR = pathlib.Path(__file__).resolve().parent
PACKAGE_DIR = PYTHON_DIR / "singleflight_client"
PROTO = "singleflight/v1/singleflight.proto"
# The repository's proto/; absent from an sdist or a copy of client/python.
REPO_PROTO_ROOT = PYTHON_DIR.parent.parent / "proto"
# The copy shipped in the package (package data): an sdist builds from it.
# A protoc --proto_path whose name no import can mistake for a package.
PACKAGE_PROTO_ROOT = PACKAGE_DIR / "proto-path"
STUBS_DIR = PACKAGE_DIR / "_stubs"
# Where Debian's protobuf-compiler-grpc puts the plugin.
DEFAULT_PLUGIN = "/usr/bin/grpc_python_plugin"


def copy_proto_into_package() -> None:
    """Copies the repository's .proto into the package, if there is one."""
    source = REPO_PROTO_ROOT / PROTO
    if not source.is_file():
        return
    target = PACKAGE_PROTO_ROOT / PROTO
    if target.is_file() and filecmp.cmp(source, target, shallow=False):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def proto_root() -> pathlib.Path:
    """The repository's proto/ if present, else the package's copy."""
    for root in (REPO_PROTO_ROOT, PACKAGE_PROTO_ROOT):
        if (root / PROTO).is_file():
            return root
    raise FileNotFoundError(
        f"{PROTO} is in neither {REPO_PROTO_ROOT} nor {PACKAGE_PROTO_ROOT}")


def _protoc() -> List[str]:
    """The compiler's command line up to its arguments."""
    if not os.environ.get("PROTOC") and importlib.util.find_spec("grpc_tools"):
        import grpc_tools  # Its own copies of the well-known types.

        includes = pathlib.Path(grpc_tools.__file__).parent / "_proto"
        return [sys.executable, "-m", "grpc_tools.protoc", f"-I{includes}"]
    protoc = os.environ.get("PROTOC") or shutil.which("protoc")
    plugin = (os.environ.get("GRPC_PYTHON_PLUGIN")
              or shutil.which("grpc_python_plugin") or DEFAULT_PLUGIN)
    if not protoc:
        raise FileNotFoundError(
            "no protoc: install protobuf-compiler (Debian) or grpcio-tools")
    if not os.access(plugin, os.X_OK):
        raise FileNotFoundError(
            f"no {plugin}: install protobuf-compiler-grpc (Debian)")
    command = [protoc, f"--plugin=protoc-gen-grpc_python={plugin}"]
    # protoc finds the well-known types (google/protobuf/duration.proto) in
    # ../include beside itself; say so for a protoc found elsewhere.
    for include in (pathlib.Path(protoc).resolve().parent.parent / "include",
                    pathlib.Path("/usr/include")):
        if (include / "google/protobuf/duration.proto").is_file():
            command.append(f"-I{include}")
            break
    return command


def _writes_pyi(protoc: List[str]) -> bool:
    """Whether the compiler has --pyi_out (protobuf 3.20 and later; Debian
    12's python3-grpc-tools bundles 3.5)."""
    version = subprocess.run(protoc + ["--version"], check=True,
                             capture_output=True, text=True).stdout
    found = re.search(r"(\d+)\.(\d+)", version)
    return found is not None and (int(found[1]), int(found[2])) >= (3, 20)


def generate(out_dir: pathlib.Path, root: Optional[pathlib.Path] = None,
             typing_stubs: bool = False) -> List[str]:
    """Writes singleflight/v1/singleflight_pb2{,_grpc}.py under out_dir, and
    with typing_stubs singleflight_pb2.pyi if the compiler can; returns the
    names written."""
    root = root or proto_root()
    out_dir.mkdir(parents=True, exist_ok=True)
    protoc = _protoc()
    command = protoc + [
        f"-I{root}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
    ]
    names = ["singleflight_pb2.py", "singleflight_pb2_grpc.py"]
    if typing_stubs and _writes_pyi(protoc):
        command.append(f"--pyi_out={out_dir}")
        names.append("singleflight_pb2.pyi")
    subprocess.run(command + [str(root / PROTO)], check=True)
    return names


def generate_into_package(stubs_dir: pathlib.Path = STUBS_DIR,
                          root: Optional[pathlib.Path] = None) -> List[str]:
    """Writes singleflight_pb2.py (and .pyi) and singleflight_pb2_grpc.py
    into stubs_dir (a package), importing each other package-relatively;
    returns their paths."""
    with tempfile.TemporaryDirectory() as temporary:
        generated = pathlib.Path(temporary)
        names = generate(generated, root, typing_stubs=True)
        source_dir = generated / pathlib.Path(PROTO).parent
        stubs_dir.mkdir(parents=True, exist_ok=True)
        for stale in stubs_dir.glob("singleflight_pb2*"):
            stale.unlink()
        written = []
        for name in names:
            text = (source_dir / name).read_text()
            # protoc's absolute import of the sibling module.
            text = re.sub(r"^from singleflight\.v1 import ", "from . import ",
                          text, flags=re.M)
            target = stubs_dir / name
            target.write_text(text)
            written.append(str(target))
    return written


def main() -> None:
    if len(sys.argv) > 2 or sys.argv[1:2] in (["-h"], ["--help"]):
        sys.exit(__doc__)
    if len(sys.argv) == 2:
        out_dir = pathlib.Path(sys.argv[1])
        generate(out_dir)
    else:
        out_dir = STUBS_DIR
        generate_into_package()
    print(f"stubs in {out_dir}")


if __name__ == "__main__":
    main()
