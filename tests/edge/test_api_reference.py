"""The Markdown API reference (docs/api/): fresh, complete, and its links resolve."""

from __future__ import annotations

import re

import pytest
from caas.errors.v1 import errors_pb2
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import descriptor_pb2

from services.core.errors import COMMON_REASONS
from services.edge.api_reference import anchor, api_reference
from services.server import contract_services
from tests.conftest import repo_root

SERVICES = contract_services()
METHODS = [m for s in SERVICES for m in s.methods]
DOCS = repo_root() / "docs/api"


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    files = descriptor_pb2.FileDescriptorSet.FromString(
        (repo_root() / "gen/caas.binpb").read_bytes())
    return api_reference(files, [s.full_name for s in SERVICES])


def page_of(pages: dict[str, str], method: pb_descriptor.MethodDescriptor) -> str:
    return pages[re.sub(r"(?<!^)([A-Z])", r"_\1", method.containing_service.name).lower()
                 + ".md"]


def section(page: str, rpc: str) -> str:
    """The text of one RPC's section of a service page."""
    match = re.search(rf"^## {rpc}\n(.*?)(?=^## )", page, flags=re.S | re.M)
    assert match, f"no section for {rpc}"
    return match.group(1)


def test_docs_api_is_fresh(pages: dict[str, str]) -> None:
    """What scripts/gen_protos.py wrote is what the contract gives now."""
    on_disk = {p.name: p.read_text() for p in DOCS.glob("*.md")}
    assert on_disk == pages


def test_an_index_and_a_page_per_service(pages: dict[str, str]) -> None:
    assert sorted(pages) == sorted(["README.md", "apps_service.md", "auth_service.md",
                                    "users_service.md", "conversations_service.md",
                                    "messages_service.md", "realtime_service.md",
                                    "media_service.md", "search_service.md",
                                    "webhooks_service.md", "moderation_service.md",
                                    "audit_service.md", "compliance_service.md",
                                    "accounts_service.md", "organizations_service.md",
                                    "analytics_service.md", "billing_service.md",
                                    "e2ee_service.md", "calls_service.md",
                                    "push_service.md"])
    index = pages["README.md"]
    for heading in ("## How to call", "## Credentials", "### Common errors",
                    "### Every reason"):
        assert heading in index
    for reason in COMMON_REASONS:
        assert f"| `{reason}` |" in index
    assert '"@type": "type.googleapis.com/google.rpc.ErrorInfo"' in index


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name)
def test_every_rpc_says_how_to_call_it(pages: dict[str, str],
                                       method: pb_descriptor.MethodDescriptor) -> None:
    text = section(page_of(pages, method), method.name)
    assert f"- **gRPC:** `{method.containing_service.full_name}/{method.name}`" in text
    assert "- **HTTP:** `" in text
    assert "- **Who may call:** " in text
    assert f"**Request** `{method.input_type.name}`" in text
    # Every request field is placed: path, body or query.
    for field in method.input_type.fields:
        row = next(line for line in text.splitlines() if f"| `{field.name}` |" in line)
        assert re.search(r"\b(path|body|query)\b", row.split("|")[4]), row
    for reason in method.GetOptions().Extensions[errors_pb2.errors].reasons:
        assert f"| `{errors_pb2.ErrorReason.Name(reason).removeprefix('ERROR_REASON_')}` |" \
            in text


def test_create_message_says_where_its_fields_go(pages: dict[str, str]) -> None:
    text = section(pages["messages_service.md"], "CreateMessage")
    assert ("- **HTTP:** `POST /v1/apps/{app}/conversations/{conversation}/messages"
            "?request_id=…`") in text
    assert "path: `parent` is the path's `apps/{app}/conversations/{conversation}`" in text
    assert "body: the `message` field, a [Message](#message) object" in text
    assert "query: `request_id` is a query parameter: `?request_id=…`" in text
    assert "| `requestId` | `request_id` | string | required, query |" in text
    assert "| `THREAD_ROOT_INVALID` | INVALID_ARGUMENT | 400 |" in text


def test_subscribe_documents_the_json_stream(pages: dict[str, str]) -> None:
    text = section(pages["realtime_service.md"], "Subscribe")
    assert "(server streaming)" in text
    assert "one JSON array" in text and '{"error": <google.rpc.Status>}' in text
    assert "body: a JSON object with the other request fields (`resumeToken`, `deviceId`)" \
        in text


def test_links_resolve(pages: dict[str, str]) -> None:
    anchors = {name: {anchor(line.lstrip("#").strip()) for line in text.splitlines()
                      if line.startswith("#")} for name, text in pages.items()}
    for name, page in pages.items():
        text = re.sub(r"`[^`\n]*`", "", page)  # code spans hold no links
        for target in re.findall(r"\]\(([^)]+)\)", text):
            if target.startswith(("https://", "http://")):
                continue
            if target.startswith("../../"):
                assert (DOCS / target).resolve().exists(), (name, target)
                continue
            file, _, fragment = target.partition("#")
            file = file or name
            assert file in pages, (name, target)
            assert not fragment or fragment in anchors[file], (name, target)
