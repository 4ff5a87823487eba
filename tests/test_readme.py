"""The README documents what the code does."""

from __future__ import annotations

from services.core.settings import Settings
from tests.conftest import repo_root


def test_every_setting_is_documented() -> None:
    readme = (repo_root() / "README.md").read_text()
    missing = [f"CAAS_{name.upper()}" for name in Settings.model_fields
               if f"`CAAS_{name.upper()}`" not in readme]
    assert missing == []


def test_published_default_limits_match_the_code() -> None:
    readme = (repo_root() / "README.md").read_text()
    plans = Settings().plans
    for name, plan in plans.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| {name}"))
        assert f"{plan.default.per_app:,}" in row and f"{plan.default.per_user:,}" in row
