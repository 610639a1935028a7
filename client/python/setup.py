"""Builds singleflight-client (metadata in pyproject.toml) with the gRPC stubs
of singleflight.proto generated into the package, singleflight_client/_stubs.

The .proto is copied from the repository's proto/ into the package (package
data, not kept in the repository) when the repository is there, so that an
sdist or a copy of client/python builds on its own. build_stubs.py does the
work; it is also a script of its own.
"""

import importlib.util
import pathlib
import shutil
import sys
from types import ModuleType
from typing import List

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
PACKAGE = "singleflight_client"


def _load_build_stubs() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_singleflight_build_stubs", HERE / "build_stubs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build_stubs = _load_build_stubs()
build_stubs.copy_proto_into_package()


class BuildPyWithStubs(build_py):
    """build_py, then the stubs: into build/lib, or for an editable install
    into the source tree."""

    def run(self) -> None:
        editable = getattr(self, "editable_mode", False)
        if not editable:
            # A clean package: files of earlier builds would end up in the
            # wheel.
            shutil.rmtree(pathlib.Path(self.build_lib) / PACKAGE,
                          ignore_errors=True)
        super().run()
        root = pathlib.Path(self.build_lib) if not editable else HERE
        self._stubs = build_stubs.generate_into_package(
            root / PACKAGE / "_stubs")

    def get_outputs(self, include_bytecode: bool = True) -> List[str]:
        outputs: List[str] = super().get_outputs(include_bytecode)
        return outputs + getattr(self, "_stubs", [])


setup(cmdclass={"build_py": BuildPyWithStubs})
