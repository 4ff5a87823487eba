from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.cli import main
from services.core.settings import Plan, Settings, default_plans, load_settings


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


def test_secrets_from_files_beat_the_file_and_lose_to_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    token = "caaso_" + "s" * 43
    (secrets / "CAAS_OPERATOR_TOKEN").write_text(token + "\n")  # as `echo >` writes it
    (secrets / "caas_mongodb_url").write_text("mongodb://db.internal:27017/?replicaSet=rs0")
    (secrets / "CAAS_LISTEN").write_text("127.0.0.1:9000")
    config = tmp_path / "caas.toml"
    config.write_text('mongodb_url = "mongodb://from-the-file"\n')
    monkeypatch.setenv("CAAS_CONFIG_FILE", str(config))
    monkeypatch.setenv("CAAS_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("CAAS_LISTEN", "127.0.0.1:8000")
    settings = load_settings()
    assert settings.operator_token is not None
    assert settings.operator_token.get_secret_value() == token
    assert settings.mongodb_url == "mongodb://db.internal:27017/?replicaSet=rs0"
    assert settings.listen == "127.0.0.1:8000"
    (secrets / "CAAS_OPERATOR_TOKEN").write_text("caaso_short")
    with pytest.raises(ValidationError, match="operator_token"):
        load_settings()


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


SIGN_IN = "caas.auth.v1.AuthService/CreateSession"
REFRESH = "caas.auth.v1.AuthService/RefreshSession"


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings read from exactly `env` (no other CAAS_ variable)."""
    for name in list(os.environ):
        if name.upper().startswith("CAAS_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def limits(plans: dict[str, Plan]) -> dict[str, dict[str, tuple[int, int]]]:
    """Every plan's limits: {plan: {"default" or method: (per_app, per_user)}}."""
    return {name: {"default": (plan.default.per_app, plan.default.per_user),
                   **{m: (limit.per_app, limit.per_user) for m, limit in plan.methods.items()}}
            for name, plan in plans.items()}


DEFAULTS = limits(default_plans())


def changed(**plans: dict[str, tuple[int, int]]) -> dict[str, dict[str, tuple[int, int]]]:
    """The default limits with the given entries of the given plans changed."""
    out = {name: dict(entries) for name, entries in DEFAULTS.items()}
    for name, entries in plans.items():
        out.setdefault(name, {}).update(entries)
    return out


@pytest.mark.parametrize(("env", "expected"), [
    ({"CAAS_PLANS__FREE__DEFAULT__PER_USER": "1200"},
     changed(free={"default": (6_000, 1_200)})),
    ({"caas_plans__free__default__per_app": "9"}, changed(free={"default": (9, 600)})),
    ({"CAAS_PLANS__STANDARD__METHODS__caas.auth.v1.AuthService/CreateSession__PER_APP": "7"},
     changed(standard={SIGN_IN: (7, 120)})),
    ({"CAAS_PLANS__FREE__METHODS": json.dumps({SIGN_IN: {"per_user": 30},
                                               "x.v1.S/M": {"per_app": 1, "per_user": 2}})},
     changed(free={SIGN_IN: (1_200, 30), "x.v1.S/M": (1, 2)})),
    ({"CAAS_PLANS__ENTERPRISE__DEFAULT": '{"per_app": 5}',
      "CAAS_PLANS__ENTERPRISE__METHODS__caas.auth.v1.AuthService/RefreshSession__PER_USER": "4"},
     changed(enterprise={"default": (5, 3_000), REFRESH: (120_000, 4)})),
    # A new plan, then one of its limits changed by a narrower variable.
    ({"CAAS_PLANS__GOLD": '{"default": {"per_app": 50, "per_user": 5}}',
      "CAAS_PLANS__GOLD__DEFAULT__PER_USER": "6"},
     changed(gold={"default": (50, 6)})),
])
def test_plan_variables_change_one_part_and_keep_the_rest(
        env: dict[str, str], expected: dict[str, dict[str, tuple[int, int]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert limits(settings_from(env, monkeypatch).plans) == expected


def test_a_plan_variable_sets_its_flood_control(monkeypatch: pytest.MonkeyPatch) -> None:
    plans = settings_from({"CAAS_PLANS__FREE__SENDS_PER_CONVERSATION": "7"}, monkeypatch).plans
    assert (plans["free"].sends_per_conversation, plans["standard"].sends_per_conversation,
            limits(plans)["free"]["default"]) == (7, 120, (6_000, 600))


def test_plan_variables_change_the_files_table_which_replaces_the_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "caas.toml"
    config.write_text("[plans.free.default]\nper_app = 100\nper_user = 10\n"
                      "[plans.tiny.default]\nper_app = 5\nper_user = 3\n")
    file_only = {"free": {"default": (100, 10)}, "tiny": {"default": (5, 3)}}
    assert limits(settings_from({"CAAS_CONFIG_FILE": str(config)}, monkeypatch).plans) == file_only
    both = settings_from({"CAAS_CONFIG_FILE": str(config),
                          "CAAS_PLANS__TINY__DEFAULT__PER_USER": "2"}, monkeypatch)
    assert limits(both.plans) == {"free": {"default": (100, 10)}, "tiny": {"default": (5, 2)}}


def test_a_whole_table_in_caas_plans_replaces_the_defaults(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from({
        "CAAS_PLANS": '{"solo": {"default": {"per_app": 5, "per_user": 2}}}',
        "CAAS_PLANS__SOLO__DEFAULT__PER_APP": "4", "CAAS_DEFAULT_PLAN": "solo"}, monkeypatch)
    assert limits(settings.plans) == {"solo": {"default": (4, 2)}}


# Variables that cannot say what they mean: refused, naming the variable (or the
# setting) and, where a form cannot work, the one that does.
@pytest.mark.parametrize(("env", "where", "says"), [
    # Shells and Kubernetes refuse '.' and '/' in names; a mangled method name is no name.
    ({"CAAS_PLANS__FREE__METHODS__CAAS_AUTH_V1_AUTHSERVICE_CREATESESSION__PER_USER": "30"},
     "CAAS_PLANS__FREE__METHODS__CAAS_AUTH_V1_AUTHSERVICE_CREATESESSION__PER_USER",
     "CAAS_PLANS__FREE__METHODS='{\"caas.auth.v1.AuthService/CreateSession\""),
    ({f"CAAS_PLANS__FREE__METHODS__{SIGN_IN}": '{"per_user": 30}'},
     f"CAAS_PLANS__FREE__METHODS__{SIGN_IN}", "__PER_APP or __PER_USER"),
    ({"CAAS_PLANS__FREE__DEFAULTS__PER_USER": "3"}, "CAAS_PLANS__FREE__DEFAULTS__PER_USER",
     "the forms are CAAS_PLANS__<plan>__DEFAULT__PER_APP"),
    ({"CAAS_PLANS__FREE__METHODS": "{nope"}, "CAAS_PLANS__FREE__METHODS", "not valid JSON"),
    ({"CAAS_PLANS__FREE": "[1]"}, "CAAS_PLANS__FREE", "must be a JSON object"),
    ({"CAAS_PLANS__FREE__DEFAULT__PER_MINUTE": "3"}, "plans.free.default.per_minute",
     "Extra inputs are not permitted"),
    ({"CAAS_PLANS__FREE__DEFAULT__PER_USER": "many"}, "plans.free.default.per_user",
     "valid integer"),
    ({"CAAS_PLANS__FREE__DEFAULT__PER_USER": "0"}, "plans.free.default.per_user",
     "greater than 0"),
    ({"CAAS_PLANS__GOLD__DEFAULT__PER_USER": "5"}, "plans.gold.default.per_app", "required"),
])
def test_plan_variables_that_cannot_work_are_refused_with_the_right_form(
        env: dict[str, str], where: str, says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError) as caught:
        settings_from(env, monkeypatch)
    (error,) = caught.value.errors(include_input=False)
    assert ".".join(str(part) for part in error["loc"]) == where
    assert says in error["msg"]


def test_a_refused_plan_variable_stops_caas_with_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    variable = "CAAS_PLANS__FREE__METHODS__AUTHSERVICE_CREATESESSION__PER_APP"
    for name in list(os.environ):
        if name.upper().startswith("CAAS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv(variable, "5")
    assert main(["serve"]) == 2
    heading, problem = capsys.readouterr().err.splitlines()
    assert heading == "caas: bad settings:"
    assert problem.startswith(f"  {variable}: ") and "CAAS_PLANS__FREE__METHODS='{" in problem
