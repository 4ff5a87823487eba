"""The OpenAPI 3.1 document of the JSON surface, rendered from the contract.

`openapi_document(files, services)` is a pure function of a descriptor set with source
info (gen/caas.binpb) and the served services' names. Every HTTP rule of every RPC
(additional bindings included) becomes an operation; its request fields go where Envoy's
transcoder takes them (the path, the body, the query string); its schemas follow the
proto3 JSON mapping (lowerCamelCase names, 64-bit integers as strings, enums by name,
Timestamps as RFC 3339 strings, Durations as `"1.5s"`), with the limits of the
buf.validate rules that JSON Schema can say. `scripts/gen_protos.py` writes it to
`gen/python/caas/openapi.json`, package data of the `caas` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2

from services.core.errors import COMMON_REASONS
from services.edge.api_contract import (
    INT32_TYPES,
    INT64_TYPES,
    NUMBER_RULES,
    UNSIGNED_TYPES,
    WHO,
    Contract,
    Field,
    HttpBinding,
    Message,
    Method,
    first_sentence,
    read_contract,
)

SERVER_URL = "http://127.0.0.1:8080"
STATUS = "google.rpc.Status"
ERROR_DETAILS = ("google.rpc.ErrorInfo", "google.rpc.BadRequest", "google.rpc.RetryInfo",
                 "google.rpc.QuotaFailure", "google.rpc.ResourceInfo")

_F = descriptor_pb2.FieldDescriptorProto
_ANY = {"type": "object", "additionalProperties": True,
        "properties": {"@type": {"type": "string", "description":
                                 "The type of the value: `type.googleapis.com/<full name>`."}},
        "required": ["@type"],
        "description": "Any message, with its type in `@type` and its fields beside it."}
# Well-known types have their own JSON forms, written inline.
WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time",
                                  "description": "RFC 3339, e.g. `2026-11-29T03:20:00Z`."},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
                                 "description": "Seconds with an `s` suffix, e.g. `1.5s`."},
    "google.protobuf.FieldMask": {
        "type": "string", "description": "Field paths separated by commas, e.g. "
                                         "`displayName,metadata` (lowerCamelCase; in a query "
                                         "parameter the proto names work too)."},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": _ANY,
    **{f"google.protobuf.{name}Value": schema for name, schema in (
        ("Double", {"type": "number"}), ("Float", {"type": "number"}),
        ("Int64", {"type": "string", "format": "int64"}),
        ("UInt64", {"type": "string", "format": "uint64"}),
        ("Int32", {"type": "integer", "format": "int32"}),
        ("UInt32", {"type": "integer", "format": "uint32", "minimum": 0}),
        ("Bool", {"type": "boolean"}), ("String", {"type": "string"}),
        ("Bytes", {"type": "string", "contentEncoding": "base64"}))},
}


def ref(full_name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{full_name}"}


def _number(value: Any) -> int | float:
    """A rule's number (64-bit ones come as strings from the JSON form of the rules)."""
    number = float(value)
    return int(number) if number.is_integer() else number


def _scalar_schema(field: Field) -> dict[str, Any]:
    if field.type in INT64_TYPES:
        return {"type": "string",
                "format": "uint64" if field.type in UNSIGNED_TYPES else "int64",
                "description": "A 64-bit integer, as a JSON string."}
    if field.type in INT32_TYPES:
        if field.type in UNSIGNED_TYPES:
            return {"type": "integer", "format": "uint32", "minimum": 0}
        return {"type": "integer", "format": "int32"}
    others: dict[int, dict[str, Any]] = {
        _F.TYPE_DOUBLE: {"type": "number", "format": "double"},
        _F.TYPE_FLOAT: {"type": "number", "format": "float"},
        _F.TYPE_BOOL: {"type": "boolean"},
        _F.TYPE_STRING: {"type": "string"},
        _F.TYPE_BYTES: {"type": "string", "contentEncoding": "base64",
                        "description": "Bytes, base64-encoded."},
    }
    return dict(others[field.type])


