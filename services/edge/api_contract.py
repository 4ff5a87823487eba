"""The contract as an API reader sees it, read from a descriptor set with source info.

`read_contract(files, services)` turns a `FileDescriptorSet` (gen/caas.binpb: every file
with its imports and comments) and the names of the served services into plain
records: services and RPCs with their comments, access policy, declared error reasons
and HTTP bindings (which request fields go in the path, which is the body, which go in
the query string), messages with their fields (JSON names, field behaviour, buf.validate
rules), enums, and the error-reason catalogue with each reason's gRPC code. The OpenAPI
document (`openapi.py`) and the Markdown reference (`api_reference.py`) are both
rendered from it.

Everything is taken from the descriptor set itself, custom options included (decoded
through a pool built from the same set), never from the generated Python modules, so a
changed contract is read correctly before its code is regenerated.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.message_factory import GetMessageClass

_F = descriptor_pb2.FieldDescriptorProto

# Who may call an RPC, by `caas.type.v1.Principal` (without its prefix), in words.
WHO = {"ANONYMOUS": "anyone, without credentials",
       "OPERATOR": "the operator (operator token)",
       "API_KEY": "an app's backend (API key)",
       "USER": "a user (access token)",
       "DEVELOPER": "a developer (portal session)"}

# gRPC status code → the HTTP status a JSON caller gets (google.rpc.Code's mapping, which
# Envoy's transcoder applies).
HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401, "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501,
    "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500,
}
# Reasons whose HTTP status is not their code's: Envoy refuses an oversize body itself.
HTTP_STATUS_OF_REASON = {"REQUEST_TOO_LARGE": 413}

# Well-known types whose JSON form is a single value (a string, mostly), not an object:
# they are one query parameter, never expanded into dotted names.
SCALAR_MESSAGES = frozenset({
    "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
    *(f"google.protobuf.{w}Value" for w in
      ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")),
})

_SCALAR_NAMES: dict[int, str] = {
    _F.TYPE_DOUBLE: "double", _F.TYPE_FLOAT: "float", _F.TYPE_INT64: "int64",
    _F.TYPE_UINT64: "uint64", _F.TYPE_INT32: "int32", _F.TYPE_FIXED64: "fixed64",
    _F.TYPE_FIXED32: "fixed32", _F.TYPE_BOOL: "bool", _F.TYPE_STRING: "string",
    _F.TYPE_BYTES: "bytes", _F.TYPE_UINT32: "uint32", _F.TYPE_SFIXED32: "sfixed32",
    _F.TYPE_SFIXED64: "sfixed64", _F.TYPE_SINT32: "sint32", _F.TYPE_SINT64: "sint64",
}
# 64-bit integers are JSON strings in the proto3 JSON mapping.
INT64_TYPES = frozenset({_F.TYPE_INT64, _F.TYPE_UINT64, _F.TYPE_FIXED64, _F.TYPE_SFIXED64,
                         _F.TYPE_SINT64})
INT32_TYPES = frozenset({_F.TYPE_INT32, _F.TYPE_UINT32, _F.TYPE_FIXED32, _F.TYPE_SFIXED32,
                         _F.TYPE_SINT32})
# The buf.validate rule groups of numbers, by field type name.
NUMBER_RULES = ("int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64",
                "sfixed32", "sfixed64", "double", "float")
UNSIGNED_TYPES = frozenset({_F.TYPE_UINT32, _F.TYPE_FIXED32, _F.TYPE_UINT64, _F.TYPE_FIXED64})

# Source-info path components (descriptor.proto field numbers).
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _MESSAGE_ONEOF = 2, 3, 4, 8
_ENUM_VALUE, _SERVICE_METHOD = 2, 2

_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a message."""

    name: str
    json_name: str
    number: int
    type: int  # FieldDescriptorProto.Type
    type_name: str  # the message or enum's full name; "" for scalars
    repeated: bool
    oneof: str  # the real oneof it belongs to, or ""
    comment: str
    behaviors: tuple[str, ...]  # google.api.field_behavior names (REQUIRED, OUTPUT_ONLY, …)
    rules: dict[str, Any]  # buf.validate.FieldRules in JSON form, proto field names
    map_key: Field | None = None  # for a map field, its key and value fields
    map_value: Field | None = None

    @property
    def required(self) -> bool:
        return "REQUIRED" in self.behaviors

    @property
    def output_only(self) -> bool:
        return "OUTPUT_ONLY" in self.behaviors

    @property
    def is_message(self) -> bool:
        return self.type in (_F.TYPE_MESSAGE, _F.TYPE_GROUP)

    @property
    def is_enum(self) -> bool:
        return self.type == _F.TYPE_ENUM

    @property
    def is_map(self) -> bool:
        return self.map_value is not None

    @property
    def scalar_name(self) -> str:
        """`string`, `int64`, … for a scalar field; "" otherwise."""
        return _SCALAR_NAMES.get(self.type, "")


