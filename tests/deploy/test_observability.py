"""What deploy/ gives operators to watch CAAS holds: the Prometheus rules and config pass
promtool (syntax, and unit tests of what fires), every metric a rule or the Grafana
dashboard names is one a running server exports, a real Prometheus scraping a real server
evaluates every rule and every dashboard query without error, and the Alloy pipeline to
Loki is well formed, keeps its labels bounded, and reads the server's real log lines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_CONFIG, repo_root
from tests.deploy import alloy_syntax
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer
from tests.support.processes import Process, free_port
from tests.support.servers import CaasServer, start_caas
from tests.support.waiting import eventually

DEPLOY = repo_root() / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULE_FILES = [PROMETHEUS / "recording.yml", PROMETHEUS / "alerts.yml"]
DASHBOARD = DEPLOY / "grafana" / "caas.json"
ALLOY = DEPLOY / "loki" / "config.alloy"

# Series Prometheus makes itself for each target, not the server.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum",
                                                               "_created"),
             "summary": ("_count", "_sum", "_created"), "gaugehistogram": ("_bucket",
                                                                           "_gcount", "_gsum")}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "bool", "offset", "inf", "nan"}
# High-cardinality fields of the server's log lines: never stream labels.
UNBOUNDED = {"trace_id", "span_id", "request_id", "app_id", "app", "user", "user_id",
             "conversation", "method", "code", "message", "pid", "time", "duration_ms"}
BOUNDED_LABELS = {"namespace", "pod", "container", "service_name", "job", "level", "logger",
                  "cluster", "stream"}


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is not installed: scripts/test.sh installs Debian's prometheus"
    return found


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True,
                          timeout=60, check=False)


# --------------------------------------------------------------------- reading PromQL

def rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the dashboard."""
    return [(panel["title"], target["expr"]) for panel in dashboard_panels()
            for target in panel.get("targets", [])]


def variable_queries() -> list[str]:
    """The PromQL inside the template variables' label_values(...) queries."""
    found = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text)
            assert match, f"variable {variable['name']}: {text}"
            found.append(match.group(1))
    return found


def metric_names(expression: str) -> set[str]:
    """The metric (and recording rule) names a PromQL expression reads: identifiers that
    are no function, keyword, label (in braces or grouping clauses), duration, number or
    Grafana variable."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.])[A-Za-z_:][\w:]*", text):
        if match.group().lower() in _KEYWORDS or text[match.end():].lstrip().startswith("("):
            continue
        names.add(match.group())
    return names


def test_metric_names_are_read_out_of_promql() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (le, method) (rate(caas_rpc_duration_seconds_bucket'
        '{job=~"$job", method!="Subscribe"}[$__rate_interval] offset 1h))) > bool 0.25 '
        'and on (job) job:caas_rpc_slow:ratio_rate5m or vector(1e3) unless absent(up)'
    ) == {"caas_rpc_duration_seconds_bucket", "job:caas_rpc_slow:ratio_rate5m", "up"}


def exported_names(exposition: str) -> set[str]:
    """Every series name the exposition can hold, for each family it declares (a
    family appears with HELP and TYPE before it has any sample)."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
    return names


# --------------------------------------------------------------------- a running server

@dataclass
class Observed:
    server: CaasServer
    metrics_port: int

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    server = start_caas(tmp_path_factory.mktemp("observed"),
                        env={"CAAS_METRICS_LISTEN": f"127.0.0.1:{free_port()}"},
                        config=TEST_CONFIG)
    try:
        line = server.process.wait_for_line(
            lambda text: '"message": "metrics serving"' in text)
        yield Observed(server, int(json.loads(line)["metrics_port"]))
    finally:
        assert server.process.stop() == 0


@pytest.fixture(scope="module")
async def traffic(observed: Observed) -> AsyncIterator[Observed]:
    """The server, after the calls of a day at the office: an app, a user who sends to a
    group, a missing app asked for (NOT_FOUND)."""
    client = Client(observed.server.address)
    try:
        operator = bearer(observed.server.operator_token)
        app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
            app_id="watched", app=apps_res.App(display_name="Watched")), metadata=operator)
        await client.apps.GetApp(apps_pb.GetAppRequest(name="apps/watched"), metadata=operator)
        with pytest.raises(grpc.aio.AioRpcError, match="NOT_FOUND"):
            await client.apps.GetApp(apps_pb.GetAppRequest(name="apps/nowhere"),
                                     metadata=operator)
        alice = await person(client, "watched", app.api_key_secret, "alice")
        group = await alice.create(GROUP)
        for n in range(3):
            await alice.send(group.name, f"watched {n}")
    finally:
        await client.close()
    yield observed