def _apply_rules(schema: dict[str, Any], field: Field, rules: dict[str, Any],
                 contract: Contract) -> list[str]:
    """Put the buf.validate `rules` of one value into `schema` where JSON Schema can say
    them; return the notes for those it cannot."""
    notes = []
    string = rules.get("string", {})
    for rule, keyword in (("min_len", "minLength"), ("max_len", "maxLength")):
        if rule in string:
            schema[keyword] = int(string[rule])
    if "pattern" in string:
        schema["pattern"] = string["pattern"]
    for rule, keyword in (("uri", "uri"), ("email", "email"), ("uuid", "uuid")):
        if string.get(rule):
            schema["format"] = keyword
    if "in" in string:
        schema["enum"] = list(string["in"])
    zero_ok: dict[str, Any] = {k: schema.pop(k) for k in ("pattern", "format", "minLength")
                               if k in schema}
    if zero_ok and rules.get("ignore") == "IGNORE_IF_ZERO_VALUE":
        schema["anyOf"] = [{"const": ""}, zero_ok]  # empty means unset: not checked
    else:
        schema |= zero_ok
    number_rules: dict[str, Any] = next((rules[k] for k in NUMBER_RULES if k in rules), {})
    bounds = {"gte": "minimum", "lte": "maximum", "gt": "exclusiveMinimum",
              "lt": "exclusiveMaximum"}
    for rule, keyword in bounds.items():
        if rule not in number_rules:
            continue
        if schema.get("type") == "string":  # a 64-bit integer: a string in JSON
            sign = {"gte": "≥", "lte": "≤", "gt": ">", "lt": "<"}[rule]
            notes.append(f"{sign} {number_rules[rule]}")
        else:
            schema[keyword] = _number(number_rules[rule])
    enum_rules = rules.get("enum", {})
    if enum_rules.get("not_in") and field.type_name in contract.enums:
        names = {v.number: v.name for v in contract.enums[field.type_name].values}
        schema["not"] = {"enum": [names[int(n)] for n in enum_rules["not_in"]
                                  if int(n) in names]}
    duration = rules.get("duration", {})
    for rule, sign in (("gte", "≥"), ("gt", ">"), ("lte", "≤"), ("lt", "<")):
        if rule in duration:
            notes.append(f"{sign} {duration[rule]}")
    mask = rules.get("field_mask", {})
    if mask.get("in"):
        notes.append("paths: " + ", ".join(f"`{p}`" for p in mask["in"]))
    notes += [cel["message"] for cel in rules.get("cel", ()) if cel.get("message")]
    return notes


def _value_schema(field: Field, contract: Contract) -> dict[str, Any]:
    """The schema of one value of `field` (an item of a repeated field)."""
    if field.is_message:
        return dict(WELL_KNOWN.get(field.type_name) or ref(field.type_name))
    if field.is_enum:
        return ref(field.type_name)
    return _scalar_schema(field)


def field_schema(field: Field, contract: Contract) -> dict[str, Any]:
    """The schema of a field's JSON value, with its description and limits."""
    notes: list[str] = []
    if field.is_map:
        assert field.map_key is not None and field.map_value is not None
        rules = field.rules.get("map", {})
        value = _value_schema(field.map_value, contract)
        notes += _apply_rules(value, field.map_value, rules.get("values", {}), contract)
        schema: dict[str, Any] = {"type": "object", "additionalProperties": value}
        keys: dict[str, Any] = {}
        _apply_rules(keys, field.map_key, rules.get("keys", {}), contract)
        if keys:
            schema["propertyNames"] = keys
        for rule, keyword in (("min_pairs", "minProperties"), ("max_pairs", "maxProperties")):
            if rule in rules:
                schema[keyword] = int(rules[rule])
    elif field.repeated:
        rules = field.rules.get("repeated", {})
        items = _value_schema(field, contract)
        notes += _apply_rules(items, field, rules.get("items", {}), contract)
        schema = {"type": "array", "items": items}
        for rule, keyword in (("min_items", "minItems"), ("max_items", "maxItems")):
            if rule in rules:
                schema[keyword] = int(rules[rule])
        if rules.get("unique"):
            schema["uniqueItems"] = True
    else:
        schema = _value_schema(field, contract)
        notes += _apply_rules(schema, field, field.rules, contract)
    parts = [field.comment] if field.comment else []
    if field.oneof:
        parts.append(f"One of the fields of `{field.oneof}`: set at most one.")
    if notes:
        parts.append("Rules: " + "; ".join(notes) + ".")
    if "IMMUTABLE" in field.behaviors:
        parts.append("Set when created; cannot change.")
    type_note = schema.pop("description", "")  # what a scalar's JSON form is
    if type_note:
        parts.append(type_note)
    if parts:
        schema["description"] = "\n\n".join(parts)
    if field.output_only:
        schema["readOnly"] = True
    return schema


def message_schema(message: Message, contract: Contract,
                   omit: Sequence[str] = ()) -> dict[str, Any]:
    """An object schema for `message`, without the fields named in `omit`."""
    fields = [f for f in message.fields if f.name not in omit]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.json_name: field_schema(f, contract) for f in fields},
    }
    required = [f.json_name for f in fields
                if (f.required or f.rules.get("required")) and not f.output_only]
    if required:
        schema["required"] = required
    parts = [message.comment] if message.comment else []
    for oneof in message.oneofs:
        names = ", ".join(f"`{n}`" for n in oneof.fields if n not in omit)
        parts.append(f"`{oneof.name}`: at most one of {names}"
                     + (f" — {oneof.comment}" if oneof.comment else "") + ".")
    if parts:
        schema["description"] = "\n\n".join(parts)
    return schema