@dataclass(frozen=True, slots=True)
class Oneof:
    name: str
    comment: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Message:
    full_name: str
    package: str
    file: str
    comment: str
    fields: tuple[Field, ...]
    oneofs: tuple[Oneof, ...]
    resource_type: str  # google.api.resource type, or ""
    resource_patterns: tuple[str, ...]
    map_entry: bool

    @property
    def name(self) -> str:
        """The name within its package (`Message.State` style for nested types)."""
        return self.full_name.removeprefix(self.package + ".")

    def field(self, path: str, contract: Contract) -> Field:
        """The field at a dotted path (`message.name`) below this message."""
        head, _, rest = path.partition(".")
        found = next(f for f in self.fields if f.name == head)
        return contract.messages[found.type_name].field(rest, contract) if rest else found


@dataclass(frozen=True, slots=True)
class EnumValue:
    name: str
    number: int
    comment: str
    code: str  # for caas.errors.v1.ErrorReason: the value's gRPC code name, else ""


@dataclass(frozen=True, slots=True)
class Enum:
    full_name: str
    package: str
    file: str
    comment: str
    values: tuple[EnumValue, ...]

    @property
    def name(self) -> str:
        return self.full_name.removeprefix(self.package + ".")


@dataclass(frozen=True, slots=True)
class PathParameter:
    """A variable segment of an HTTP path: `{conversation}` of
    `/v1/apps/{app}/conversations/{conversation}/messages`."""

    name: str
    field: str  # the request field it is part of (`parent`, `message.name`)
    field_template: str  # what that field holds: `apps/{app}/conversations/{conversation}`
    pattern: str  # a regular expression for the segment, from the field's rules; or ""
    multi_segment: bool  # `**`: may contain slashes


@dataclass(frozen=True, slots=True)
class QueryParameter:
    name: str  # the field's dotted proto path (`request_id`, `filter.state`)
    field: Field


@dataclass(frozen=True, slots=True)
class HttpBinding:
    """One HTTP rule of an RPC (its google.api.http rule or an additional binding)."""

    verb: str  # GET, POST, PATCH, PUT, DELETE or a custom verb
    template: str  # the rule's path template, as written
    path: str  # the OpenAPI path: `/v1/apps/{app}/conversations/{conversation}/messages`
    parameters: tuple[PathParameter, ...]
    path_fields: tuple[str, ...]  # request fields bound by the path
    body: str  # "": no body; "*": the request minus the path fields; else a request field
    query: tuple[QueryParameter, ...]  # every other request field


@dataclass(frozen=True, slots=True)
class Method:
    service: str  # the service's full name
    name: str
    comment: str
    input: str
    output: str
    client_streaming: bool
    server_streaming: bool
    access: tuple[str, ...]  # caas.type.v1.Principal names without their prefix
    errors: tuple[str, ...]  # caas.errors.v1.ErrorReason names without their prefix
    bindings: tuple[HttpBinding, ...]

    @property
    def grpc_name(self) -> str:
        """`caas.messages.v1.MessagesService/CreateMessage`."""
        return f"{self.service}/{self.name}"

    @property
    def service_name(self) -> str:
        return self.service.rpartition(".")[2]


@dataclass(frozen=True, slots=True)
class Service:
    full_name: str
    package: str
    file: str
    comment: str
    methods: tuple[Method, ...]

    @property
    def name(self) -> str:
        return self.full_name.rpartition(".")[2]


@dataclass(frozen=True, slots=True)
class Reason:
    """One value of caas.errors.v1.ErrorReason, without its prefix."""

    name: str
    code: str  # gRPC code name
    comment: str

    @property
    def http_status(self) -> int:
        return HTTP_STATUS_OF_REASON.get(self.name, HTTP_STATUS.get(self.code, 500))


@dataclass(frozen=True, slots=True)
class Contract:
    services: tuple[Service, ...]
    messages: dict[str, Message]
    enums: dict[str, Enum]
    reasons: dict[str, Reason]  # in declaration order
    principals: dict[str, str]  # caas.type.v1.Principal name (no prefix) → comment

    def referenced(self, roots: Sequence[str]) -> list[str]:
        """The full names of `roots` and of every message and enum they reach through
        their fields, depth first in field order (roots first), each once."""
        seen: dict[str, None] = {}

        def visit(name: str) -> None:
            if name in seen or (name not in self.messages and name not in self.enums):
                return
            seen[name] = None
            for field in self.messages[name].fields if name in self.messages else ():
                for part in (field, field.map_key, field.map_value):
                    if part is not None and part.type_name:
                        visit(part.type_name)

        for root in roots:
            visit(root)
        return list(seen)


