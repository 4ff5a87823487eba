"""The edge guard: a Lua filter, first in Envoy's chain, so that every answer Envoy
gives is a `google.rpc.Status`, and malformed requests stop at the edge.

On the way in it sorts each request by its content type — gRPC, gRPC-Web, or
plain HTTP (JSON) — and refuses what the server must never see: control characters
or broken percent-escapes in the path, gRPC calls that are not `POST
/<package.Service>/<Method>`, an unknown `grpc-encoding` (UNIMPLEMENTED, as the gRPC
spec says) or a malformed `grpc-timeout`. It marks plain HTTP requests with
`caas-transcoded: json` (a client's own value is dropped), so the gateway can end a
JSON stream that fails after it started with a final `{"error": Status}` item.

On the way out it rewrites what Envoy itself generated — the transcoder's text/plain
parse errors, the buffer filter's 413, the gRPC-Web filter's decoding errors, the
router's upstream failures, 404s of the route table — into the form its caller
reads: a JSON `google.rpc.Status` body with the matching HTTP status (field
violations taken from the transcoder's message where it names a field), or for
gRPC and gRPC-Web a trailers-only answer whose `grpc-status` names a client error
and whose `grpc-status-details-bin` carries the ErrorInfo. Answers of the server
(JSON bodies, gRPC statuses with details) pass untouched.
"""

from __future__ import annotations

import json

import grpc

from services.gateway.gateway import TRANSCODED_HEADER
from services.gateway.status import ERROR_DOMAIN