def enum_schema(contract: Contract, full_name: str) -> dict[str, Any]:
    enum = contract.enums[full_name]
    lines = [enum.comment] if enum.comment else []
    lines += [f"- `{v.name}`" + (f": {' '.join(v.comment.split())}" if v.comment else "")
              for v in enum.values]
    return {"type": "string", "enum": [v.name for v in enum.values],
            "description": "\n".join(lines)}


def _who(method: Method) -> str:
    return ", ".join(WHO[p] for p in method.access)


def _placement(binding: HttpBinding, request: Message, contract: Contract) -> str:
    """Where the request's fields go, in words."""
    parts = []
    if binding.path_fields:
        parts.append("path: " + ", ".join(
            f"`{f}` (`{next(p.field_template for p in binding.parameters if p.field == f)}`)"
            for f in binding.path_fields))
    if binding.body == "*":
        rest = [f.name for f in request.fields if f.name not in binding.path_fields]
        parts.append("body: the request's other fields"
                     + (f" ({', '.join(f'`{n}`' for n in rest)})" if rest else " (none)"))
    elif binding.body:
        body = request.field(binding.body, contract)
        parts.append(f"body: `{binding.body}` (a `{body.type_name or body.scalar_name}`)")
    else:
        parts.append("no body")
    if binding.query:
        parts.append("query: " + ", ".join(f"`{q.name}`" for q in binding.query))
    return "; ".join(parts) + "."


def _errors(method: Method, contract: Contract) -> str:
    if not method.errors:
        return "Only the common errors."
    return "\n".join(
        f"- `{r}` ({contract.reasons[r].http_status} {contract.reasons[r].code}): "
        + " ".join(contract.reasons[r].comment.split()) for r in method.errors)


def _operation(method: Method, binding: HttpBinding, index: int, contract: Contract
               ) -> dict[str, Any]:
    request = contract.messages[method.input]
    parameters: list[dict[str, Any]] = []
    for parameter in binding.parameters:
        field = request.field(parameter.field, contract)
        schema: dict[str, Any] = {"type": "string"}
        if parameter.pattern:
            schema["pattern"] = parameter.pattern
        description = (f"The `{{{parameter.name}}}` of `{parameter.field}` "
                       f"(`{parameter.field_template}`).")
        if parameter.multi_segment:
            description += " May contain `/`."
        if field.comment and field.comment.strip("`.") != parameter.field_template:
            description += " " + " ".join(field.comment.split())
        parameters.append({"name": parameter.name, "in": "path", "required": True,
                           "description": description, "schema": schema})
    for query in binding.query:
        schema = field_schema(query.field, contract)
        description = schema.pop("description", "")
        entry: dict[str, Any] = {"name": query.name, "in": "query", "schema": schema}
        if description:
            entry["description"] = description
        if query.field.required:
            entry["required"] = True
        if query.field.repeated:
            entry |= {"style": "form", "explode": True}
        parameters.append(entry)
    grpc = method.grpc_name
    description = "\n\n".join(part for part in (
        method.comment,
        f"**gRPC:** `{grpc}`.",
        f"**Who may call:** {_who(method)}.",
        f"**Fields:** {_placement(binding, request, contract)}",
        "**Errors** (besides the common ones):\n" + _errors(method, contract),
    ) if part)
    operation: dict[str, Any] = {
        "operationId": f"{method.service_name}_{method.name}" + (f"_{index}" if index else ""),
        "summary": first_sentence(method.comment) or method.name,
        "description": description,
        "tags": [method.service_name],
        "parameters": parameters,
        "responses": _responses(method, contract),
        "x-grpc-method": grpc,
        "x-caas-access": list(method.access),
        "x-caas-errors": list(method.errors),
    }
    if not parameters:
        del operation["parameters"]
    if binding.body == "*" and binding.path_fields:
        body_schema = message_schema(request, contract, omit=binding.path_fields)
        body_schema.pop("description", None)
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": body_schema}}}
    elif binding.body == "*":
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": ref(request.full_name)}}}
    elif binding.body:
        body = request.field(binding.body, contract)
        body_schema = field_schema(body, contract)
        operation["requestBody"] = {
            "required": body.required,
            "description": body_schema.pop("description", ""),
            "content": {"application/json": {"schema": body_schema}}}
    if method.access == ("ANONYMOUS",):
        operation["security"] = []
    elif "ANONYMOUS" in method.access:
        operation["security"] = [{}, {"bearerAuth": []}]
    return operation