def clean_comment(text: str) -> str:
    """A proto comment as prose: the space after `//` and outer blank lines removed."""
    lines = [line[1:] if line.startswith(" ") else line for line in text.split("\n")]
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def first_sentence(text: str) -> str:
    """The first sentence of a comment (up to a full stop followed by a space, or its
    first paragraph), on one line."""
    paragraph = " ".join(text.split("\n\n", 1)[0].split())
    match = re.match(r"(.+?[.!?])(\s|$)", paragraph)
    return match.group(1) if match else paragraph


def lower_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _singular(collection: str) -> str:
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", collection).lower()
    return snake[:-1] if snake.endswith("s") else snake


class _Options:
    """Options of a descriptor set's elements, decoded with the set's own extensions."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool
        self._classes: dict[str, type[ProtoMessage]] = {}

    def _decode(self, options: ProtoMessage) -> ProtoMessage:
        name = options.DESCRIPTOR.full_name
        if name not in self._classes:
            self._classes[name] = GetMessageClass(self._pool.FindMessageTypeByName(name))
        return self._classes[name].FromString(options.SerializeToString())

    def get(self, options: ProtoMessage, extension: str) -> Any:
        """The value of `extension` in `options` (its default when unset or unknown)."""
        try:
            handle = self._pool.FindExtensionByName(extension)
        except KeyError:
            return None
        return cast(Any, self._decode(options)).Extensions[handle]

    def enum_names(self, options: ProtoMessage, extension: str) -> tuple[str, ...]:
        """The names of a repeated enum extension's values."""
        values = self.get(options, extension)
        if not values:
            return ()
        enum = self._pool.FindExtensionByName(extension).enum_type
        assert enum is not None
        return tuple(enum.values_by_number[v].name if v in enum.values_by_number else str(v)
                     for v in values)

    def enum_name(self, options: ProtoMessage, extension: str) -> str:
        """The name of a singular enum extension's value ("" when unset)."""
        value = self.get(options, extension)
        if not value:
            return ""
        enum = self._pool.FindExtensionByName(extension).enum_type
        assert enum is not None
        return str(enum.values_by_number[value].name)

    def as_dict(self, options: ProtoMessage, extension: str) -> dict[str, Any]:
        value = self.get(options, extension)
        if value is None:
            return {}
        return json_format.MessageToDict(value, preserving_proto_field_name=True)


