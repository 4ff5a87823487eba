"""The documents stay true: every setting is in the configuration reference (and
nothing that is not one), and every relative link in README.md and docs/ leads to a
file of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.core.settings import Settings
from tests.conftest import repo_root

DOCUMENTS = [repo_root() / "README.md", *sorted((repo_root() / "docs").rglob("*.md"))]


def test_the_configuration_reference_lists_every_setting() -> None:
    text = (repo_root() / "docs/configuration.md").read_text()
    documented = set(re.findall(r"^\| `(CAAS_[A-Z0-9_]+)`", text, flags=re.MULTILINE))
    settings = {f"CAAS_{name.upper()}" for name in Settings.model_fields}
    assert documented == settings


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(repo_root())))
def test_relative_links_lead_to_files(document: Path) -> None:
    text = re.sub(r"`[^`\n]*`", "", document.read_text())  # code spans hold no links
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        assert (document.parent / target).exists(), f"{document.name}: {target}"


def test_published_default_limits_match_the_code() -> None:
    guide = (repo_root() / "docs/guide.md").read_text()
    for name, plan in Settings().plans.items():
        row = next(line for line in guide.splitlines() if line.startswith(f"| {name}"))
        assert f"{plan.default.per_app:,}" in row and f"{plan.default.per_user:,}" in row
