"""A protoc plugin that runs grpcio-tools' built-in gRPC Python generator.

grpcio-tools ships its gRPC generator only inside its bundled protoc, not as a
`protoc-gen-grpc_python` program, so `buf generate` cannot call it directly. This
plugin receives buf's CodeGeneratorRequest, hands the same files to the bundled
protoc through a descriptor set, and returns what it wrote.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = Path(tmp) / "descriptors.binpb"
        out = Path(tmp) / "out"
        out.mkdir()
        files = descriptor_pb2.FileDescriptorSet(file=request.proto_file)
        descriptors.write_bytes(files.SerializeToString())
        args = [
            "protoc",
            f"--descriptor_set_in={descriptors}",
            f"--grpc_python_out={out}",
            *request.file_to_generate,
        ]
        if protoc.main(args) != 0:
            response.error = "grpc_tools.protoc failed on " + ", ".join(request.file_to_generate)
        else:
            for path in sorted(out.rglob("*.py")):
                generated = response.file.add()
                generated.name = str(path.relative_to(out))
                generated.content = path.read_text()
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