class _Reader:
    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.files = files
        pool = descriptor_pool.DescriptorPool()
        for file in files.file:
            pool.Add(file)
        self.options = _Options(pool)
        self.messages: dict[str, Message] = {}
        self.enums: dict[str, Enum] = {}
        # service full name → (descriptor, file, package, comment, its methods' comments)
        self.services: dict[str, tuple[descriptor_pb2.ServiceDescriptorProto, str, str, str,
                                       list[str]]] = {}
        for file in files.file:
            comments = {tuple(loc.path): clean_comment(loc.leading_comments
                                                        or loc.trailing_comments)
                        for loc in file.source_code_info.location}
            for index, message in enumerate(file.message_type):
                self._message(file, message, file.package, (_FILE_MESSAGE, index), comments)
            for index, enum in enumerate(file.enum_type):
                self._enum(file, enum, file.package, (_FILE_ENUM, index), comments)
            for index, service in enumerate(file.service):
                path = (_FILE_SERVICE, index)
                self.services[f"{file.package}.{service.name}"] = (
                    service, file.name, file.package, comments.get(path, ""),
                    [comments.get((*path, _SERVICE_METHOD, i), "")
                     for i in range(len(service.method))])

    def _enum(self, file: descriptor_pb2.FileDescriptorProto,
              enum: descriptor_pb2.EnumDescriptorProto, scope: str, path: tuple[int, ...],
              comments: dict[tuple[int, ...], str]) -> None:
        full_name = f"{scope}.{enum.name}"
        values = []
        for index, value in enumerate(enum.value):
            code = ""
            if full_name == "caas.errors.v1.ErrorReason":
                code = self.options.enum_name(value.options, "caas.errors.v1.code")
            values.append(EnumValue(value.name, value.number,
                                    comments.get((*path, _ENUM_VALUE, index), ""), code))
        self.enums[full_name] = Enum(full_name, file.package, file.name,
                                     comments.get(path, ""), tuple(values))

    def _field(self, field: descriptor_pb2.FieldDescriptorProto, oneof: str, comment: str
               ) -> Field:
        repeated = field.label == _F.LABEL_REPEATED
        return Field(
            name=field.name, json_name=field.json_name or lower_camel(field.name),
            number=field.number, type=field.type, type_name=field.type_name.lstrip("."),
            repeated=repeated, oneof=oneof, comment=comment,
            behaviors=self.options.enum_names(field.options, "google.api.field_behavior"),
            rules=self.options.as_dict(field.options, "buf.validate.field"))

    def _message(self, file: descriptor_pb2.FileDescriptorProto,
                 message: descriptor_pb2.DescriptorProto, scope: str, path: tuple[int, ...],
                 comments: dict[tuple[int, ...], str]) -> None:
        full_name = f"{scope}.{message.name}"
        for index, nested in enumerate(message.nested_type):
            self._message(file, nested, full_name, (*path, _MESSAGE_NESTED, index), comments)
        for index, enum in enumerate(message.enum_type):
            self._enum(file, enum, full_name, (*path, _MESSAGE_ENUM, index), comments)
        # Oneofs made up for proto3 `optional` fields are not real ones.
        synthetic = {f.oneof_index for f in message.field if f.proto3_optional}
        oneof_names = {i: o.name for i, o in enumerate(message.oneof_decl) if i not in synthetic}
        fields = []
        for index, proto in enumerate(message.field):
            oneof = (oneof_names.get(proto.oneof_index, "") if proto.HasField("oneof_index")
                     else "")
            fields.append(self._field(proto, oneof,
                                      comments.get((*path, _MESSAGE_FIELD, index), "")))
        resource = self.options.as_dict(message.options, "google.api.resource")
        self.messages[full_name] = Message(
            full_name=full_name, package=file.package, file=file.name,
            comment=comments.get(path, ""), fields=tuple(fields),
            oneofs=tuple(Oneof(name, comments.get((*path, _MESSAGE_ONEOF, i), ""),
                               tuple(f.name for f in fields if f.oneof == name))
                         for i, name in oneof_names.items()),
            resource_type=resource.get("type", ""),
            resource_patterns=tuple(resource.get("pattern", ())),
            map_entry=message.options.map_entry)

    def link_maps(self) -> None:
        """Give map fields their key and value (the entry messages are known by now)."""
        for name, message in list(self.messages.items()):
            fields = []
            for field in message.fields:
                entry = self.messages.get(field.type_name)
                if field.repeated and entry is not None and entry.map_entry:
                    key, value = entry.fields
                    fields.append(dataclasses.replace(field, map_key=key, map_value=value))
                else:
                    fields.append(field)
            self.messages[name] = dataclasses.replace(message, fields=tuple(fields))

    def service(self, full_name: str, contract: Contract, collections: dict[str, str]
                ) -> Service:
        proto, file, package, comment, method_comments = self.services[full_name]
        methods = []
        for index, method in enumerate(proto.method):
            request = contract.messages[method.input_type.lstrip(".")]
            rule = self.options.get(method.options, "google.api.http")
            rules = [rule, *rule.additional_bindings] if rule is not None else []
            bindings = tuple(_binding(r, request, contract, collections) for r in rules
                             if r.WhichOneof("pattern"))
            errors = self.options.get(method.options, "caas.errors.v1.errors")
            reasons = contract.enums.get("caas.errors.v1.ErrorReason")
            by_number = {v.number: v.name for v in reasons.values} if reasons else {}
            methods.append(Method(
                service=full_name, name=method.name, comment=method_comments[index],
                input=request.full_name, output=method.output_type.lstrip("."),
                client_streaming=method.client_streaming,
                server_streaming=method.server_streaming,
                access=_access(self.options, method),
                errors=tuple(by_number.get(r, str(r)).removeprefix("ERROR_REASON_")
                             for r in (errors.reasons if errors is not None else ())),
                bindings=bindings))
        return Service(full_name, package, file, comment, tuple(methods))


def _access(options: _Options, method: descriptor_pb2.MethodDescriptorProto) -> tuple[str, ...]:
    policy = options.get(method.options, "caas.type.v1.access")
    if policy is None:
        return ()
    enum = policy.DESCRIPTOR.fields_by_name["allow"].enum_type
    return tuple(enum.values_by_number[p].name.removeprefix("PRINCIPAL_") for p in policy.allow)