def _responses(method: Method, contract: Contract) -> dict[str, Any]:
    output = ref(method.output)
    if method.server_streaming:
        ok = {"description": (
            "A stream: one JSON array whose items arrive as they happen, each a "
            f"`{method.output}`; the response ends when the stream does. A stream that "
            "fails after it has started ends with a last item `{\"error\": "
            "<google.rpc.Status>}` (the status a gRPC client would get), then the "
            "array closes; a failure before the first item is an ordinary error "
            "response."),
            "content": {"application/json": {"schema": {"type": "array", "items": output}}}}
    else:
        ok = {"description": f"OK: a `{method.output}`.",
              "content": {"application/json": {"schema": output}}}
    responses: dict[str, Any] = {"200": ok}
    by_status: dict[int, list[str]] = {}
    for reason in method.errors:
        by_status.setdefault(contract.reasons[reason].http_status, []).append(reason)
    for status, reasons in sorted(by_status.items()):
        responses[str(status)] = {
            "description": ", ".join(f"{contract.reasons[r].code} `{r}`" for r in reasons),
            "content": {"application/json": {"schema": ref(STATUS)}}}
    responses["default"] = {
        "description": "An error: a `google.rpc.Status` whose `details` hold a "
                       "`google.rpc.ErrorInfo` with the reason (see the common errors).",
        "content": {"application/json": {"schema": ref(STATUS)}}}
    return responses


def _info(contract: Contract) -> dict[str, Any]:
    common = "\n".join(
        f"| `{r}` | {contract.reasons[r].code} | {contract.reasons[r].http_status} | "
        + " ".join(contract.reasons[r].comment.split()).replace("|", "\\|") + " |"
        for r in COMMON_REASONS if r in contract.reasons)
    return {
        "title": "CAAS JSON API",
        "version": "v1",
        "description": (
            "The JSON/HTTP surface of CAAS, transcoded by Envoy from the gRPC services. "
            "Bodies follow the proto3 JSON mapping: fields in lowerCamelCase (proto names "
            "are accepted too), 64-bit integers as strings, enums by name, times as RFC "
            "3339 strings. Unknown fields and unknown query parameters are refused (400).\n\n"
            "Every error is a `google.rpc.Status` (`code`, `message`, `details`) whose "
            "`details` hold a `google.rpc.ErrorInfo` (`reason`, `domain: \"caas.dev\"`, "
            "`metadata`) and, where they apply, `BadRequest`, `RetryInfo`, `QuotaFailure`, "
            "`ResourceInfo`. Each operation lists the reasons it may return; any call may "
            "also get these:\n\n| reason | gRPC code | HTTP | meaning |\n|---|---|---|---|\n"
            + common),
    }


def openapi_document(files: descriptor_pb2.FileDescriptorSet, services: Sequence[str]
                     ) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `services` (full names), from `files`: a descriptor
    set with every import and source info."""
    contract = read_contract(files, services)
    paths: dict[str, dict[str, Any]] = {}
    roots = [STATUS, *ERROR_DETAILS]
    for service in contract.services:
        for method in service.methods:
            roots += [method.input, method.output]
            for index, binding in enumerate(method.bindings):
                verb = binding.verb.lower()
                if verb in paths.get(binding.path, {}):
                    raise ValueError(f"{binding.verb} {binding.path} is bound twice")
                paths.setdefault(binding.path, {})[verb] = _operation(
                    method, binding, index, contract)
    schemas: dict[str, Any] = {}
    for name in contract.referenced(roots):
        if name in WELL_KNOWN or (name in contract.messages
                                  and contract.messages[name].map_entry):
            continue
        schemas[name] = (message_schema(contract.messages[name], contract)
                         if name in contract.messages else enum_schema(contract, name))
    principals = "\n".join(f"- {WHO[p]}: {' '.join(text.split())}"
                           for p, text in contract.principals.items() if p != "ANONYMOUS")
    return {
        "openapi": "3.1.0",
        "info": _info(contract),
        "servers": [{"url": SERVER_URL,
                     "description": "`caas serve`'s HTTP listener (Envoy), default address"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": s.name, "description": s.comment} for s in contract.services],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "`authorization: Bearer <credential>`; the kind of "
                               "credential is told by its shape:\n\n"
                               "- `caaso_…`: an operator token;\n"
                               "- `caask_<app>_<key>_…`: an app's API key;\n"
                               "- a JWT access token of a user's session "
                               "(`AuthService.CreateSession`, `RefreshSession`).\n\n"
                               "Each operation says which kinds it accepts:\n\n"
                               + principals}},
        },
    }
