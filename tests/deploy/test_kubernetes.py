"""deploy/k8s as a cluster would take it, without a cluster (none runs here).

- Each overlay (dev, prod) builds with kustomize (`kubectl kustomize`, kubectl's own).
- Every object it renders validates strictly (unknown fields refused) against the
  OpenAPI schemas of the three newest Kubernetes releases kubernetes-validate ships;
  the custom resources (Gateway API, External Secrets, prometheus-operator), which it
  does not know, against their CRDs' schemas, vendored in deploy/k8s/schemas (CEL
  rules, x-kubernetes-validations, are not evaluated). An object of any other kind
  fails: nothing is skipped silently.
- The policy below holds for every object: no root, no privilege, resources and probes
  set, images pinned, the server's probes on its real health paths, a termination grace
  longer than the drain, the HPA on CPU and on streams per pod, a PDB, every Secret,
  ConfigMap, Service and route reference resolving, NetworkPolicies, a token-less
  ServiceAccount. Each violation names its object, and the tests at the end break one
  rule at a time to show that each is caught.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, all_versions
from pydantic import SecretStr, TypeAdapter
from referencing import Registry, Resource

from services.core.health_http import LIVENESS_PATH, READINESS_PATH
from services.core.settings import Duration, Settings, load_settings
from services.edge.envoy import FLUSH_SECONDS
from services.server import STREAM_END_SECONDS
from tests.conftest import repo_root

K8S = repo_root() / "deploy" / "k8s"
OVERLAYS = ("dev", "staging", "prod")
KUBECTL = Path(sys.executable).parent / "kubectl"
KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
# The newest three minor releases kubernetes-validate has strict schemas of (the
# releases upstream supports at any time).
VERSIONS = sorted({v for v in all_versions()}, key=lambda v: tuple(map(int, v.split("."))))[-3:]
CUSTOM_SCHEMAS = K8S / "schemas"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

Obj = dict[str, Any]


# --- building -----------------------------------------------------------------------

@functools.cache
def _render(overlay: str) -> str:
    built = subprocess.run([str(KUBECTL), "kustomize", str(K8S / "overlays" / overlay)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert built.returncode == 0, f"kustomize {overlay}: {built.stderr}"
    return built.stdout


def rendered(overlay: str) -> list[Obj]:
    """The overlay's objects, as kustomize renders them (a fresh copy each time)."""
    return [o for o in yaml.safe_load_all(_render(overlay)) if o]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- schemas ------------------------------------------------------------------------

def _strict(node: Any) -> Any:
    """A CRD schema that refuses unknown fields, as `kubectl apply --validate=strict`
    (server-side field validation) does: objects with properties take no others unless
    the CRD keeps unknown fields."""
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _strict(v) for k, v in node.items()}
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        node["additionalProperties"] = False
    return node


@functools.cache
def _custom_validators(version: str) -> dict[tuple[str, str], jsonschema.Validator]:
    """(apiVersion, kind) → a validator of the vendored CRD schema, its metadata checked
    as the ObjectMeta of `version`'s built-in schemas."""
    definitions = json.loads(
        (Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
         / f"v{version}-local-strict" / "_definitions.json").read_text())
    registry: Registry = Resource.from_contents(definitions) @ Registry()
    validators = {}
    for path in sorted(CUSTOM_SCHEMAS.glob("*.json")):
        crd = json.loads(path.read_text())
        api_version = f"{crd['group']}/{crd['version']}"
        schema = _strict(crd["schema"])
        schema["properties"]["apiVersion"] = {"const": api_version}
        schema["properties"]["kind"] = {"const": crd["kind"]}
        schema["properties"]["metadata"] = {
            "$ref": f"{definitions['$id']}#/$defs/{OBJECT_META}"}
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind",
                                     "metadata"})
        validators[(api_version, crd["kind"])] = jsonschema.Draft202012Validator(
            schema, registry=registry)
    return validators


