"""The generated code of singleflight.proto, made at build time.

`pip install client/python` (setup.py) and build_stubs.py without arguments
generate singleflight_pb2.py and singleflight_pb2_grpc.py here; they are not
kept in the repository. Without them, the stubs that `build_stubs.py OUT_DIR`
wrote as the package singleflight.v1 are used if OUT_DIR is on PYTHONPATH.
"""

import importlib.util

if importlib.util.find_spec(f"{__name__}.singleflight_pb2") is not None:
    from . import singleflight_pb2, singleflight_pb2_grpc
else:
    try:
        from singleflight.v1 import (  # type: ignore[no-redef]
            singleflight_pb2,
            singleflight_pb2_grpc,
        )
    except ModuleNotFoundError as missing:
        if not (missing.name or "").startswith("singleflight"):
            raise
        raise ImportError(
            "singleflight_client has no generated stubs: install it "
            "(pip install client/python), or run "
            "/usr/bin/python3 client/python/build_stubs.py"
        ) from None

__all__ = ["singleflight_pb2", "singleflight_pb2_grpc"]
