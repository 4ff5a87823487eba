"""Unknown fields in JSON bodies: refused at Envoy with a 400 that names them.

Envoy's JSON transcoder drops fields it does not know (the proto3 JSON mapping allows
it) and has no option to refuse them, so a misspelt field would be lost without a word.
This module renders a small Lua filter, run before the transcoder, that walks each JSON
body of a transcoded RPC against the schema of its body message, derived from the same
descriptors: every object key must be a field of the message at that place (its JSON
name or its proto name). Maps, `Struct`, `Value` and `Any` hold free-form keys and are
not walked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from google.api import annotations_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor

FREE_FORM = "*"  # keys are data, not fields
SCALAR = ""  # a JSON string, number, bool or array of those
FREE_FORM_TYPES = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.Any",
                   "google.protobuf.ListValue"}
# Well-known types whose JSON form is not an object.
SCALAR_TYPES = {"google.protobuf.Timestamp", "google.protobuf.Duration",
                "google.protobuf.FieldMask", "google.protobuf.Empty",
                *(f"google.protobuf.{w}Value" for w in
                  ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String",
                   "Bytes"))}


def _child(field: FieldDescriptor) -> str:
    if field.message_type is None:
        return SCALAR
    name = field.message_type.full_name
    if field.message_type.GetOptions().map_entry or name in FREE_FORM_TYPES:
        return FREE_FORM
    return SCALAR if name in SCALAR_TYPES else name


def _schema(message: Descriptor, schema: dict[str, dict[str, str]]) -> None:
    if message.full_name in schema:
        return
    fields: dict[str, str] = {}
    schema[message.full_name] = fields
    for field in message.fields:
        fields[field.json_name] = fields[field.name] = _child(field)
        if field.message_type is not None and fields[field.name] not in (SCALAR, FREE_FORM):
            _schema(field.message_type, schema)


def _path_pattern(template: str) -> str:
    """A Lua pattern for an HTTP rule's path template."""
    out = []
    for literal, variable in re.findall(r"([^{]*)(\{[^}]*\})?", template):
        out.append(re.sub(r"([%.\-+?()\[\]^$*])", r"%\1", literal))
        if variable:
            segments = variable.strip("{}").partition("=")[2] or "*"
            parts = ["[^/]+" if s == "*" else ".+" if s == "**" else
                     re.sub(r"([%.\-+?()\[\]^$*])", r"%\1", s) for s in segments.split("/")]
            out.append("/".join(parts))
    return "^" + "".join(out) + "$"


def rules(services: Sequence[ServiceDescriptor]
          ) -> tuple[list[tuple[str, str, str, dict[str, str]]], dict[str, dict[str, str]]]:
    """(HTTP method, Lua path pattern, body message, query parameters) of every rule
    with a body, and the schema of every message a body may hold. The query
    parameters are the request's fields outside the path and the body, by JSON and
    proto name (to their proto name): a body holding one is told where it goes."""
    found: list[tuple[str, str, str, dict[str, str]]] = []
    schema: dict[str, dict[str, str]] = {}
    for service in services:
        for method in service.methods:
            rule = method.GetOptions().Extensions[annotations_pb2.http]
            if not rule.body:
                continue
            verb = rule.WhichOneof("pattern")
            message = method.input_type
            if rule.body != "*":
                body_type = message.fields_by_name[rule.body].message_type
                assert body_type is not None, f"{method.full_name}: body is not a message"
                message = body_type
            _schema(message, schema)
            template = getattr(rule, verb)
            bound = {rule.body, *(v.split(".")[0] for v in
                                  re.findall(r"\{([^}=]+)", template))}
            query = {name: field.name for field in method.input_type.fields
                     if field.name not in bound for name in (field.json_name, field.name)}
            found.append((verb.upper(), _path_pattern(template), message.full_name, query))
    return found, schema


def _lua(value: object) -> str:
    """A Lua literal for JSON-like `value` (strings, lists, dicts)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(k)}] = {_lua(v)}"
                               for k, v in sorted(value.items())) + "}"
    raise TypeError(type(value))


LUA = r"""
local RULES = %(rules)s
local SCHEMA = %(schema)s

-- The first key of `body` that is no field where it stands, and its dotted path.
local function unknown_key(body, root)
  local stack = {}
  local i = 1
  while true do
    i = body:find('[\"{}%%[%%],]', i)
    if i == nil then return nil end
    local c = body:sub(i, i)
    local top = stack[#stack]
    if c == '"' then
      local j = i + 1
      while true do
        local k = body:find('[\"\\]', j)
        if k == nil then return nil end
        if body:sub(k, k) == '\\' then j = k + 2 else j = k break end
      end
      local text = body:sub(i + 1, j - 1)
      i = j + 1
      if top and top.object and top.want_key then
        top.want_key = false
        top.key = text
        if top.type == "*" or top.type == "" then
          -- Free-form keys; or an object where a scalar belongs, which the
          -- transcoder refuses as a value of the wrong type.
          top.child = "*"
        else
          local fields = SCHEMA[top.type] or {}
          top.child = fields[text]
          if top.child == nil then
            local path = {}
            for _, level in ipairs(stack) do
              if level.key then path[#path + 1] = level.key end
            end
            return table.concat(path, "."), top.type
          end
        end
      end
    elseif c == "{" or c == "[" then
      local kind = root
      if top then kind = top.object and top.child or top.type end
      stack[#stack + 1] = {object = (c == "{"), type = kind or "", want_key = (c == "{")}
      i = i + 1
    elseif c == "}" or c == "]" then
      stack[#stack] = nil
      i = i + 1
    else  -- ","
      if top and top.object then top.want_key = true top.key = nil end
      i = i + 1
    end
  end
end

local function rule_of(method, path)
  for _, rule in ipairs(RULES) do
    if rule[1] == method and path:find(rule[2]) then return rule end
  end
  return nil
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local content_type = headers:get("content-type") or ""
  if content_type:sub(1, 16) ~= "application/json" then return end
  local path = (headers:get(":path") or ""):gsub("%%?.*$", "")
  local rule = rule_of(headers:get(":method"), path)
  if rule == nil then return end
  local body = handle:body()
  if body == nil then return end
  local field, message = unknown_key(body:getBytes(0, body:length()), rule[3])
  if field == nil then return end
  field = field:gsub("[^%%w_%%.]", "?")  -- a key is the client's text: keep the reply JSON
  local description = "no such field in " .. message
  local query = rule[4][field]
  if query ~= nil then
    description = "a query parameter, not a field of the body: ?" .. query .. "=..."
  end
  local reply = string.format(
    '{"code":3,"message":"invalid request: %%s: %%s","details":[' ..
    '{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"REQUEST_MALFORMED",' ..
    '"domain":"caas.dev","metadata":{}},' ..
    '{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[' ..
    '{"field":"%%s","description":"%%s","reason":"field.unknown"}]}]}',
    field, description, field, description)
  handle:respond({[":status"] = "400", ["content-type"] = "application/json"}, reply)
end
"""


def lua_filter(services: Sequence[ServiceDescriptor]) -> str:
    """The Lua source of the unknown-field check for `services`."""
    found, schema = rules(services)
    return LUA % {"rules": _lua([list(r) for r in found]), "schema": _lua(schema)}