def schema_errors(obj: Obj, version: str) -> list[str]:
    """What the schemas of Kubernetes `version` refuse in `obj` (strict)."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(obj, version, strict=True)
        return []
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {'.'.join(map(str, error.path))}: {error.message}"]
    except SchemaNotFoundError:
        pass
    validator = _custom_validators(version).get((obj["apiVersion"], obj["kind"]))
    if validator is None:
        return [f"{name}: no schema for {obj['apiVersion']} {obj['kind']} (a custom "
                "resource: vendor its CRD's schema with deploy/k8s/schemas/extract.py)"]
    return [f"{name}: {'.'.join(map(str, e.path))}: {e.message}"
            for e in validator.iter_errors(obj)]


# --- the policy ---------------------------------------------------------------------

WORKLOAD_TEMPLATES = {
    "Deployment": ("spec", "template"), "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"), "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"), "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
# The volume types the "restricted" Pod Security profile admits.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}
SERVER = "caas"  # the CAAS Deployment and its container
STREAMS_METRIC = "caas_streams_open"
H2C = "kubernetes.io/h2c"
SECRET_SETTINGS = {f"CAAS_{name.upper()}" for name, field in Settings.model_fields.items()
                   if "SecretStr" in str(field.annotation)}
# Not SecretStr in the settings, but credentials all the same.
CREDENTIALS = SECRET_SETTINGS | {"CAAS_MONGODB_URL", "CAAS_REDIS_URL",
                                 "CAAS_MEDIA_S3_ACCESS_KEY"}


def ref(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def template(obj: Obj) -> Obj | None:
    path = WORKLOAD_TEMPLATES.get(obj["kind"])
    if path is None:
        return obj if obj["kind"] == "Pod" else None
    node: Obj = obj
    for key in path:
        node = node.get(key, {})
    return node


def workloads(objects: list[Obj]) -> Iterator[tuple[Obj, Obj, Obj]]:
    """(workload, its pod's metadata, its pod's spec) of every object that makes pods."""
    for obj in objects:
        pod = template(obj)
        if pod is not None:
            yield obj, pod.get("metadata", {}), pod.get("spec", {})


def containers(spec: Obj, *, init: bool = True) -> list[Obj]:
    return [*(spec.get("initContainers") or [] if init else []), *spec.get("containers", [])]


def selects(selector: Obj | None, labels: Obj) -> bool:
    """Whether a label selector (matchLabels/matchExpressions, or a plain map as
    Services have) selects `labels`. An empty selector selects everything."""
    selector = selector or {}
    plain = {k: v for k, v in selector.items() if k not in ("matchLabels", "matchExpressions")}
    wanted = {**plain, **selector.get("matchLabels", {})}
    if any(labels.get(k) != v for k, v in wanted.items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, op, values = expression["key"], expression["operator"], expression.get("values")
        if ((op == "In" and labels.get(key) not in values)
                or (op == "NotIn" and labels.get(key) in values)
                or (op == "Exists" and key not in labels)
                or (op == "DoesNotExist" and key in labels)):
            return False
    return True


def image_problem(image: str) -> str | None:
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return None
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"image {image} has no tag (it means :latest)"
    if name.rsplit(":", 1)[1] == "latest":
        return f"image {image} is :latest"
    return None


def check_pods(objects: list[Obj]) -> list[str]:
    """No root, no privilege, resources set, images pinned, probes on servers."""
    problems = []
    for obj, _, spec in workloads(objects):
        name, pod_context = ref(obj), spec.get("securityContext") or {}
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(host):
                problems.append(f"{name}: {host} is set")
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            if not kinds <= RESTRICTED_VOLUMES:
                problems.append(f"{name}: volume {volume['name']} is a "
                                f"{', '.join(sorted(kinds))} (outside the restricted "
                                "Pod Security profile)")
        for container in containers(spec):
            where = f"{name}: container {container['name']}"
            context = container.get("securityContext") or {}

            def setting(key: str, context: Obj = context, pod: Obj = pod_context) -> Any:
                return context.get(key, pod.get(key))

            if setting("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            uid = setting("runAsUser")
            if not isinstance(uid, int) or uid == 0:
                problems.append(f"{where}: runs as root or as no numeric user ({uid!r})")
            if context.get("privileged") is not False:
                problems.append(f"{where}: privileged is not false")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            capabilities = context.get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []) or capabilities.get("add"):
                problems.append(f"{where}: capabilities are not all dropped")
            seccomp = (setting("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{where}: no seccomp profile (RuntimeDefault)")
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(kind) or {})
                if missing:
                    problems.append(f"{where}: no {kind} for {', '.join(sorted(missing))}")
            problems += [f"{where}: hostPort {p['hostPort']}"
                         for p in container.get("ports", []) if p.get("hostPort")]
            problem = image_problem(container.get("image", ""))
            if problem:
                problems.append(f"{where}: {problem}")
        if obj["kind"] in LONG_RUNNING:
            for container in containers(spec, init=False):
                ports = {p.get("name") for p in container.get("ports", [])}
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in container:
                        problems.append(f"{name}: container {container['name']} has no "
                                        f"{probe}")
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    action = container.get(probe, {})
                    port = next((a["port"] for k, a in action.items()
                                 if k in ("httpGet", "tcpSocket", "grpc")), None)
                    if isinstance(port, str) and port not in ports:
                        problems.append(f"{name}: container {container['name']}'s {probe} "
                                        f"names no port of it ({port})")
    return problems


def config_of(objects: list[Obj], container: Obj) -> dict[str, str]:
    """The environment a container gets from ConfigMaps and plain values (not Secrets)."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps.get(source["configMapRef"]["name"], {}))
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        key_ref = variable.get("valueFrom", {}).get("configMapKeyRef")
        if key_ref and key_ref["key"] in maps.get(key_ref["name"], {}):
            env[variable["name"]] = maps[key_ref["name"]][key_ref["key"]]
    return env


