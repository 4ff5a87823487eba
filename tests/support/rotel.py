"""A real OpenTelemetry collector for trace tests: rotel (PyPI `rotel`), taking OTLP over
gRPC and printing every span it receives (its debug log, detailed), which the test
parses back into spans. Nothing is forwarded (the blackhole exporter)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import rotel

from tests.support.processes import Process, free_ports, tcp_open, wait_until

EXECUTABLE = Path(rotel.__file__).parent / "rotel-agent"
_FIELD = re.compile(r"^\s*(Trace ID|Parent ID|ID|Name|Kind|Status code)\s*:\s?(.*)$")
_ATTRIBUTE = re.compile(r"^\s*-> ([^:]+): \w+\((.*)\)$")


@dataclass
class Span:
    trace_id: str
    span_id: str = ""
    parent_id: str = ""
    name: str = ""
    kind: str = ""  # SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL
    status: str = ""  # UNSET, OK, ERROR
    attributes: dict[str, str] = field(default_factory=dict)  # values as printed
    service: str = ""  # the resource's service.name


@dataclass
class Collector:
    process: Process
    endpoint: str  # for OTEL_EXPORTER_OTLP_ENDPOINT

    def spans(self) -> list[Span]:
        """Every span received so far."""
        return parse(self.process.lines)

    def stop(self) -> None:
        self.process.stop()


def start_rotel(workdir: Path) -> Collector:
    """rotel on free ports of 127.0.0.1 (OTLP/gRPC and OTLP/HTTP), batching off so that
    spans are printed as they arrive."""
    workdir.mkdir(parents=True, exist_ok=True)
    grpc_port, http_port = free_ports(2)
    process = Process([
        str(EXECUTABLE), "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
        "--otlp-http-endpoint", f"127.0.0.1:{http_port}", "--exporter", "blackhole",
        "--debug-log", "traces", "--debug-log-verbosity", "detailed", "--disable-batching",
        "--pid-file", str(workdir / "rotel.pid"), "--log-file", str(workdir / "rotel.log")],
        name="rotel")
    wait_until(lambda: tcp_open(grpc_port) or not process.alive(), 30, "rotel")
    if not process.alive():
        raise RuntimeError("rotel exited:\n" + "\n".join(process.lines))
    return Collector(process, f"http://127.0.0.1:{grpc_port}")


def parse(lines: list[str]) -> list[Span]:
    """The spans of rotel's detailed debug log (`Span #n` blocks, after the
    `service.name` of their resource)."""
    spans: list[Span] = []
    service = ""
    current: Span | None = None
    in_attributes = False
    for line in list(lines):
        stripped = line.strip()
        if stripped.startswith("ResourceSpans #"):
            current, in_attributes = None, False
            continue
        if stripped.startswith("-> service.name: ") and current is None:
            service = _value(stripped)
            continue
        if stripped.startswith("Span #"):
            current = Span(trace_id="", service=service)
            spans.append(current)
            in_attributes = False
            continue
        if current is None:
            continue
        if stripped == "Attributes:":
            in_attributes = True
            continue
        attribute = _ATTRIBUTE.match(line)
        if in_attributes and attribute:
            current.attributes[attribute.group(1)] = attribute.group(2)
            continue
        in_attributes = False
        found = _FIELD.match(line)
        if found is None:
            continue
        key, value = found.group(1), found.group(2).strip()
        if key == "Trace ID":
            current.trace_id = value
        elif key == "Parent ID":
            current.parent_id = value
        elif key == "ID":
            current.span_id = value
        elif key == "Name":
            current.name = value
        elif key == "Kind":
            current.kind = value.removeprefix("SPAN_KIND_")
        else:
            current.status = value.removeprefix("STATUS_CODE_")
    return spans


def _value(attribute_line: str) -> str:
    found = _ATTRIBUTE.match(attribute_line)
    return found.group(2) if found else ""
