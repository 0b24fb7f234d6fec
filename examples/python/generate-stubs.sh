#!/usr/bin/env bash
# Generates the Python messages (*_pb2.py) and gRPC stubs (*_pb2_grpc.py) from the repository's proto/ into
# a folder (default: examples/python/gen, which git ignores), so that they always match the contracts.
#
# Our protos use proto3 `optional`, which needs protoc 3.15 or later: grpcio-tools from pip has one, Debian 12's
# python3-grpc-tools bundles protoc 3.5 and cannot. This script takes grpc_tools when its protoc is new enough,
# else Debian's protoc (protobuf-compiler) with its gRPC plugin (protobuf-compiler-grpc).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../proto" && pwd)
out=${1:-$here/gen}
python=${PYTHON:-python3}
mkdir -p "$out"
mapfile -t files < <(cd "$proto" && find dmesh -name '*.proto' | sort)

new_enough() { # "libprotoc X.Y.Z" on stdin
  awk '{ split($2, v, "."); exit !(v[1] > 3 || (v[1] == 3 && v[2] >= 15)) }'
}
if "$python" -m grpc_tools.protoc --version 2>/dev/null | new_enough; then
  (cd "$proto" && "$python" -m grpc_tools.protoc -I. --python_out="$out" --grpc_python_out="$out" "${files[@]}")
elif command -v protoc >/dev/null && command -v grpc_python_plugin >/dev/null && protoc --version | new_enough; then
  (cd "$proto" && protoc -I. --python_out="$out" --grpc_python_out="$out" \
    --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" "${files[@]}")
else
  echo "no protoc 3.15+ with the gRPC Python plugin: pip install grpcio-tools, or apt-get install protobuf-compiler protobuf-compiler-grpc" >&2
  exit 1
fi
echo "generated ${#files[@]} files' messages and stubs into $out"