def server(objects: list[Obj]) -> tuple[Obj, Obj] | None:
    """The CAAS Deployment and its server container."""
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == SERVER:
            spec = obj["spec"]["template"]["spec"]
            container = next((c for c in spec["containers"] if c["name"] == SERVER), None)
            if container is not None:
                return obj, container
    return None


def _port(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def check_server(objects: list[Obj]) -> list[str]:
    """The CAAS Deployment: read-only root, probes on the real health paths of the
    port Envoy listens on, the ports of its listeners, no secret in its ConfigMap, a
    grace longer than the drain, the engines several replicas need."""
    found = server(objects)
    if found is None:
        return [f"Deployment/{SERVER}: missing (with a container named {SERVER})"]
    deployment, container = found
    name, spec = ref(deployment), deployment["spec"]["template"]["spec"]
    problems = []
    if (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
        problems.append(f"{name}: container {SERVER}'s root filesystem is not read-only")
    config = config_of(objects, container)
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for port_name, setting in (("grpc", "CAAS_LISTEN"), ("http", "CAAS_HTTP_LISTEN"),
                               ("metrics", "CAAS_METRICS_LISTEN")):
        if setting not in config:
            problems.append(f"{name}: {setting} is not configured")
        elif ports.get(port_name) != _port(config[setting]):
            problems.append(f"{name}: port {port_name} ({ports.get(port_name)}) is not "
                            f"{setting}'s ({config[setting]})")
    for probe, path in (("livenessProbe", LIVENESS_PATH), ("readinessProbe", READINESS_PATH),
                        ("startupProbe", LIVENESS_PATH)):
        action = container.get(probe, {}).get("httpGet", {})
        if action.get("path") != path or action.get("port") != "http":
            problems.append(f"{name}: {probe} is not GET {path} on the http port "
                            f"(CAAS_HTTP_LISTEN, Envoy): {container.get(probe)}")
    for key in sorted(set(config) & CREDENTIALS):
        problems.append(f"{name}: {key} comes from a ConfigMap, not a Secret")
    from_secrets = {v["name"] for v in container.get("env", [])
                    if "secretKeyRef" in v.get("valueFrom", {})}
    # (The operator token may be left to CAAS, which generates it into the data
    # directory: for one replica only, below.)
    for key in sorted(SECRET_SETTINGS - from_secrets - {"CAAS_OPERATOR_TOKEN"}):
        problems.append(f"{name}: secret setting {key} is not taken from a Secret")
    grace = TypeAdapter(Duration).validate_python(config.get("CAAS_SHUTDOWN_GRACE", "10"))
    sleep = (container.get("lifecycle", {}).get("preStop", {}).get("sleep", {})
             .get("seconds", 0))
    drain = timedelta(seconds=sleep + STREAM_END_SECONDS + FLUSH_SECONDS) + grace
    termination = spec.get("terminationGracePeriodSeconds", 30)
    if termination <= drain.total_seconds():
        problems.append(f"{name}: terminationGracePeriodSeconds {termination} is not above "
                        f"the drain ({drain.total_seconds():g} s: preStop {sleep} s + "
                        f"CAAS_SHUTDOWN_GRACE {grace.total_seconds():g} s + ending streams "
                        f"and Envoy's flush)")
    workers = int(config.get("CAAS_WORKERS", "1"))
    if workers > 1 and "CAAS_REDIS_URL" not in from_secrets | set(config):
        problems.append(f"{name}: CAAS_WORKERS={workers} needs CAAS_REDIS_URL")
    cpu = str(container.get("resources", {}).get("requests", {}).get("cpu", "0"))
    cores = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    if cores < workers:
        problems.append(f"{name}: {workers} workers on a CPU request of {cpu}")
    if _replicas(objects, deployment) > 1:
        for key, wanted in (("CAAS_STORE", "mongodb"), ("CAAS_MEDIA_STORE", "s3"),
                            ("CAAS_SEARCH_ENGINE", "elasticsearch")):
            if config.get(key) != wanted:
                problems.append(f"{name}: several replicas cannot share the embedded "
                                f"engines: {key} is {config.get(key)!r}, not {wanted}")
        if "CAAS_REDIS_URL" not in from_secrets:
            problems.append(f"{name}: several replicas need CAAS_REDIS_URL")
        if "CAAS_OPERATOR_TOKEN" not in from_secrets:
            problems.append(f"{name}: several replicas need one CAAS_OPERATOR_TOKEN (each "
                            "would generate its own)")
    return problems


def _hpas(objects: list[Obj], target: Obj) -> list[Obj]:
    return [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"
            and o["spec"]["scaleTargetRef"].get("kind") == target["kind"]
            and o["spec"]["scaleTargetRef"].get("name") == target["metadata"]["name"]]


def _replicas(objects: list[Obj], workload: Obj) -> int:
    hpas = _hpas(objects, workload)
    if hpas:
        return max(int(h["spec"]["maxReplicas"]) for h in hpas)
    return int(workload["spec"].get("replicas", 1))


def check_scaling(objects: list[Obj]) -> list[str]:
    """HPAs target a workload of the set; the server's scales on CPU and on streams per
    pod; PDBs select pods, the server's has one, and neither blocks the other."""
    problems = []
    scalable = {(o["kind"], o["metadata"]["name"]) for o in objects
                if o["kind"] in ("Deployment", "StatefulSet")}
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if (target.get("kind"), target.get("name")) not in scalable:
            problems.append(f"{ref(hpa)}: scales {target.get('kind')}/{target.get('name')}, "
                            "which is not here")
        if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
            problems.append(f"{ref(hpa)}: minReplicas above maxReplicas")
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    for pdb in pdbs:
        if not any(selects(pdb["spec"].get("selector"), labels.get("labels", {}))
                   for _, labels, _ in workloads(objects)):
            problems.append(f"{ref(pdb)}: selects no pods")
    found = server(objects)
    if found is None:
        return problems
    deployment = found[0]
    labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    covering = [p for p in pdbs if selects(p["spec"].get("selector"), labels)]
    hpas = _hpas(objects, deployment)
    if _replicas(objects, deployment) > 1 and not covering:
        problems.append(f"{ref(deployment)}: no PodDisruptionBudget selects its pods")
    if not hpas and deployment["spec"].get("replicas") != 1:
        problems.append(f"{ref(deployment)}: no HorizontalPodAutoscaler scales it (and "
                        "it does not run a single replica)")
    if hpas and "replicas" in deployment["spec"]:
        problems.append(f"{ref(deployment)}: sets replicas, which every apply would reset "
                        "under its HorizontalPodAutoscaler")
    for hpa in hpas:
        metrics = hpa["spec"].get("metrics", [])
        if not any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics):
            problems.append(f"{ref(hpa)}: does not scale on CPU")
        if not any(m["type"] == "Pods" and m["pods"]["metric"]["name"] == STREAMS_METRIC
                   and m["pods"]["target"]["type"] == "AverageValue" for m in metrics):
            problems.append(f"{ref(hpa)}: does not scale on {STREAMS_METRIC} per pod")
        for pdb in covering:
            floor = pdb["spec"].get("minAvailable")
            if isinstance(floor, int) and floor >= hpa["spec"].get("minReplicas", 1):
                problems.append(f"{ref(pdb)}: minAvailable {floor} leaves no pod of "
                                f"{ref(hpa)}'s minimum to evict (drains would block)")
    return problems


def _declared_secrets(objects: list[Obj]) -> dict[str, set[str] | None]:
    """Secret name → its keys (None: not known, from an ExternalSecret's dataFrom)."""
    secrets: dict[str, set[str] | None] = {}
    for obj in objects:
        if obj["kind"] == "Secret":
            secrets[obj["metadata"]["name"]] = {*obj.get("data", {}), *obj.get("stringData", {})}
        elif obj["kind"] == "ExternalSecret":
            spec = obj["spec"]
            keys = {d["secretKey"] for d in spec.get("data", [])}
            secrets[spec.get("target", {}).get("name", obj["metadata"]["name"])] = (
                None if spec.get("dataFrom") else keys)
    return secrets


def check_references(objects: list[Obj]) -> list[str]:
    """Every Secret and ConfigMap a pod or a Gateway names is declared here (a Secret
    or an ExternalSecret that makes it), with the keys named."""
    problems = []
    secrets = _declared_secrets(objects)
    maps = {o["metadata"]["name"]: set(o.get("data", {})) for o in objects
            if o["kind"] == "ConfigMap"}

    def secret(where: str, name: str, key: str | None = None) -> None:
        if name not in secrets:
            problems.append(f"{where}: Secret {name} is declared nowhere in the overlay")
        elif key is not None and key not in (secrets[name] or set()):
            problems.append(f"{where}: Secret {name} has no key {key}")

    def config_map(where: str, name: str, key: str | None = None) -> None:
        if name not in maps:
            problems.append(f"{where}: ConfigMap {name} is declared nowhere in the overlay")
        elif key is not None and key not in maps[name]:
            problems.append(f"{where}: ConfigMap {name} has no key {key}")

    for obj, _, spec in workloads(objects):
        for container in containers(spec):
            where = f"{ref(obj)}: container {container['name']}"
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    secret(where, source["secretRef"]["name"])
                if "configMapRef" in source:
                    config_map(where, source["configMapRef"]["name"])
            for variable in container.get("env", []):
                value_from = variable.get("valueFrom", {})
                if "secretKeyRef" in value_from:
                    secret(where, value_from["secretKeyRef"]["name"],
                           value_from["secretKeyRef"]["key"])
                if "configMapKeyRef" in value_from:
                    config_map(where, value_from["configMapKeyRef"]["name"],
                               value_from["configMapKeyRef"]["key"])
        for volume in spec.get("volumes", []):
            where = f"{ref(obj)}: volume {volume['name']}"
            if "secret" in volume:
                secret(where, volume["secret"]["secretName"])
            if "configMap" in volume:
                config_map(where, volume["configMap"]["name"])
        for pull in spec.get("imagePullSecrets", []):
            secret(f"{ref(obj)}: imagePullSecrets", pull["name"])
    for gateway in (o for o in objects if o["kind"] == "Gateway"):
        annotations = gateway["metadata"].get("annotations", {})
        issued = any(a in annotations for a in ("cert-manager.io/cluster-issuer",
                                                "cert-manager.io/issuer"))
        for listener in gateway["spec"]["listeners"]:
            for certificate in listener.get("tls", {}).get("certificateRefs", []):
                if certificate["name"] not in secrets and not issued:
                    problems.append(f"{ref(gateway)}: listener {listener['name']}'s "
                                    f"certificate {certificate['name']} is neither declared "
                                    "nor issued by cert-manager")
    return problems


def check_services(objects: list[Obj]) -> list[str]:
    """Services select pods, on ports those pods have; routes reach Services over
    HTTP/2 from listeners that admit them."""
    problems = []
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    for service in services.values():
        selector = service["spec"].get("selector")
        if not selector:
            continue
        pods = [spec for _, meta, spec in workloads(objects)
                if selects(selector, meta.get("labels", {}))]
        if not pods:
            problems.append(f"{ref(service)}: its selector matches no pods")
            continue
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            declared = [p for spec in pods for c in containers(spec, init=False)
                        for p in c.get("ports", [])]
            if not any(target in (p.get("name"), p["containerPort"]) for p in declared):
                problems.append(f"{ref(service)}: port {port.get('name')} targets "
                                f"{target}, which its pods do not have")
    gateways = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Gateway"}
    for route in (o for o in objects if o["kind"] in ("HTTPRoute", "GRPCRoute")):
        for parent in route["spec"].get("parentRefs", []):
            gateway = gateways.get(parent["name"])
            listener = next((item for item in (gateway or {}).get("spec", {}).get("listeners", [])
                             if item["name"] == parent.get("sectionName")), None)
            if listener is None:
                problems.append(f"{ref(route)}: no Gateway {parent['name']} with a listener "
                                f"{parent.get('sectionName')}")
                continue
            kinds = {k["kind"] for k in listener.get("allowedRoutes", {}).get("kinds", [])}
            if kinds and route["kind"] not in kinds:
                problems.append(f"{ref(route)}: listener {listener['name']} admits only "
                                f"{sorted(kinds)}")
            if listener.get("hostname") and listener["hostname"] not in route["spec"].get(
                    "hostnames", [listener["hostname"]]):
                problems.append(f"{ref(route)}: no hostname of listener {listener['name']}")
        for rule in route["spec"].get("rules", []):
            for backend in rule.get("backendRefs", []):
                backend_service = services.get(backend["name"], {})
                port = next((p for p in backend_service.get("spec", {}).get("ports", [])
                             if p["port"] == backend.get("port")), None)
                if port is None:
                    problems.append(f"{ref(route)}: backend {backend['name']}:"
                                    f"{backend.get('port')} is no Service port")
                elif port.get("appProtocol") != H2C:
                    problems.append(f"{ref(route)}: backend {backend['name']}:"
                                    f"{backend['port']} is not HTTP/2 (appProtocol {H2C})")
    return problems


def check_isolation(objects: list[Obj]) -> list[str]:
    """A default-deny NetworkPolicy, and every pod allowed what it needs by one of its
    own; pods run as ServiceAccounts declared here, with no token mounted and nothing
    bound to them."""
    problems = []
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    if not any(p["spec"].get("podSelector") == {}
               and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress")
               for p in policies):
        problems.append("NetworkPolicy: no default-deny policy (every pod, ingress and "
                        "egress)")
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    bound = {s["name"] for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")
             for s in o.get("subjects", []) if s.get("kind") == "ServiceAccount"}
    for obj, meta, spec in workloads(objects):
        labels = meta.get("labels", {})
        if not any(p["spec"].get("podSelector") and selects(p["spec"]["podSelector"], labels)
                   for p in policies):
            problems.append(f"{ref(obj)}: no NetworkPolicy of its own selects its pods")
        account_name = spec.get("serviceAccountName", "default")
        account = accounts.get(account_name)
        if account is None:
            problems.append(f"{ref(obj)}: runs as ServiceAccount {account_name}, not "
                            "declared here")
            continue
        if spec.get("automountServiceAccountToken",
                    account.get("automountServiceAccountToken")) is not False:
            problems.append(f"{ref(obj)}: mounts a ServiceAccount token")
        if account_name in bound:
            problems.append(f"{ref(obj)}: ServiceAccount {account_name} is bound to a role")
    return problems


CHECKS: tuple[Callable[[list[Obj]], list[str]], ...] = (
    check_pods, check_server, check_scaling, check_references, check_services,
    check_isolation)


def policy_violations(objects: list[Obj]) -> list[str]:
    return [problem for check in CHECKS for problem in check(objects)]


# --- the tests ----------------------------------------------------------------------

def test_kustomize_builds_each_overlay(overlay: str) -> None:
    kinds = {o["kind"] for o in rendered(overlay)}
    assert {"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service",
            "PodDisruptionBudget", "NetworkPolicy", "Gateway", "HTTPRoute",
            "GRPCRoute"} <= kinds
    namespace = {"dev": "caas-dev", "staging": "caas", "prod": "caas"}[overlay]
    assert all(o["metadata"].get("namespace") == namespace
               for o in rendered(overlay) if o["kind"] != "Namespace")


def test_staging_reads_nothing_of_production() -> None:
    """Staging is production's shape on its own engines and secrets (the release
    deploys it first): no secret path, bucket or host of production's is left in it."""
    text = subprocess.run([str(KUBECTL), "kustomize", str(K8S / "overlays" / "staging")],
                          capture_output=True, text=True, check=True).stdout
    assert "caas/prod" not in text and "caas-media-prod" not in text
    assert "kafka.example.internal" not in text and "search.example.internal" not in text
    assert text.count("caas/staging") == 11


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_strictly(overlay: str, version: str) -> None:
    assert tuple(map(int, VERSIONS[-1].split("."))) >= (1, 35), VERSIONS
    errors = [e for o in rendered(overlay) for e in schema_errors(o, version)]
    assert not errors, "\n".join(errors)


def test_kubernetes_validate_cli_passes_the_rendered_overlay(overlay: str,
                                                             tmp_path: Path) -> None:
    """What CI runs: the command line, strict, against the newest release. It warns of
    the custom resources only (validated above against their CRDs)."""
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(_render(overlay))
    run = subprocess.run([str(KUBERNETES_VALIDATE), "--strict", "--quiet", "-k", VERSIONS[-1],
                          str(manifest)], capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    custom = {json.loads(p.read_text())["kind"] for p in CUSTOM_SCHEMAS.glob("*.json")}
    warned = set(re.findall(r"Couldn't find schema for kind (\w+)", run.stdout))
    assert warned <= custom, run.stdout
    assert "ERROR" not in run.stdout


def test_the_policy_holds(overlay: str) -> None:
    problems = policy_violations(rendered(overlay))
    assert not problems, "\n".join(problems)


def test_the_server_configuration_is_valid_caas_settings(
        overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CAAS_* key of the server's environment is a setting (a misspelt one would
    be ignored), and the whole, with stand-ins for the secrets, loads."""
    found = server(rendered(overlay))
    assert found is not None
    _, container = found
    config = config_of(rendered(overlay), container)
    settings = {f"CAAS_{name.upper()}" for name in Settings.model_fields}
    assert not {k for k in config if k.startswith("CAAS_")} - settings
    for key in list(os.environ):
        if key.startswith("CAAS_"):
            monkeypatch.delenv(key)
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    for variable in container["env"]:
        if "secretKeyRef" in variable.get("valueFrom", {}):
            stand_in = {"CAAS_OPERATOR_TOKEN": "caaso_" + "x" * 40,
                        "CAAS_MONGODB_URL": "mongodb://db/?replicaSet=rs0",
                        "CAAS_REDIS_URL": "redis://cache:6379/0"}
            monkeypatch.setenv(variable["name"], stand_in.get(variable["name"], ""))
    loaded = load_settings()
    assert loaded.store == "mongodb" and loaded.redis_url
    assert loaded.search_engine == "elasticsearch" and loaded.kafka_bootstrap
    assert isinstance(loaded.media_s3_secret_key, SecretStr)


def test_prod_pins_the_image_by_digest_and_runs_on_managed_engines() -> None:
    objects = rendered("prod")
    images = {c["image"] for _, _, spec in workloads(objects) for c in containers(spec)}
    assert images and all(re.search(r"@sha256:[0-9a-f]{64}$", i) for i in images), images
    assert not [o for o in objects if o["kind"] in ("StatefulSet", "PersistentVolumeClaim")]
    deployment, container = server(objects) or ({}, {})
    hpa = _hpas(objects, deployment)[0]  # the replicas are its: 3 and more
    assert hpa["spec"]["minReplicas"] >= 3 and hpa["spec"]["maxReplicas"] > 3
    config = config_of(objects, container)
    assert config["CAAS_MEDIA_STORE"] == "s3" and config["CAAS_KAFKA_TLS"] == "true"


def test_dev_runs_the_engines_in_the_cluster() -> None:
    objects = rendered("dev")
    engines = {o["metadata"]["name"] for o in objects if o["kind"] == "StatefulSet"}
    assert engines == {"caas-mongodb", "caas-redis", "caas-kafka", "caas-elasticsearch"}
    assert any(o["kind"] == "Job" and o["metadata"]["name"] == "caas-mongodb-init"
               for o in objects)
    deployment, _ = server(objects) or ({}, {})
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # one ReadWriteOnce volume


def test_the_prometheus_adapter_rule_serves_the_hpa_metric() -> None:
    values = yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())
    rule = values["rules"]["custom"][0]
    assert STREAMS_METRIC in rule["seriesQuery"] and rule["name"]["as"] == STREAMS_METRIC
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    assert "caas_streams_open" in (repo_root() / "services/core/metrics.py").read_text()


# --- the policy catches what it should ----------------------------------------------

def _server_container(objects: list[Obj]) -> Obj:
    found = server(objects)
    assert found is not None
    return found[1]


def _first(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    return next(o for o in objects if o["kind"] == kind
                and (name is None or o["metadata"]["name"] == name))


def _set(obj: Any, path: tuple[str | int, ...], value: Any) -> None:
    *parents, last = path
    for key in parents:
        obj = obj[key] if isinstance(key, int) else obj.setdefault(key, {})
    obj[last] = value


def _volume(objects: list[Obj], name: str) -> Obj:
    volumes = _first(objects, "Deployment", "caas")["spec"]["template"]["spec"]["volumes"]
    return next(v for v in volumes if v["name"] == name)


BREAKAGES: dict[str, tuple[Callable[[list[Obj]], None], str]] = {
    "root": (lambda o: _set(_server_container(o), ("securityContext", "runAsUser"), 0),
             "Deployment/caas: container caas: runs as root"),
    "privileged": (lambda o: _set(_server_container(o), ("securityContext", "privileged"),
                                  True),
                   "Deployment/caas: container caas: privileged is not false"),
    "escalation": (lambda o: _server_container(o)["securityContext"].pop(
                       "allowPrivilegeEscalation"),
                   "Deployment/caas: container caas: allowPrivilegeEscalation is not false"),
    "writable root": (lambda o: _set(_server_container(o),
                                     ("securityContext", "readOnlyRootFilesystem"), False),
                      "Deployment/caas: container caas's root filesystem is not read-only"),
    "host path": (lambda o: _first(o, "Deployment", "caas")["spec"]["template"]["spec"][
                      "volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
                  "Deployment/caas: volume host is a hostPath"),
    "no limits": (lambda o: _server_container(o)["resources"].pop("limits"),
                  "Deployment/caas: container caas: no limits for cpu, memory"),
    "latest": (lambda o: _set(_server_container(o), ("image",), "caas:latest"),
               "Deployment/caas: container caas: image caas:latest is :latest"),
    "untagged": (lambda o: _set(_server_container(o), ("image",), "redis"),
                 "Deployment/caas: container caas: image redis has no tag"),
    "no readiness": (lambda o: _server_container(o).pop("readinessProbe"),
                     "Deployment/caas: container caas has no readinessProbe"),
    "wrong health path": (lambda o: _set(_server_container(o),
                                         ("livenessProbe", "httpGet", "path"), "/health"),
                          "Deployment/caas: livenessProbe is not GET /healthz"),
    "short grace": (lambda o: _set(_first(o, "Deployment", "caas"),
                                   ("spec", "template", "spec",
                                    "terminationGracePeriodSeconds"), 20),
                    "Deployment/caas: terminationGracePeriodSeconds 20 is not above the drain"),
    "secret in config": (lambda o: _set(_first(o, "ConfigMap"), ("data", "CAAS_TURN_SECRET"),
                                        "x"),
                         "Deployment/caas: CAAS_TURN_SECRET comes from a ConfigMap"),
    "hpa without streams": (lambda o: _first(o, "HorizontalPodAutoscaler")["spec"][
                                "metrics"].pop(),
                            "HorizontalPodAutoscaler/caas: does not scale on caas_streams_open"),
    "hpa on nothing": (lambda o: _set(_first(o, "HorizontalPodAutoscaler"),
                                      ("spec", "scaleTargetRef", "name"), "gone"),
                       "HorizontalPodAutoscaler/caas: scales Deployment/gone"),
    "pdb blocks drains": (lambda o: _set(_first(o, "PodDisruptionBudget"),
                                         ("spec", "minAvailable"), 3),
                          "PodDisruptionBudget/caas: minAvailable 3 leaves no pod"),
    "pdb selects nothing": (lambda o: _set(_first(o, "PodDisruptionBudget"),
                                           ("spec", "selector", "matchLabels",
                                            "app.kubernetes.io/name"), "other"),
                            "PodDisruptionBudget/caas: selects no pods"),
    "missing secret key": (lambda o: _set(_server_container(o),
                                          ("env", 0, "valueFrom", "secretKeyRef", "key"),
                                          "CAAS_NOPE"),
                           "Deployment/caas: container caas: Secret caas-secrets has no key "
                           "CAAS_NOPE"),
    "undeclared secret": (lambda o: _set(_volume(o, "master-keys-secret"),
                                         ("secret", "secretName"), "elsewhere"),
                          "Deployment/caas: volume master-keys-secret: Secret elsewhere is "
                          "declared nowhere"),
    "service selects nothing": (lambda o: _set(_first(o, "Service", "caas"),
                                               ("spec", "selector",
                                                "app.kubernetes.io/component"), "web"),
                                "Service/caas: its selector matches no pods"),
    "route over HTTP/1": (lambda o: _first(o, "Service", "caas")["spec"]["ports"][0].pop(
                              "appProtocol"),
                          "HTTPRoute/caas: backend caas:8080 is not HTTP/2"),
    "no network policy": (lambda o: o.remove(_first(o, "NetworkPolicy", "caas")),
                          "Deployment/caas: no NetworkPolicy of its own selects its pods"),
    "no default deny": (lambda o: o.remove(_first(o, "NetworkPolicy", "default-deny")),
                        "NetworkPolicy: no default-deny policy"),
    "replicas under an hpa": (lambda o: _set(_first(o, "Deployment", "caas"),
                                             ("spec", "replicas"), 3),
                              "Deployment/caas: sets replicas"),
    "token mounted": (lambda o: _set(_first(o, "Deployment", "caas"),
                                     ("spec", "template", "spec",
                                      "automountServiceAccountToken"), True),
                      "Deployment/caas: mounts a ServiceAccount token"),
    "shared operator token": (lambda o: _server_container(o)["env"].pop(0),
                              "Deployment/caas: several replicas need one CAAS_OPERATOR_TOKEN"),
    "embedded store": (lambda o: _set(_first(o, "ConfigMap"), ("data", "CAAS_STORE"),
                                      "sqlite"),
                       "Deployment/caas: several replicas cannot share the embedded engines: "
                       "CAAS_STORE"),
}

@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_the_policy_names_what_breaks_it(breakage: str) -> None:
    objects = copy.deepcopy(rendered("prod"))
    break_it, expected = BREAKAGES[breakage]
    break_it(objects)
    problems = policy_violations(objects)
    assert any(p.startswith(expected) for p in problems), problems


def test_the_policy_catches_a_bad_engine() -> None:
    """The engines' StatefulSets are held to the same rules (a privileged init
    container, as Elasticsearch guides suggest for vm.max_map_count, is refused)."""
    objects = copy.deepcopy(rendered("dev"))
    elastic = _first(objects, "StatefulSet", "caas-elasticsearch")
    elastic["spec"]["template"]["spec"]["initContainers"] = [{
        "name": "sysctl", "image": "busybox:1.36",
        "command": ["sysctl", "-w", "vm.max_map_count=262144"],
        "securityContext": {"privileged": True, "runAsUser": 0}}]
    problems = policy_violations(objects)
    where = "StatefulSet/caas-elasticsearch: container sysctl"
    assert f"{where}: runs as root or as no numeric user (0)" in problems
    assert f"{where}: privileged is not false" in problems
    assert f"{where}: no requests for cpu, memory" in problems


def test_the_schemas_catch_a_misspelt_field() -> None:
    objects = rendered("prod")
    deployment = _first(objects, "Deployment", "caas")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    assert schema_errors(deployment, VERSIONS[-1])
    route = _first(objects, "GRPCRoute")
    route["spec"]["rules"][0]["timeouts"] = {"request": "0s"}  # HTTPRoute has them; not it
    assert any("timeouts" in e for e in schema_errors(route, VERSIONS[-1]))
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert schema_errors(unknown, VERSIONS[-1]) == [
        "Widget/w: no schema for example.com/v1 Widget (a custom resource: vendor its CRD's "
        "schema with deploy/k8s/schemas/extract.py)"]