# What an Envoy-made HTTP error means, for a JSON caller: (gRPC code, reason).
HTTP_ERRORS: dict[int, tuple[grpc.StatusCode, str]] = {
    400: (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_MALFORMED"),
    404: (grpc.StatusCode.NOT_FOUND, "METHOD_NOT_FOUND"),
    408: (grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
    413: (grpc.StatusCode.RESOURCE_EXHAUSTED, "REQUEST_TOO_LARGE"),
    431: (grpc.StatusCode.RESOURCE_EXHAUSTED, "REQUEST_TOO_LARGE"),
    500: (grpc.StatusCode.INTERNAL, "INTERNAL"),
    502: (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
    503: (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
    504: (grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
}
# The HTTP status of a gRPC code, as Envoy's transcoder maps them (google.rpc.Code).
GRPC_TO_HTTP = {
    grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500, grpc.StatusCode.UNAUTHENTICATED: 401,
}
# Envoy-made gRPC errors (no details): (code, message start) → (code, reason).
GRPC_ERRORS: list[tuple[int, str, grpc.StatusCode, str]] = [
    # The buffer filter's 413, which Envoy maps to UNKNOWN for gRPC callers.
    (2, "Payload Too Large", grpc.StatusCode.RESOURCE_EXHAUSTED, "REQUEST_TOO_LARGE"),
    (2, "Request Header Fields Too Large", grpc.StatusCode.RESOURCE_EXHAUSTED,
     "REQUEST_TOO_LARGE"),
    # The gRPC-Web filter's 400s (bad base64, bad framing), mapped to INTERNAL.
    (13, "Bad gRPC-web request", grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_MALFORMED"),
    (12, "", grpc.StatusCode.UNIMPLEMENTED, "METHOD_NOT_FOUND"),
    (14, "", grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
    (4, "", grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
]
ENCODINGS = ("identity", "gzip", "deflate")  # what the gRPC server decodes


def _lua(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


LUA = r"""
local DOMAIN = %(domain)s
local HEADER = %(header)s
local HTTP_ERRORS = %(http_errors)s
local GRPC_TO_HTTP = %(grpc_to_http)s
local GRPC_ERRORS = %(grpc_errors)s
local ENCODINGS = %(encodings)s
local RETRY_SECONDS = 1

-- protobuf wire format, for grpc-status-details-bin
local function varint(n)
  local out = {}
  repeat
    local b = n %% 128
    n = (n - b) / 128
    if n > 0 then b = b + 128 end
    out[#out + 1] = string.char(b)
  until n == 0
  return table.concat(out)
end
local function bytes_field(number, value)
  return string.char(number * 8 + 2) .. varint(#value) .. value
end
local function any(type_name, value)
  return bytes_field(1, "type.googleapis.com/" .. type_name) .. bytes_field(2, value)
end

local function status_proto(code, message, reason)
  local out = string.char(8) .. varint(code) .. bytes_field(2, message)
  out = out .. bytes_field(3, any("google.rpc.ErrorInfo",
                                  bytes_field(1, reason) .. bytes_field(2, DOMAIN)))
  if code == 14 then
    out = out .. bytes_field(3, any("google.rpc.RetryInfo",
                                    bytes_field(1, string.char(8) .. varint(RETRY_SECONDS))))
  end
  return out
end

-- Printable ASCII only: the text may hold the client's bytes.
local function clean(text)
  text = (text or ""):match("^[^\n]*") or ""
  return (text:gsub("[^\32-\126]", "?"):gsub("%%s+$", ""))
end

local function json_string(text)
  return '"' .. text:gsub('[\\"]', "\\%%0") .. '"'
end

-- `violation`: {field path, description, reason} of a BadRequest, or nil.
local function status_json(code, message, reason, violation)
  local details = '{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":'
    .. json_string(reason) .. ',"domain":' .. json_string(DOMAIN) .. ',"metadata":{}}'
  if violation ~= nil then
    details = details .. ',{"@type":"type.googleapis.com/google.rpc.BadRequest",'
      .. '"fieldViolations":[{"field":' .. json_string(violation[1]) .. ',"description":'
      .. json_string(violation[2]) .. ',"reason":' .. json_string(violation[3]) .. '}]}'
  end
  if code == 14 then
    details = details .. ',{"@type":"type.googleapis.com/google.rpc.RetryInfo",'
      .. '"retryDelay":"' .. RETRY_SECONDS .. 's"}'
  end
  return '{"code":' .. code .. ',"message":' .. json_string(message) .. ',"details":['
    .. details .. ']}'
end

-- The field violation a transcoder message describes: `conversation.kind: invalid
-- value…`, `: Proto field is not repeating…` (the whole body), or an unknown query
-- parameter, `Could not find field "foo" in the type …`.
local function violation_of(message)
  local unknown = message:match('^Could not find field "([^"]*)"')
  if unknown then return {unknown, "no such query parameter", "field.unknown"} end
  local path, description = message:match("^([%%w_%%.%%[%%]]*): (.*)$")
  if path then return {path, description, "field.malformed"} end
  return nil
end

local function grpc_message(text)
  return (text:gsub("[^\32-\36\38-\126]", function(c)
    return string.format("%%%%%%02X", c:byte())
  end))
end

local function grpc_reply(handle, code, message, reason, kind)
  local content_type = "application/grpc"
  if kind == "grpc-web" then content_type = "application/grpc-web+proto" end
  handle:respond({
    [":status"] = "200", ["content-type"] = content_type,
    ["grpc-status"] = tostring(code), ["grpc-message"] = grpc_message(message),
    ["grpc-status-details-bin"] = handle:base64Escape(status_proto(code, message, reason)),
  }, "")
end

local function http_reply(handle, status, code, message, reason)
  handle:respond({[":status"] = tostring(status), ["content-type"] = "application/json"},
                 status_json(code, message, reason, nil))
end

local function refuse(handle, kind, code, message, reason)
  if kind == "http" then
    http_reply(handle, GRPC_TO_HTTP[code] or 400, code, message, reason)
  else
    grpc_reply(handle, code, message, reason, kind)
  end
end

local function kind_of(content_type)
  if content_type:sub(1, 20) == "application/grpc-web" then return "grpc-web" end
  if content_type:sub(1, 16) == "application/grpc" then return "grpc" end
  return "http"
end

-- What is wrong with a gRPC request body, if anything: it must be exactly one
-- length-prefixed message, compressed only with a grpc-encoding.
local function frame_problem(body, compressed)
  local size = body and body:length() or 0
  if size < 5 then return "a gRPC request body is one length-prefixed message" end
  local head = body:getBytes(0, 5)
  local flag, b1, b2, b3, b4 = head:byte(1, 5)
  if flag > 1 or (flag == 1 and not compressed) then
    return "the message's compressed flag does not match grpc-encoding"
  end
  if ((b1 * 256 + b2) * 256 + b3) * 256 + b4 ~= size - 5 then
    return "a gRPC request body is one length-prefixed message"
  end
  return nil
end

function envoy_on_request(handle)
  local headers = handle:headers()
  headers:remove(HEADER)
  local kind = kind_of(headers:get("content-type") or "")
  handle:streamInfo():dynamicMetadata():set("caas.edge", "kind", kind)
  local path = (headers:get(":path") or ""):match("^[^?]*")
  if path:find("[%%c]") or path:find("%%%%[01]%%x") or path:find("%%%%7[Ff]")
      or path:find("%%%%%%X") or path:find("%%%%%%x%%X") or path:find("%%%%$")
      or path:find("%%%%%%x$") then
    return refuse(handle, kind, 3, "the request path holds a control character or a "
                  .. "broken percent-escape", "REQUEST_MALFORMED")
  end
  local timeout = headers:get("grpc-timeout")
  if timeout ~= nil and not timeout:match("^%%d%%d?%%d?%%d?%%d?%%d?%%d?%%d?[HMSmun]$") then
    return refuse(handle, kind, 3, "grpc-timeout must be 1 to 8 digits and a unit "
                  .. "(H, M, S, m, u, n)", "REQUEST_MALFORMED")
  end
  if kind == "http" then
    if headers:get(":method") == "OPTIONS" and (headers:get("origin") == nil
        or headers:get("access-control-request-method") == nil) then
      return http_reply(handle, 404, 5, "OPTIONS is answered only to CORS preflights "
                        .. "(Origin and Access-Control-Request-Method headers)",
                        "METHOD_NOT_FOUND")
    end
    headers:add(HEADER, "json")
    return
  end
  if headers:get(":method") ~= "POST" then
    return refuse(handle, kind, 12, "gRPC calls are POST requests", "METHOD_NOT_FOUND")
  end
  if not path:match("^/[%%a_][%%w_%%.]*/[%%a_][%%w_]*$") then
    return refuse(handle, kind, 12, "a gRPC path is /<package.Service>/<Method>",
                  "METHOD_NOT_FOUND")
  end
  local encoding = headers:get("grpc-encoding")
  if encoding ~= nil and not ENCODINGS[encoding] then
    return refuse(handle, kind, 12, "grpc-encoding " .. clean(encoding) .. " is not "
                  .. "supported (identity, gzip, deflate)", "REQUEST_MALFORMED")
  end
  -- Every CAAS request is one message; reflection (a bidirectional stream) is not
  -- buffered, and gRPC-Web bodies are decoded by the next filters.
  if kind == "grpc" and not path:find("^/grpc%%.reflection%%.") then
    local compressed = encoding ~= nil and encoding ~= "identity"
    local problem = frame_problem(handle:body(), compressed)
    if problem then
      return refuse(handle, kind, 3, problem, "REQUEST_MALFORMED")
    end
  end
end

local function rewrite_grpc(handle, headers, kind)
  local status = tonumber(headers:get("grpc-status") or "")
  if status == nil or status == 0 or headers:get("grpc-status-details-bin") ~= nil then
    return
  end
  local message = clean(headers:get("grpc-message"))
  for _, rule in ipairs(GRPC_ERRORS) do
    if rule[1] == status and message:sub(1, #rule[2]) == rule[2] then
      headers:replace(":status", "200")
      headers:replace("grpc-status", tostring(rule[3]))
      headers:replace("grpc-message", grpc_message(message))
      headers:replace("grpc-status-details-bin",
                      handle:base64Escape(status_proto(rule[3], message, rule[4])))
      return
    end
  end
end

local function rewrite_http(handle, headers)
  local status = tonumber(headers:get(":status") or "")
  if status == nil or status < 400 then return end
  if (headers:get("content-type") or ""):sub(1, 16) == "application/json" then return end
  local mapped = HTTP_ERRORS[status] or {13, "INTERNAL"}
  if status >= 400 and status < 500 and HTTP_ERRORS[status] == nil then
    mapped = {3, "REQUEST_MALFORMED"}
  end
  local body = handle:body(true)
  local text = clean(body:getBytes(0, body:length()))
  if text == "" then text = "HTTP " .. status end
  local violation = nil
  if status == 400 then violation = violation_of(text) end
  local json = status_json(mapped[1], text, mapped[2], violation)
  body:setBytes(json)
  headers = handle:headers()  -- the earlier handle is gone once the body was read
  headers:replace("content-type", "application/json")
  headers:replace("content-length", tostring(#json))
end

function envoy_on_response(handle)
  local headers = handle:headers()
  local metadata = handle:streamInfo():dynamicMetadata():get("caas.edge")
  local kind = (metadata and metadata["kind"]) or "http"
  if kind == "http" then
    rewrite_http(handle, headers)
  else
    rewrite_grpc(handle, headers, kind)
  end
end
"""


def guard_filter() -> str:
    """The Lua source of the edge guard."""
    return LUA % {
        "domain": _lua(ERROR_DOMAIN),
        "header": _lua(TRANSCODED_HEADER),
        "http_errors": _lua({status: [code.value[0], reason]
                             for status, (code, reason) in HTTP_ERRORS.items()}),
        "grpc_to_http": _lua({code.value[0]: status for code, status in GRPC_TO_HTTP.items()}),
        "grpc_errors": _lua([[status, start, code.value[0], reason]
                             for status, start, code, reason in GRPC_ERRORS]),
        "encodings": _lua(dict.fromkeys(ENCODINGS, True)),
    }
