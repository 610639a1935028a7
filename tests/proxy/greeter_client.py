#!/usr/bin/python3
"""A demo.v1.Greeter client (demo.proto): the plain generated grpcio stub,
nothing singleflight-specific, so that it can call greeter_upstream.py
directly or through singleflightd's proxy mode alike.

Usage: /usr/bin/python3 tests/proxy/greeter_client.py --target HOST:PORT
       [--timeout SECS] COMMAND ...

  hello NAME [-n N] [--delay_ms D] [--metadata]
      N (default 1) concurrent SayHello calls with the same request; prints
        replies=N distinct=D upstream_calls=V[,V...]
      (D: the number of distinct replies; V: the sorted distinct
      upstream_calls values). With --metadata, a second line:
        x-upstream-served-by=S[,S...] x-upstream-calls=C[,C...]
      (the sorted distinct values the callers got in the initial and the
      trailing metadata; "-" for none). Any failed call: one line
      "error CODE: DETAILS" per distinct error, and exit status 1.
  count
      prints the number of SayHello calls the server has received.
  fail CODE MESSAGE [-n N] [--delay_ms D]
      N (default 1) concurrent Fail calls with the same request; prints the
      status code, the message, the grpc-status-details-bin (length,
      decoded, hex) and the other trailing metadata, sorted. With N > 1,
      first "calls=N distinct=D", then each distinct such output once.
  countdown [NAME]     prints each streamed message on a line of its own.
  chat NAME...         sends the names (one stream); prints each reply.
  gather NAME...       sends the names (one stream); prints the reply.

Exit status: 0 on success (fail: when every call failed with CODE), else 1.
"""

import argparse
import json
import sys
import grpc

import demo_stubs

demo_pb2, demo_pb2_grpc = demo_stubs.load()


def distinct(values):
    values = sorted(set(values), key=lambda v: (len(v), v))
    return ",".join(values) if values else "-"


def metadata_values(metadata, key):
    return [value for k, value in (metadata or ()) if k == key]


def hello(stub, args):
    request = demo_pb2.HelloRequest(name=args.name, delay_ms=args.delay_ms)
    calls = [stub.SayHello.future(request, timeout=args.timeout)
             for _ in range(args.n)]
    replies, errors, served_by, trailer_calls = [], [], [], []
    for call in calls:
        try:  # each call is bounded by its deadline
            replies.append(call.result())
        except grpc.RpcError as error:
            errors.append(f"error {error.code().name}: {error.details()}")
            continue
        served_by += metadata_values(call.initial_metadata(),
                                     "x-upstream-served-by")
        trailer_calls += metadata_values(call.trailing_metadata(),
                                         "x-upstream-calls")
    print(f"replies={len(replies)} "
          f"distinct={len({r.SerializeToString() for r in replies})} "
          f"upstream_calls={distinct(str(r.upstream_calls) for r in replies)}")
    if args.metadata:
        print(f"x-upstream-served-by={distinct(served_by)} "
              f"x-upstream-calls={distinct(trailer_calls)}")
    for line in sorted(set(errors)):
        print(line)
    return 0 if not errors else 1


def decode_fields(data: bytes):
    """(field number, wire type, value) of a protobuf message's fields:
    enough to read a google.rpc.Status and its Anys."""
    pos = 0

    def varint():
        nonlocal pos
        shift = value = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while pos < len(data):
        key = varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            yield number, wire_type, varint()
        elif wire_type == 2:
            length = varint()
            yield number, wire_type, data[pos:pos + length]
            pos += length
        else:
            raise ValueError(f"unexpected wire type {wire_type}")


def describe_status(data: bytes) -> str:
    code, message, types = 0, "", []
    try:
        for number, _, value in decode_fields(data):
            if number == 1:
                code = value
            elif number == 2:
                message = value.decode()
            elif number == 3:
                types += [v.decode() for n, _, v in decode_fields(value)
                          if n == 1]
    except (ValueError, IndexError, UnicodeDecodeError) as error:
        return f"undecodable ({error})"
    return (f"code={code} message={json.dumps(message, ensure_ascii=False)} "
            f"details={','.join(types) or '-'}")


def describe_fail(call, code):
    """The lines fail prints of one finished Fail call, and whether it
    failed as asked."""
    try:
        reply = call.result()
    except grpc.RpcError as error:
        lines = [f"code={error.code().name}({error.code().value[0]})",
                 f"message={error.details()}"]
        trailers = list(error.trailing_metadata() or ())
        details = metadata_values(trailers, "grpc-status-details-bin")
        if details:
            lines += [f"details={len(details[0])} bytes: "
                      f"{describe_status(details[0])}",
                      f"details_hex={details[0].hex()}"]
        else:
            lines.append("details=none")
        for key, value in sorted(trailers):
            if key != "grpc-status-details-bin":
                if isinstance(value, bytes):
                    value = value.hex()
                lines.append(f"trailer {key}={value}")
        return "\n".join(lines), error.code().value[0] == code
    return f"code=OK(0)\nmessage={reply.message}", code == 0


def fail(stub, args):
    request = demo_pb2.FailRequest(code=args.code, message=args.message,
                                   delay_ms=args.delay_ms)
    calls = [stub.Fail.future(request, timeout=args.timeout)
             for _ in range(args.n)]
    results = [describe_fail(call, args.code) for call in calls]
    outputs = sorted({output for output, _ in results})
    if args.n > 1:
        print(f"calls={args.n} distinct={len(outputs)}")
    print("\n".join(outputs))
    return 0 if all(ok for _, ok in results) else 1


def countdown(stub, args):
    request = demo_pb2.HelloRequest(name=args.name)
    for reply in stub.Countdown(request, timeout=args.timeout):
        print(reply.message)
    return 0


def chat(stub, args):
    requests = (demo_pb2.HelloRequest(name=name) for name in args.names)
    for reply in stub.Chat(requests, timeout=args.timeout):
        print(reply.message)
    return 0


def gather(stub, args):
    requests = (demo_pb2.HelloRequest(name=name) for name in args.names)
    print(stub.Gather(requests, timeout=args.timeout).message)
    return 0


def count(stub, args):
    print(stub.Count(demo_pb2.CountRequest(), timeout=args.timeout).calls)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--timeout", type=float, default=30.0)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("hello")
    command.add_argument("name")
    command.add_argument("-n", type=int, default=1)
    command.add_argument("--delay_ms", type=int, default=0)
    command.add_argument("--metadata", action="store_true")
    command.set_defaults(run=hello)
    command = commands.add_parser("count")
    command.set_defaults(run=count)
    command = commands.add_parser("fail")
    command.add_argument("code", type=int)
    command.add_argument("message")
    command.add_argument("-n", type=int, default=1)
    command.add_argument("--delay_ms", type=int, default=0)
    command.set_defaults(run=fail)
    command = commands.add_parser("countdown")
    command.add_argument("name", nargs="?", default="")
    command.set_defaults(run=countdown)
    for name, run in (("chat", chat), ("gather", gather)):
        command = commands.add_parser(name)
        command.add_argument("names", nargs="+")
        command.set_defaults(run=run)
    args = parser.parse_args()

    with grpc.insecure_channel(args.target) as channel:
        stub = demo_pb2_grpc.GreeterStub(channel)
        try:
            status = args.run(stub, args)
        except grpc.RpcError as error:
            print(f"error {error.code().name}: {error.details()}")
            status = 1
    sys.exit(status)


if __name__ == "__main__":
    main()
