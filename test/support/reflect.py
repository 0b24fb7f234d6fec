"""A gRPC client in another language: Python's grpcio (C core) asks a dmesh service for its health and, through
server reflection v1, for its services and the file that declares each. Messages are encoded by hand so that the
script needs nothing but grpcio. Prints JSON."""
import json
import sys

import grpc


def varint(data, i):
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(data):
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(data, i)
        elif wire == 2:
            length, i = varint(data, i)
            value, i = data[i : i + length], i + length
        else:
            raise ValueError("unexpected wire type %d" % wire)
        yield number, value


def string_field(number, text):
    raw = text.encode()
    return bytes([number << 3 | 2, len(raw)]) + raw


def main(address):
    identity = lambda b: b
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=identity, response_deserializer=identity)
        status = dict(fields(check(b"", timeout=10))).get(1, 0)
        info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=identity,
            response_deserializer=identity,
        )
        [listing] = list(info(iter([string_field(7, "")]), timeout=10))
        services = []
        for number, value in fields(listing):
            if number == 6:
                for n, service in fields(value):
                    if n == 1:
                        services.append(dict(fields(service))[1].decode())
        described = 0
        for response in info(iter([string_field(4, s) for s in services]), timeout=10):
            if any(number == 4 for number, _ in fields(response)):
                described += 1
    names = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
    print(json.dumps({"health": names[status], "services": services, "described": described}))


if __name__ == "__main__":
    main(sys.argv[1])
