from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.core.settings import Settings, load_settings


def test_defaults_need_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAAS_CONFIG_FILE", raising=False)
    settings = load_settings()
    assert settings.store == "sqlite" and settings.redis_url is None
    assert settings.plans["free"].default.per_user == 600


def test_environment_beats_file_beats_defaults(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "caas.toml"
    config.write_text('listen = "127.0.0.1:7000"\naccess_token_ttl = 60\n'
                      '[plans.gold.default]\nper_app = 9\nper_user = 3\n')
    monkeypatch.setenv("CAAS_CONFIG_FILE", str(config))
    monkeypatch.setenv("CAAS_LISTEN", "127.0.0.1:8000")
    settings = load_settings(default_plan="gold")
    assert settings.listen == "127.0.0.1:8000"
    assert settings.access_token_ttl == timedelta(seconds=60)
    assert settings.plans["gold"].limit_for("any/Method").per_user == 3


@pytest.mark.parametrize(("field", "value"), [
    ("operator_token", "not-prefixed-" + "x" * 40),
    ("operator_token", "caaso_short"),
    ("default_plan", "missing"),
    ("store", "postgres"),
    ("max_request_bytes", 0),
    ("webhook_timeout", 0),
    ("webhook_retry_delays", [10, -1]),
    ("webhook_retry_delays", [1] * 51),
    ("max_webhooks_per_app", 0),
])
def test_bad_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{field: value})  # type: ignore[arg-type]
    assert field in str(caught.value)


@pytest.mark.parametrize(("raw", "seconds"), [("30", 30), ("0.5", 0.5), ("PT2M", 120)])
def test_durations_from_the_environment(raw: str, seconds: float,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAAS_SHUTDOWN_GRACE", raw)
    assert load_settings().shutdown_grace == timedelta(seconds=seconds)