# --------------------------------------------------------------------- promtool

def test_the_rules_pass_promtool_check_rules() -> None:
    checked = promtool("check", "rules", *map(str, RULE_FILES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("SUCCESS") == len(RULE_FILES)


def test_the_example_config_passes_promtool_check_config() -> None:
    checked = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 rule files found" in checked.stdout


def test_the_alerts_fire_as_their_unit_tests_expect() -> None:
    tested = promtool("test", "rules", str(PROMETHEUS / "tests.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every alert has a test where it fires.
    cases = yaml.safe_load((PROMETHEUS / "tests.yml").read_text())["tests"]
    fired = {case["alertname"] for test in cases for case in test["alert_rule_test"]
             if case["exp_alerts"]}
    assert fired == {rule["alert"] for rule in rules() if "alert" in rule}


def test_every_alert_has_a_severity_a_summary_and_a_runbook_entry() -> None:
    runbook = (repo_root() / "docs/operations.md").read_text()
    for rule in rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description"} <= rule["annotations"].keys(), rule["alert"]
        assert f"`{rule['alert']}`" in runbook, f"{rule['alert']} is not in the runbook"


# --------------------------------------------------------------------- names

def test_every_metric_named_by_a_rule_or_the_dashboard_is_exported(
        observed: Observed) -> None:
    exported = exported_names(httpx.get(observed.metrics_url, timeout=10).text)
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    named: dict[str, set[str]] = {}
    sources = [(rule.get("alert") or rule["record"], rule["expr"]) for rule in rules()]
    sources += dashboard_queries() + [("variable", query) for query in variable_queries()]
    for source, expression in sources:
        names = metric_names(expression)
        assert names, f"{source}: no metric in {expression}"
        for name in names:
            named.setdefault(name, set()).add(source)
    unknown_records = {name for name in named if ":" in name} - recorded
    assert not unknown_records, f"recording rules nobody defines: {unknown_records}"
    missing = {name: sorted(used_by) for name, used_by in named.items()
               if ":" not in name and name not in exported | PROMETHEUS_OWN}
    assert not missing, f"named but not exported by the server: {missing}"


# --------------------------------------------------------------------- the dashboard

def test_the_dashboard_is_a_well_formed_grafana_dashboard() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39
    assert board["uid"] and board["title"] and board["id"] is None
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= variables.keys()
    ids = [panel["id"] for panel in dashboard_panels()]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in dashboard_panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        taken = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not taken & cells, f"{panel['title']} overlaps another panel"
        cells |= taken
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        if panel["type"] in {"timeseries", "stat"}:
            assert panel["fieldConfig"]["defaults"]["unit"], f"{panel['title']}: no unit"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            if len(panel["targets"]) > 1 or panel["type"] == "timeseries":
                assert target["legendFormat"], f"{panel['title']}: a series without legend"
            # Every selector is filtered by the job and instance variables.
            selectors = re.findall(r"[A-Za-z_:][\w:]*\{[^}]*\}", target["expr"])
            assert selectors, panel["title"]
            for selector in selectors:
                assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, (
                    f"{panel['title']}: {selector}")


# --------------------------------------------------------------------- a real Prometheus

def _prometheus_config(tmp_path: Path, metrics_port: int) -> Path:
    """deploy/prometheus/prometheus.yml, scraping the test server every second, without
    Alertmanager."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS / name) for name in config["rule_files"]]
    config.pop("alerting")
    [job] = config["scrape_configs"]
    assert job["job_name"] == "caas"  # the alerts' up{job="caas"}
    job["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def prometheus(tmp_path: Path, traffic: Observed) -> Iterator[str]:
    """A Prometheus scraping the server with the rules loaded; its URL."""
    port = free_port()
    process = Process([tool("prometheus"),
                       f"--config.file={_prometheus_config(tmp_path, traffic.metrics_port)}",
                       f"--web.listen-address=127.0.0.1:{port}",
                       f"--storage.tsdb.path={tmp_path / 'data'}"], name="prometheus")
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_for_line(lambda line: "Server is ready to receive web requests" in line,
                              60)
        yield url
    finally:
        assert process.stop() == 0


def _api(url: str, path: str, **params: str) -> Any:
    answer = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=10)
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", (path, params, body)
    return body["data"]


def _timestamp(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time with up to nanoseconds."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text)).timestamp()


def _concrete(expression: str) -> str:
    """A dashboard query as Grafana sends it for job "caas" and every instance."""
    return (expression.replace("$__rate_interval", "1m").replace("$job", "caas")
            .replace("$instance", ".+"))


async def test_a_real_prometheus_evaluates_every_rule_and_dashboard_query(
        prometheus: str) -> None:
    async def scraped() -> bool:
        targets = _api(prometheus, "targets")["activeTargets"]
        if not targets:
            return False  # discovery has not run yet
        assert len(targets) == 1
        assert targets[0]["health"] != "down", targets[0]["lastError"]
        return bool(targets[0]["health"] == "up")

    await eventually(scraped, within=30, every=0.2)

    # The recording rules have real series to work on once two scrapes are in.
    async def recorded() -> bool:
        return bool(_api(prometheus, "query", query='job:caas_rpc_requests:rate5m{job="caas"}')
                    ["result"])

    await eventually(recorded, within=30, every=0.2)
    since = time.time()

    groups_in_files = {group["name"] for path in RULE_FILES
                       for group in yaml.safe_load(path.read_text())["groups"]}

    async def evaluated() -> bool:
        groups = _api(prometheus, "rules")["groups"]
        assert {group["name"] for group in groups} == groups_in_files
        fresh = True
        for group in groups:
            for rule in group["rules"]:
                assert rule["health"] != "err", (rule["name"], rule.get("lastError"))
                last = _timestamp(rule["lastEvaluation"])
                fresh = fresh and rule["health"] == "ok" and last > since
        return fresh

    await eventually(evaluated, within=30, every=0.2)

    for title, expression in dashboard_queries():
        _api(prometheus, "query", query=_concrete(expression))  # no error: it raises
        assert title
    for query in variable_queries():
        assert "caas" in _api(prometheus, "label/job/values", **{"match[]": _concrete(query)})
    # And the panels that have data on a fresh server show it.
    with_data = {"Ready", "Requests", "Requests by method", "Memory", "Open streams"}
    for title, expression in dashboard_queries():
        if title in with_data:
            assert _api(prometheus, "query", query=_concrete(expression))["result"], title


# --------------------------------------------------------------------- Loki (Alloy)

# The components the config may use, the arguments each needs, and what each exports.
COMPONENTS: dict[str, tuple[set[str], set[str]]] = {
    "discovery.kubernetes": ({"role"}, {"targets"}),
    "discovery.docker": ({"host"}, {"targets"}),
    "discovery.relabel": ({"targets"}, {"output", "rules"}),
    "loki.source.kubernetes": ({"targets", "forward_to"}, set()),
    "loki.source.docker": ({"host", "targets", "forward_to"}, set()),
    "loki.source.journal": ({"forward_to"}, set()),
    "loki.process": ({"forward_to"}, {"receiver"}),
    "loki.write": (set(), {"receiver"}),
}
STAGES = {"stage.json", "stage.timestamp", "stage.labels", "stage.structured_metadata",
          "stage.cri", "stage.static_labels", "stage.drop"}


def alloy_config() -> alloy_syntax.Block:
    return alloy_syntax.parse(ALLOY.read_text())


def commented_alternatives() -> alloy_syntax.Block:
    """The alternative sources the config shows in comments: the lines indented `//   `
    of its comment that starts with `// Alternatives`."""
    lines = ALLOY.read_text().splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("// Alternatives"))
    end = next(n for n in range(start, len(lines)) if not lines[n].startswith("//"))
    return alloy_syntax.parse("\n".join(line[len("//   "):] for line in lines[start:end]
                                         if line.startswith("//   ")))


def _check_components(body: alloy_syntax.Block, known: set[tuple[str, str]]) -> None:
    """Each block of `body` is a known component with a label and its required
    arguments; each reference names an export of a component declared in `body` (or in
    `known`)."""
    declared = {(block.name, block.label or "") for block in body.blocks} | known
    for block in body.blocks:
        assert block.name in COMPONENTS, f"unknown component {block.name}"
        assert block.label, f"{block.name} has no label"
        required, _ = COMPONENTS[block.name]
        assert required <= block.attributes.keys(), f"{block.name} needs {required}"
        for inner in [block, *alloy_syntax.walk(block)]:
            for value in inner.attributes.values():
                for ref in alloy_syntax.references(value):
                    *component, label, export = ref.path
                    target = (".".join(component), label)
                    assert target in declared, f"{block.name}: no {'.'.join(ref.path)}"
                    assert export in COMPONENTS[target[0]][1], ".".join(ref.path)
        if block.name == "loki.process":
            assert {stage.name for stage in block.blocks} <= STAGES


def test_the_alloy_config_parses_and_its_components_connect() -> None:
    config = alloy_config()
    _check_components(config, set())
    by_name = {(block.name, block.label or ""): block for block in config.blocks}
    # source → loki.process → loki.write
    source = by_name["loki.source.kubernetes", "caas"]
    [to_process] = source.attributes["forward_to"]
    assert to_process.path == ("loki", "process", "caas", "receiver")
    [to_write] = by_name["loki.process", "caas"].attributes["forward_to"]
    assert to_write.path == ("loki", "write", "default", "receiver")
    [endpoint] = by_name["loki.write", "default"].children("endpoint")
    url = endpoint.attributes["url"]
    assert alloy_syntax.evaluate(url, {}) == "http://loki:3100/loki/api/v1/push"
    assert alloy_syntax.evaluate(url, {"LOKI_URL": "https://logs.example/push"}) == (
        "https://logs.example/push")
    # The alternatives in comments are valid too, and feed the same pipeline.
    alternatives = commented_alternatives()
    _check_components(alternatives, set(by_name))
    assert {block.name for block in alternatives.blocks} >= {"loki.source.docker",
                                                             "loki.source.journal"}


def _labels(body: alloy_syntax.Block) -> set[str]:
    """Every stream label the pipeline can set."""
    labels = set()
    for block in alloy_syntax.walk(body):
        if block.name == "rule" and not block.attributes.get("target_label", "_").startswith(
                "__"):
            action = block.attributes.get("action", "replace")
            assert action in {"replace", "keep", "drop"}, f"relabel action {action}"
            if action == "replace":
                labels.add(block.attributes["target_label"])
        if block.name in {"stage.labels", "stage.static_labels"}:
            labels |= block.attributes["values"].keys()
        if block.name in {"loki.write", "loki.source.journal"}:
            labels |= block.attributes.get("external_labels", {}).keys()
            labels |= block.attributes.get("labels", {}).keys()
    return labels


def test_the_loki_labels_are_bounded_and_ids_go_to_structured_metadata() -> None:
    config = alloy_config()
    labels = _labels(config) | _labels(commented_alternatives())
    assert labels <= BOUNDED_LABELS, f"unbounded labels: {labels - BOUNDED_LABELS}"
    assert not labels & UNBOUNDED
    assert {"level", "logger"} <= labels
    [process] = [block for block in config.blocks if block.name == "loki.process"]
    [metadata] = process.children("stage.structured_metadata")
    assert {"trace_id", "span_id", "request_id", "app_id"} <= metadata.attributes[
        "values"].keys()
    [parsed] = process.children("stage.json")
    extracted = parsed.attributes["expressions"].keys()
    [timestamp] = process.children("stage.timestamp")
    assert timestamp.attributes["source"] in extracted
    for stage in process.children("stage.labels") + process.children(
            "stage.structured_metadata"):
        for name, source in stage.attributes["values"].items():
            assert (source or name) in extracted, f"{name}: nothing extracts {source or name}"


def _jmespath(expression: str, key: str, entry: dict[str, Any]) -> Any:
    """The subset of JMESPath the json stage uses: a field, or fields joined by ||
    (the first that is set); an empty expression is the key itself."""
    for name in (expression or key).split("||"):
        assert re.fullmatch(r"\s*\w+\s*", name), f"more JMESPath than this test reads: {name}"
        if entry.get(name.strip()) not in (None, ""):
            return entry[name.strip()]
    return None


def test_the_json_stage_reads_the_servers_real_log_lines(traffic: Observed) -> None:
    [process] = [block for block in alloy_config().blocks if block.name == "loki.process"]
    [parsed] = process.children("stage.json")
    expressions: dict[str, str] = parsed.attributes["expressions"]
    entries = traffic.server.logs()
    assert entries
    rfc3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
    for entry in entries:
        extracted = {key: _jmespath(value, key, entry) for key, value in expressions.items()}
        assert extracted["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
        assert extracted["logger"], entry
        assert rfc3339.fullmatch(extracted["time"]), entry["time"]
    # The access log's lines of the app's calls carry the request and the app.
    calls = [entry for entry in entries if entry.get("logger") == "caas.access"
             and "MessagesService" in str(entry.get("method"))]
    assert calls
    for entry in calls:
        assert _jmespath(expressions["request_id"], "request_id", entry)
        assert _jmespath(expressions["app_id"], "app_id", entry) == "watched"