def _segment_patterns(field: Field, segments: list[str]) -> list[str]:
    """Per path segment, the regular expression its `*` must match, cut from the field's
    buf.validate string pattern when that pattern is a plain `^a/b/c$` aligned with the
    template's segments; "" where unknown."""
    pattern = field.rules.get("string", {}).get("pattern", "")
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return [""] * len(segments)
    pieces = pattern[1:-1].split("/")
    if len(pieces) != len(segments) or any(
            s not in ("*", "**") and s != p for s, p in zip(segments, pieces, strict=True)):
        return [""] * len(segments)
    return [f"^{p}$" if s == "*" else "" for s, p in zip(segments, pieces, strict=True)]


def _binding(rule: Any, request: Message, contract: Contract, collections: dict[str, str]
             ) -> HttpBinding:
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        verb, template = rule.custom.kind.upper(), rule.custom.path
    else:
        verb, template = kind.upper(), getattr(rule, kind)
    path: list[str] = []
    parameters: list[PathParameter] = []
    path_fields: list[str] = []
    position = 0
    used: set[str] = set()
    for match in _VARIABLE.finditer(template):
        path.append(template[position:match.start()])
        position = match.end()
        field_path, segments = match.group(1), (match.group(2) or "*").split("/")
        regexes = _segment_patterns(request.field(field_path, contract), segments)
        rendered: list[str] = []
        variables: list[tuple[str, str, bool]] = []
        previous = ""
        for segment, regex in zip(segments, regexes, strict=True):
            if segment not in ("*", "**"):
                rendered.append(segment)
                previous = segment
                continue
            name = (collections.get(previous) or _singular(previous)
                    or field_path.replace(".", "_"))
            while name in used:
                name += "_"
            used.add(name)
            variables.append((name, regex, segment == "**"))
            rendered.append("{" + name + "}")
        held = "/".join(rendered)
        parameters += [PathParameter(name, field_path, held, regex, multi)
                       for name, regex, multi in variables]
        path.append(held)
        path_fields.append(field_path)
    path.append(template[position:])
    body = rule.body
    return HttpBinding(
        verb=verb, template=template, path="".join(path),
        parameters=tuple(parameters),
        path_fields=tuple(path_fields), body=body,
        query=() if body == "*" else tuple(
            _query(request, contract, tuple(path_fields), body, "", set())))


def _query(message: Message, contract: Contract, path_fields: tuple[str, ...], body: str,
           prefix: str, seen: set[str]) -> Iterator[QueryParameter]:
    """The request fields left for the query string: not bound by the path, not the
    body; message fields expand into dotted names."""
    for field in message.fields:
        path = prefix + field.name
        if path in path_fields or (not prefix and field.name == body):
            continue
        if field.is_message and field.type_name not in SCALAR_MESSAGES:
            if field.repeated or field.is_map:
                raise ValueError(f"{message.full_name}.{field.name}: a map or repeated "
                                 "message cannot be a query parameter; send it in a body")
            if field.type_name in seen:
                continue  # a recursive message: its nested copies are not addressable
            yield from _query(contract.messages[field.type_name], contract, path_fields, body,
                              path + ".", seen | {message.full_name})
            continue
        yield QueryParameter(path, field)


def read_contract(files: descriptor_pb2.FileDescriptorSet, services: Sequence[str]
                  ) -> Contract:
    """The contract of `services` (full names, in the order given), from `files`: a
    descriptor set holding them with every import, with source info for comments."""
    reader = _Reader(files)
    reader.link_maps()
    reasons_enum = reader.enums.get("caas.errors.v1.ErrorReason")
    reasons = {v.name.removeprefix("ERROR_REASON_"): Reason(
        v.name.removeprefix("ERROR_REASON_"), v.code, _strip_heading(v.comment, v.code))
        for v in (reasons_enum.values if reasons_enum else ()) if v.number}
    principal_enum = reader.enums.get("caas.type.v1.Principal")
    principals = {v.name.removeprefix("PRINCIPAL_"): v.comment
                  for v in (principal_enum.values if principal_enum else ()) if v.number}
    contract = Contract((), reader.messages, reader.enums, reasons, principals)
    collections: dict[str, str] = {}
    for message in reader.messages.values():
        for pattern in message.resource_patterns:
            for collection, variable in re.findall(r"([^/{}]+)/\{([^}]+)\}", pattern):
                collections.setdefault(collection, variable)
    return Contract(tuple(reader.service(s, contract, collections) for s in services),
                    reader.messages, reader.enums, reasons, principals)


def _strip_heading(comment: str, code: str) -> str:
    """An ErrorReason comment without the code heading that opens a group of reasons."""
    first, _, rest = comment.partition("\n")
    return rest if code and first.strip() == code else comment
