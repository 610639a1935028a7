#!/usr/bin/python3
"""The demo.v1.Greeter server (demo.proto): the upstream behind singleflightd's
proxy mode in the tests of tests/proxy/. An ordinary grpcio server.

Usage: /usr/bin/python3 tests/proxy/greeter_upstream.py [--port N]
                                                      [--reflection]

Listens on 127.0.0.1:N (port 0, the default: one the system picks) and prints
exactly one line, `listening on 127.0.0.1:PORT`, on stdout once it serves.
Exits on SIGTERM or SIGINT. Serves up to 256 calls at the same time.

  SayHello   counts the call, sends the initial metadata
             x-upstream-served-by: greeter, waits delay_ms, answers
             "Hello, NAME!" with the count (this call included) in
             upstream_calls and in the trailing metadata x-upstream-calls.
  Fail       waits delay_ms, then fails with the request's code and message, the trailing
             metadata grpc-status-details-bin (a google.rpc.Status: the same
             code and message, and one detail, a google.protobuf.Any holding
             a google.protobuf.StringValue "greeter failed on request") and
             x-fail-trailer: yes. Code 0 answers "ok: MESSAGE" instead.
  Count      the number of SayHello calls received so far.
  Countdown  streams "3", "2", "1".
  Chat       answers each request with "echo: NAME".
  Gather     answers the names joined with ",".

With --reflection it also serves gRPC server reflection
(grpc.reflection.v1alpha.ServerReflection, and the same protocol as
grpc.reflection.v1.ServerReflection; reflection.proto), which lists
demo.v1.Greeter and the reflection service and answers file_by_filename and
file_containing_symbol with the file and its dependencies.
"""

import argparse
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool
from google.protobuf import wrappers_pb2

import demo_stubs

demo_pb2, demo_pb2_grpc = demo_stubs.load()

CODES = {code.value[0]: code for code in grpc.StatusCode}


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32s are 10-byte varints
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def rpc_status(code: int, message: str, details) -> bytes:
    """A serialized google.rpc.Status, encoded by hand (Debian's python3 has
    no google.rpc): code = 1 (int32), message = 2 (string),
    details = 3 (repeated google.protobuf.Any)."""
    out = bytearray()
    if code:
        out += b"\x08" + varint(code)
    encoded = message.encode()
    if encoded:
        out += b"\x12" + varint(len(encoded)) + encoded
    for detail in details:
        encoded = detail.SerializeToString()
        out += b"\x1a" + varint(len(encoded)) + encoded
    return bytes(out)


class Greeter(demo_pb2_grpc.GreeterServicer):
    def __init__(self):
        self._lock = threading.Lock()
        self._calls = 0

    def SayHello(self, request, context):
        with self._lock:
            self._calls += 1
            calls = self._calls
        context.send_initial_metadata((("x-upstream-served-by", "greeter"),))
        if request.delay_ms > 0:
            time.sleep(request.delay_ms / 1000)
        context.set_trailing_metadata((("x-upstream-calls", str(calls)),))
        return demo_pb2.HelloReply(message=f"Hello, {request.name}!",
                                   upstream_calls=calls)

    def Fail(self, request, context):
        if request.delay_ms > 0:
            time.sleep(request.delay_ms / 1000)
        if request.code == 0:
            return demo_pb2.HelloReply(message=f"ok: {request.message}")
        detail = any_pb2.Any()
        detail.Pack(wrappers_pb2.StringValue(value="greeter failed on request"))
        context.set_trailing_metadata((
            ("grpc-status-details-bin",
             rpc_status(request.code, request.message, [detail])),
            ("x-fail-trailer", "yes"),
        ))
        code = CODES.get(request.code, grpc.StatusCode.UNKNOWN)
        context.abort(code, request.message)

    def Count(self, request, context):
        with self._lock:
            return demo_pb2.CountReply(calls=self._calls)

    def Countdown(self, request, context):
        for n in ("3", "2", "1"):
            yield demo_pb2.HelloReply(message=n)

    def Chat(self, request_iterator, context):
        for request in request_iterator:
            yield demo_pb2.HelloReply(message=f"echo: {request.name}")

    def Gather(self, request_iterator, context):
        names = [request.name for request in request_iterator]
        return demo_pb2.HelloReply(message=",".join(names))


def reflection_handlers():
    """Generic handlers of server reflection, v1alpha and v1."""
    reflection_pb2, _ = demo_stubs.load("reflection")
    pool = descriptor_pool.Default()
    services = ["demo.v1.Greeter", "grpc.reflection.v1alpha.ServerReflection"]

    def files(first):
        """first and its dependencies, serialized, first first."""
        out, seen, todo = [], set(), [first]
        while todo:
            file = todo.pop(0)
            if file.name in seen:
                continue
            seen.add(file.name)
            proto = descriptor_pb2.FileDescriptorProto()
            file.CopyToProto(proto)
            out.append(proto.SerializeToString())
            todo += file.dependencies
        return out

    def answer(request):
        response = reflection_pb2.ServerReflectionResponse(
            valid_host=request.host, original_request=request)
        kind = request.WhichOneof("message_request")
        try:
            if kind == "list_services":
                response.list_services_response.service.extend(
                    reflection_pb2.ServiceResponse(name=name)
                    for name in services)
                return response
            if kind == "file_by_filename":
                file = pool.FindFileByName(request.file_by_filename)
            elif kind == "file_containing_symbol":
                file = pool.FindFileContainingSymbol(
                    request.file_containing_symbol)
            else:
                raise KeyError(kind)
        except KeyError:
            response.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
            response.error_response.error_message = f"not found: {kind}"
            return response
        response.file_descriptor_response.file_descriptor_proto.extend(
            files(file))
        return response

    def info(request_iterator, context):
        for request in request_iterator:
            yield answer(request)

    handler = grpc.stream_stream_rpc_method_handler(
        info,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=(
            reflection_pb2.ServerReflectionResponse.SerializeToString))
    return [grpc.method_handlers_generic_handler(
        f"grpc.reflection.{version}.ServerReflection",
        {"ServerReflectionInfo": handler}) for version in ("v1alpha", "v1")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reflection", action="store_true")
    args = parser.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=256))
    demo_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    if args.reflection:
        server.add_generic_rpc_handlers(reflection_handlers())
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    if not port:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    server.start()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"listening on 127.0.0.1:{port}", flush=True)
    while not stop.wait(3600):
        pass
    server.stop(grace=0).wait(5)


if __name__ == "__main__":
    main()
