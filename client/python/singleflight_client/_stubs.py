"""The generated stubs: from PYTHONPATH, or else client/python/build/stubs.

client/python/build_stubs.py generates them; they are not kept in the
repository.
"""

import pathlib
import sys

try:
    from singleflight.v1 import singleflight_pb2, singleflight_pb2_grpc
except ImportError:
    _BUILT = pathlib.Path(__file__).resolve().parent.parent / "build" / "stubs"
    if not (_BUILT / "singleflight" / "v1" / "singleflight_pb2.py").is_file():
        raise ImportError(
            "singleflight_client needs the generated stubs: run "
            "/usr/bin/python3 client/python/build_stubs.py, or put stubs "
            "generated elsewhere on PYTHONPATH"
        ) from None
    sys.path.append(str(_BUILT))
    from singleflight.v1 import singleflight_pb2, singleflight_pb2_grpc

__all__ = ["singleflight_pb2", "singleflight_pb2_grpc"]
