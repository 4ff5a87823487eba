"""Render a FileDescriptorProto back to .proto source text.

Used only to materialise `buf/validate/validate.proto`: the protovalidate package
ships that schema as a serialized descriptor, and buf and protoc need source text
to compile our contracts against it. The rendering is checked by compiling it again
and comparing descriptors (see `scripts/gen_protos.py`), so a mistake here fails
the build instead of shipping a different schema.

Covers what proto2/proto3 files use: messages (nested), enums, oneofs, reserved
ranges and names, extension ranges, extensions, and options (standard and custom,
rendered through text format against a pool that knows the file's extensions).
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import descriptor_pb2, descriptor_pool, text_encoding, text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    _F.TYPE_DOUBLE: "double",
    _F.TYPE_FLOAT: "float",
    _F.TYPE_INT64: "int64",
    _F.TYPE_UINT64: "uint64",
    _F.TYPE_INT32: "int32",
    _F.TYPE_FIXED64: "fixed64",
    _F.TYPE_FIXED32: "fixed32",
    _F.TYPE_BOOL: "bool",
    _F.TYPE_STRING: "string",
    _F.TYPE_BYTES: "bytes",
    _F.TYPE_UINT32: "uint32",
    _F.TYPE_SFIXED32: "sfixed32",
    _F.TYPE_SFIXED64: "sfixed64",
    _F.TYPE_SINT32: "sint32",
    _F.TYPE_SINT64: "sint64",
}
_MAX_FIELD_NUMBER = 536870912  # exclusive end of the field number space ("to max")


def _quote(text: str) -> str:
    """A proto string literal (CEscape takes str at runtime; its stub says bytes)."""
    escaped: str = text_encoding.CEscape(text, as_utf8=True)  # type: ignore[arg-type]
    return f'"{escaped}"'


class _Renderer:
    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool
        self._lines: list[str] = []

    def render(self, fd: descriptor_pb2.FileDescriptorProto) -> str:
        syntax = fd.syntax or "proto2"
        self._emit(0, f'syntax = "{syntax}";')
        self._emit(0, "")
        self._emit(0, f"package {fd.package};")
        self._emit(0, "")
        for dep in fd.dependency:
            self._emit(0, f'import "{dep}";')
        self._emit(0, "")
        for opt in self._options(fd.options, "google.protobuf.FileOptions"):
            self._emit(0, f"option {opt};")
        for enum in fd.enum_type:
            self._enum(0, enum)
        for msg in fd.message_type:
            self._message(0, msg, syntax)
        self._extensions(0, fd.extension, syntax)
        return "\n".join(self._lines) + "\n"

    def _emit(self, depth: int, text: str) -> None:
        self._lines.append("  " * depth + text if text else "")

    def _options(self, options: Message, full_name: str) -> list[str]:
        """Each set option as `name = value`, custom ones as `(ext) = {...}`."""
        if not options.ByteSize():
            return []
        cls = GetMessageClass(self._pool.FindMessageTypeByName(full_name))
        parsed = cls.FromString(options.SerializeToString())
        rendered: list[str] = []
        for field, value in parsed.ListFields():
            name = f"({field.full_name})" if field.is_extension else field.name
            values = value if field.is_repeated else [value]
            for item in values:
                rendered.append(f"{name} = {self._value(field, item)}")
        return rendered

    def _value(self, field: object, value: object) -> str:
        assert isinstance(field, FieldDescriptor)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            assert isinstance(value, Message)
            body = text_format.MessageToString(value, as_one_line=True, as_utf8=True)
            return "{ " + body + " }"
        if field.type == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None
            return field.enum_type.values_by_number[int(value)].name  # type: ignore[call-overload]
        if field.type == FieldDescriptor.TYPE_STRING:
            return _quote(str(value))
        if field.type == FieldDescriptor.TYPE_BOOL:
            return "true" if value else "false"
        return str(value)

    def _field_type(self, field: descriptor_pb2.FieldDescriptorProto) -> str:
        if field.type in _SCALARS:
            return _SCALARS[field.type]
        return field.type_name

    def _field_line(self, field: descriptor_pb2.FieldDescriptorProto, syntax: str) -> str:
        label = ""
        if field.label == _F.LABEL_REPEATED:
            label = "repeated "
        elif field.label == _F.LABEL_REQUIRED:
            label = "required "
        elif syntax == "proto2" or field.proto3_optional:
            label = "optional "
        opts = self._options(field.options, "google.protobuf.FieldOptions")
        if field.HasField("default_value"):
            default = field.default_value
            if field.type == _F.TYPE_STRING:
                default = _quote(default)
            opts.insert(0, f"default = {default}")
        suffix = f" [{', '.join(opts)}]" if opts else ""
        return f"{label}{self._field_type(field)} {field.name} = {field.number}{suffix};"

    def _message(self, depth: int, msg: descriptor_pb2.DescriptorProto, syntax: str) -> None:
        self._emit(depth, f"message {msg.name} {{")
        inner = depth + 1
        for opt in self._options(msg.options, "google.protobuf.MessageOptions"):
            self._emit(inner, f"option {opt};")
        for nested in msg.nested_type:
            self._message(inner, nested, syntax)
        for enum in msg.enum_type:
            self._enum(inner, enum)
        real_oneofs = {f.oneof_index for f in msg.field if f.HasField("oneof_index")
                       and not f.proto3_optional}
        emitted_oneofs: set[int] = set()
        for field in msg.field:
            if field.HasField("oneof_index") and field.oneof_index in real_oneofs:
                idx = field.oneof_index
                if idx in emitted_oneofs:
                    continue
                emitted_oneofs.add(idx)
                decl = msg.oneof_decl[idx]
                self._emit(inner, f"oneof {decl.name} {{")
                for opt in self._options(decl.options, "google.protobuf.OneofOptions"):
                    self._emit(inner + 1, f"option {opt};")
                for member in msg.field:
                    if member.HasField("oneof_index") and member.oneof_index == idx:
                        line = self._field_line(member, "proto3")
                        self._emit(inner + 1, line.removeprefix("optional "))
                self._emit(inner, "}")
            else:
                self._emit(inner, self._field_line(field, syntax))
        for rng in msg.extension_range:
            end = "max" if rng.end == _MAX_FIELD_NUMBER else str(rng.end - 1)
            self._emit(inner, f"extensions {rng.start} to {end};")
        for rrng in msg.reserved_range:
            self._emit(inner, f"reserved {self._range(rrng.start, rrng.end)};")
        if msg.reserved_name:
            names = ", ".join(f'"{n}"' for n in msg.reserved_name)
            self._emit(inner, f"reserved {names};")
        self._extensions(inner, msg.extension, syntax)
        self._emit(depth, "}")

    @staticmethod
    def _range(start: int, end_exclusive: int) -> str:
        last = end_exclusive - 1
        return str(start) if start == last else f"{start} to {last}"

    def _enum(self, depth: int, enum: descriptor_pb2.EnumDescriptorProto) -> None:
        self._emit(depth, f"enum {enum.name} {{")
        for opt in self._options(enum.options, "google.protobuf.EnumOptions"):
            self._emit(depth + 1, f"option {opt};")
        for value in enum.value:
            opts = self._options(value.options, "google.protobuf.EnumValueOptions")
            suffix = f" [{', '.join(opts)}]" if opts else ""
            self._emit(depth + 1, f"{value.name} = {value.number}{suffix};")
        for rrng in enum.reserved_range:
            # Enum reserved ranges are inclusive at both ends.
            self._emit(depth + 1, f"reserved {self._range(rrng.start, rrng.end + 1)};")
        if enum.reserved_name:
            names = ", ".join(f'"{n}"' for n in enum.reserved_name)
            self._emit(depth + 1, f"reserved {names};")
        self._emit(depth, "}")

    def _extensions(
        self, depth: int, extensions: Iterable[descriptor_pb2.FieldDescriptorProto], syntax: str
    ) -> None:
        by_extendee: dict[str, list[descriptor_pb2.FieldDescriptorProto]] = {}
        for ext in extensions:
            by_extendee.setdefault(ext.extendee, []).append(ext)
        for extendee, fields in by_extendee.items():
            self._emit(depth, f"extend {extendee} {{")
            for field in fields:
                self._emit(depth + 1, self._field_line(field, syntax))
            self._emit(depth, "}")


def render(fd: descriptor_pb2.FileDescriptorProto, pool: descriptor_pool.DescriptorPool) -> str:
    """Render `fd` as .proto text; `pool` must hold `fd` and all its imports."""
    return _Renderer(pool).render(fd)


def normalised(fd: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """A copy without what source text does not carry (json names, source info)."""
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(fd)
    copy.ClearField("source_code_info")

    def clear(fields: list[descriptor_pb2.FieldDescriptorProto]) -> None:
        for field in fields:
            field.ClearField("json_name")

    def walk(msg: descriptor_pb2.DescriptorProto) -> None:
        clear(list(msg.field))
        clear(list(msg.extension))
        for nested in msg.nested_type:
            walk(nested)

    clear(list(copy.extension))
    for msg in copy.message_type:
        walk(msg)
    return copy
