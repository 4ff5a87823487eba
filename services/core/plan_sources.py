"""Rate-limit plans from the environment, merged into the plans in force.

The plans in force are the settings file's `plans` table if it has one (or a
`CAAS_PLANS` JSON object), else the published defaults. Every `CAAS_PLANS__…` variable
changes a part of them and keeps the rest: one limit of one plan, one plan's default,
its method overrides (each merged field by field), or a whole plan:

    CAAS_PLANS__FREE__DEFAULT__PER_USER=1200
    CAAS_PLANS__FREE__DEFAULT='{"per_app": 9000, "per_user": 900}'
    CAAS_PLANS__FREE__METHODS='{"caas.auth.v1.AuthService/CreateSession": {"per_user": 30}}'
    CAAS_PLANS__FREE__METHODS__caas.auth.v1.AuthService/CreateSession__PER_USER=30
    CAAS_PLANS__GOLD='{"default": {"per_app": 100000, "per_user": 2000}}'

Names are read without case, as every `CAAS_` variable's (plan names in lower case),
except a method name, kept as written. Shells (`export`) and Kubernetes refuse the `.`
and `/` of a method name in a variable's name; `env` and Docker (`-e`) pass them. Where
they are refused, the `…__METHODS` JSON form says the same.

A variable that cannot be read is refused with a `pydantic.ValidationError` naming it
(the `caas` command prints it as one line).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

FIELD = "plans"
VARIABLE = "CAAS_PLANS"
DELIMITER = "__"
# A full gRPC method name: package.Service/Method.
METHOD_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+/[A-Za-z_]\w*")
EXAMPLE_METHOD = "caas.auth.v1.AuthService/CreateSession"


def refusal(variable: str, why: str) -> ValidationError:
    """The error that refuses `variable`, as pydantic reports a bad setting."""
    return ValidationError.from_exception_data("Settings", [InitErrorDetails(
        type=PydanticCustomError("plans_variable", "{why}", {"why": why}),
        loc=(variable,), input=None)])


def merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `changes` merged in, dictionaries key by key, at every depth."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _json_object(variable: str, value: str) -> dict[str, Any]:
    try:
        decoded = json.loads(value)
    except ValueError as error:
        raise refusal(variable, f"not valid JSON ({error})") from None
    if not isinstance(decoded, dict):
        raise refusal(variable, "must be a JSON object")
    return decoded


def _methods_form(plan: str) -> str:
    return (f"{VARIABLE}__{plan.upper()}__METHODS="
            f"'{{\"{EXAMPLE_METHOD}\": {{\"per_app\": …, \"per_user\": …}}}}'")


class Environment(EnvSettingsSource):
    """The environment as pydantic-settings reads it, but for the plans (`PlanVariables`
    reads those)."""

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any,
                            value_is_complex: bool) -> Any:
        if field_name == FIELD:
            return None
        return super().prepare_field_value(field_name, field, value, value_is_complex)


class PlanVariables(PydanticBaseSettingsSource):
    """`CAAS_PLANS` and the `CAAS_PLANS__…` variables of `environ`, as one partial plans
    table (the forms are in the module's docstring). Put it where the environment's
    priority is."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ
        self.whole_table = False  # whether CAAS_PLANS gave one

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # not used: __call__ reads every variable at once

    def __call__(self) -> dict[str, Any]:
        table: dict[str, Any] = {}
        parts: list[tuple[list[str], str, str]] = []
        prefix = (VARIABLE + DELIMITER).lower()
        for variable, value in self._environ.items():
            if variable.lower() == VARIABLE.lower():
                table = _json_object(variable, value)
                self.whole_table = True
            elif variable.lower().startswith(prefix):
                parts.append((variable[len(prefix):].split(DELIMITER), variable, value))
        # The wider a variable, the earlier it goes: a narrower one changes part of it.
        for path, variable, value in sorted(parts, key=lambda part: len(part[0])):
            table = merge(table, self._change(path, variable, value))
        return {FIELD: table} if table or self.whole_table else {}

    @staticmethod
    def _change(path: list[str], variable: str, value: str) -> dict[str, Any]:
        """The part of the table one variable sets (`path`: its name's parts after
        `CAAS_PLANS__`)."""
        plan, *rest = path
        plan = plan.lower()
        keys = [key.lower() for key in rest]
        if not plan:
            raise refusal(variable, f"names no plan: {VARIABLE}__<plan>__…")
        if keys[:1] == ["methods"] and len(keys) > 1:
            method, *fields = rest[1:]
            if not METHOD_NAME.fullmatch(method):
                raise refusal(variable, (
                    f"{method!r} is not a full method name like {EXAMPLE_METHOD}; where a "
                    f"variable's name cannot hold one, set {_methods_form(plan)}"))
            if len(fields) != 1:
                raise refusal(variable, (
                    f"set one limit of the method: …__METHODS__{method}__PER_APP or "
                    f"__PER_USER, or all of them with {_methods_form(plan)}"))
            return {plan: {"methods": {method: {fields[0].lower(): value}}}}
        if len(keys) == 0 or keys in (["default"], ["methods"]):
            change: Any = _json_object(variable, value)
        elif (len(keys) == 2 and keys[0] == "default") or keys == ["sends_per_conversation"]:
            change = value
        else:
            raise refusal(variable, (
                f"not a plan setting; the forms are {VARIABLE}__<plan>__DEFAULT__PER_APP "
                f"(or __PER_USER), {VARIABLE}__<plan>__SENDS_PER_CONVERSATION, "
                f"{VARIABLE}__<plan>__DEFAULT, {VARIABLE}__<plan>__METHODS "
                f"and {VARIABLE}__<plan> (JSON objects)"))
        for key in reversed(keys):
            change = {key: change}
        return {plan: change}


class PublishedPlans(PydanticBaseSettingsSource):
    """The published plans, `defaults()`, unless a source gives a whole table (the
    settings file's, `CAAS_PLANS`, the caller's): put it last, so that `PlanVariables`
    changes parts of whichever table is in force."""

    def __init__(self, settings_cls: type[BaseSettings], variables: PlanVariables,
                 defaults: Callable[[], dict[str, Any]]) -> None:
        super().__init__(settings_cls)
        self._variables = variables
        self._defaults = defaults

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # not used

    def __call__(self) -> dict[str, Any]:
        others = [data for name, data in self.settings_sources_data.items()
                  if name != type(self._variables).__name__]
        if self._variables.whole_table or any(FIELD in data for data in others):
            return {}
        return {FIELD: self._defaults()}
