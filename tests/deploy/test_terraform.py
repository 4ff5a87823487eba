"""deploy/terraform: formatted as `terraform fmt` wants, loaded by Terraform itself, and
checked for what `terraform validate` would catch without the providers' schemas.

What runs where (docs/deploy/cloud.md, "What is validated"):
- `terraform fmt -check` and Terraform's own configuration loader (`terraform get` then
  `terraform providers`, in a copy) run everywhere, offline, with the venv's Terraform
  (1.0.3): syntax, block types, type constraints and meta-arguments of every module and
  of the example, module sources, and the provider requirements of the whole tree.
- `terraform init` + `terraform validate` need the providers (AWS, MongoDB Atlas, Elastic
  Cloud, random) from the Terraform registry, which this workplace cannot reach: the test
  runs them where the registry answers and is skipped, saying so, where it does not.
- Parsed with python-hcl2, the checks the loader leaves to validate: module calls against
  the modules' variables, every reference (var., local., module.X.Y, resources and data
  sources) declared, outputs that carry secrets marked sensitive, nothing newer than
  Terraform 1.0, no secret written in a file, and the example's outputs naming real CAAS
  settings and the variables the release workflow reads.
Arguments inside resource blocks (the providers' schemas) are what stays unchecked here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.conftest import repo_root

ROOT = repo_root() / "deploy" / "terraform"
MODULE_NAMES = {"network", "cluster", "database", "redis", "kafka", "object_storage",
                "search", "dns"}
EXAMPLE = ROOT / "examples" / "production"
TERRAFORM = str(Path(sys.prefix) / "bin" / "terraform")
META_ARGUMENTS = {"source", "version", "providers", "count", "for_each", "depends_on"}
# Releases the tree must load in: the venv's (the project's offline tool) and current ones.
TERRAFORM_RELEASES = ["1.0.3", "1.5.7", "1.11.4", "1.14.0"]
# Language added after Terraform 1.0, which its parser refuses or misreads.
NEWER_BLOCKS = {"moved", "import", "check", "removed", "ephemeral", "action", "list"}
NEWER_FUNCTIONS = {"startswith", "endswith", "strcontains", "timecmp", "plantimestamp",
                   "templatestring", "issensitive", "ephemeralasnull", "base64gunzip"}
# An output whose value holds one of these must be sensitive.
SECRET_VALUES = re.compile(
    r"random_password\.|aws_iam_access_key\.\w+\.secret|\.(password|secret_access_key|"
    r"auth_token|mongodb_url|redis_url|elastic_password|elasticsearch_password)\b")
SECRET_ATTRIBUTES = re.compile(
    r"^\s*(password|auth_token|secret|secret_key|secret_access_key|access_key|api_key|"
    r"private_key|token)\s*=\s*\"", re.MULTILINE)


def named(block: dict[str, Any]) -> dict[str, Any]:
    """A parsed block's entries, without python-hcl2's own (__is_block__, __comments__)."""
    return {key: value for key, value in block.items() if not key.startswith("__")}


def unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


@dataclass
class Config:
    """One directory of .tf files, as python-hcl2 reads it."""

    path: Path
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: set[str] = field(default_factory=set)
    resources: set[tuple[str, str]] = field(default_factory=set)
    data: set[tuple[str, str]] = field(default_factory=set)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    providers: set[str] = field(default_factory=set)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    blocks: set[str] = field(default_factory=set)
    documents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def required_providers(self) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for block in self.terraform:
            for group in block.get("required_providers", []):
                for name, spec in named(group).items():
                    found[name] = {key: unquote(value) for key, value in named(spec).items()}
        return found

    @property
    def required_version(self) -> str:
        (version,) = [unquote(block["required_version"]) for block in self.terraform
                      if "required_version" in block]
        return version


def load(path: Path) -> Config:
    config = Config(path)
    for file in sorted(path.glob("*.tf")):
        document = hcl2.loads(file.read_text())
        config.documents.append(document)
        config.blocks |= set(named(document))
        for block in document.get("variable", []):
            config.variables |= {unquote(name): body for name, body in named(block).items()}
        for block in document.get("output", []):
            config.outputs |= {unquote(name): body for name, body in named(block).items()}
        for block in document.get("locals", []):
            config.locals |= set(named(block))
        for kind, target in (("resource", config.resources), ("data", config.data)):
            for block in document.get(kind, []):
                for type_, bodies in named(block).items():
                    target |= {(unquote(type_), unquote(name)) for name in named(bodies)}
        for block in document.get("module", []):
            config.modules |= {unquote(name): body for name, body in named(block).items()}
        for block in document.get("provider", []):
            config.providers |= {unquote(name) for name in named(block)}
        config.terraform += document.get("terraform", [])
    return config


CONFIGS = {path: load(path) for path in [*sorted((ROOT / "modules").iterdir()), EXAMPLE]
           if path.is_dir()}
MODULES = {path.name: config for path, config in CONFIGS.items() if path.parent.name == "modules"}
ids = [str(path.relative_to(ROOT)) for path in CONFIGS]


def strings(value: Any, skip: frozenset[str] = frozenset({"description", "error_message"})
            ) -> Iterator[str]:
    """Every string in a parsed value (expressions come as "${...}" strings), but prose."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item, skip)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                yield from strings(item, skip)


def module_source(config: Config, call: dict[str, Any]) -> Config:
    source = (config.path / unquote(call["source"])).resolve()
    assert source in CONFIGS, f"{config.path.name}: no module at {source}"
    return CONFIGS[source]


# ---- Terraform itself -----------------------------------------------------------------

def terraform(*args: str, cwd: Path, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    settings = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
                "TF_INPUT": "0", "TF_CLI_CONFIG_FILE": os.devnull, **(env or {})}
    return subprocess.run([TERRAFORM, *args, "-no-color"], cwd=cwd, env=settings,
                          check=False, capture_output=True, text=True, timeout=300)


def copy_without_backend(tmp_path: Path) -> Path:
    """The tree copied (so no .terraform lands in the repository), the example's backend
    left out: `terraform providers` would otherwise want the S3 backend initialised."""
    tree = tmp_path / "terraform"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    versions = tree / EXAMPLE.relative_to(ROOT) / "versions.tf"
    text, count = re.subn(r'\n\s*backend "s3" \{\}\n', "\n", versions.read_text())
    assert count == 1
    versions.write_text(text)
    return tree


def test_the_tree_is_formatted() -> None:
    result = terraform("fmt", "-check", "-recursive", "-diff", str(ROOT), cwd=repo_root())
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", list(CONFIGS), ids=ids)
def test_terraform_loads_the_configuration(path: Path, tmp_path: Path) -> None:
    here = copy_without_backend(tmp_path) / path.relative_to(ROOT)
    got = terraform("get", cwd=here)
    assert got.returncode == 0, got.stdout + got.stderr
    loaded = terraform("providers", cwd=here)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    for name, spec in CONFIGS[path].required_providers.items():
        assert f"provider[registry.terraform.io/{spec['source']}]" in loaded.stdout, name


# `terraform init` and `validate` need the providers from the Terraform registry, which
# these machines cannot reach: the workflow's `terraform` job runs them
# (.github/workflows/ci.yml; test_the_ci_workflow_validates_terraform checks it does).


# ---- Layout and versions --------------------------------------------------------------

def test_every_module_is_there_with_its_files() -> None:
    assert set(MODULES) == MODULE_NAMES
    for name in MODULE_NAMES:
        for file in ("versions.tf", "variables.tf", "main.tf", "outputs.tf"):
            assert (ROOT / "modules" / name / file).is_file(), f"{name}/{file}"
    assert EXAMPLE.joinpath("production.tfvars.example").is_file()


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def admits(constraints: str, release: str) -> bool:
    """Terraform's version constraint syntax (>=, >, <=, <, =, !=, ~>), comma-joined."""
    wanted = version(release)
    for constraint in constraints.split(","):
        match = re.fullmatch(r"\s*(>=|<=|~>|!=|>|<|=)?\s*([\d.]+)\s*", constraint)
        assert match, f"not a version constraint: {constraint}"
        operator, bound = match.groups()
        parts = version(bound)
        padded = parts + (0,) * (len(wanted) - len(parts))
        if operator == "~>":
            upper = (*parts[:-2], parts[-2] + 1) if len(parts) > 1 else (parts[0] + 1,)
            ok = padded <= wanted < upper + (0,) * (len(wanted) - len(upper))
        else:
            ok = {">=": wanted >= padded, ">": wanted > padded, "<=": wanted <= padded,
                  "<": wanted < padded, "!=": wanted != padded}.get(operator or "=",
                                                                    wanted == padded)
        if not ok:
            return False
    return True


def test_version_constraints_read_as_meant() -> None:
    assert admits(">= 1.0", "1.0.3") and admits(">= 1.0", "1.14.0")
    assert admits(">= 6.0, < 7.0", "6.20.1") and not admits(">= 6.0, < 7.0", "7.0.0")
    assert admits("~> 1.2", "1.9.0") and not admits("~> 1.2", "2.0.0")
    assert admits("~> 1.2.3", "1.2.9") and not admits("~> 1.2.3", "1.3.0")


@pytest.mark.parametrize("path", list(CONFIGS), ids=ids)
def test_versions_admit_old_and_current_terraform_and_bound_each_provider(path: Path) -> None:
    config = CONFIGS[path]
    for release in TERRAFORM_RELEASES:
        assert admits(config.required_version, release), release
    used = {type_.split("_")[0] for type_, _ in config.resources | config.data}
    declared = config.required_providers
    assert used <= set(declared), f"providers used but not required: {used - set(declared)}"
    for name, spec in declared.items():
        assert re.fullmatch(r"[a-z0-9-]+/[a-z0-9-]+", spec["source"]), name
        assert "<" in spec["version"] or "~>" in spec["version"], (
            f"{name}: bound the major version, so that a new one is a deliberate change")
    for call in config.modules.values():
        child = module_source(config, call).required_providers
        for name, spec in child.items():  # a root must agree with its modules' sources
            assert declared[name]["source"] == spec["source"], name


def test_providers_are_configured_in_the_example_only() -> None:
    for name, config in MODULES.items():
        assert not config.providers, f"module {name} configures a provider"
    example = CONFIGS[EXAMPLE]
    assert example.providers == set(example.required_providers)
    for document in example.documents:
        for block in document.get("provider", []):
            for body in named(block).values():
                assert not {"access_key", "secret_key", "private_key", "public_key",
                            "api_key", "token"} & set(body), "credentials come from the env"


# ---- Variables, outputs, references ---------------------------------------------------

@pytest.mark.parametrize("path", list(CONFIGS), ids=ids)
def test_variables_are_typed_described_and_validated_alone(path: Path) -> None:
    for name, body in CONFIGS[path].variables.items():
        assert "type" in body, f"{name} has no type"
        assert unquote(body.get("description", "")).strip(), f"{name} has no description"
        assert "nullable" not in body, "nullable is Terraform 1.1"
        assert "optional(" not in body["type"], "optional attributes are Terraform 1.3"
        for validation in body.get("validation", []):
            # Terraform before 1.9 lets a validation refer to its own variable only.
            assert set(re.findall(r"\bvar\.(\w+)", validation["condition"])) == {name}
            message = unquote(validation["error_message"])
            assert message[0].isupper() and message.endswith("."), message
        # Secrets are generated (random_password) or issued by the services; none is
        # passed in, so none can sit in a .tfvars file.
        assert not re.search(r"password|secret|token|private_key", name), name


@pytest.mark.parametrize("path", list(CONFIGS), ids=ids)
def test_outputs_are_described_and_secrets_sensitive(path: Path) -> None:
    for name, body in CONFIGS[path].outputs.items():
        assert unquote(body.get("description", "")).strip(), f"{name} has no description"
        carries_secret = any(SECRET_VALUES.search(text) for text in strings(body["value"]))
        if carries_secret:
            assert body.get("sensitive") is True, f"output {name} carries a secret"


@pytest.mark.parametrize("path", list(CONFIGS), ids=ids)
def test_module_calls_match_the_modules_variables(path: Path) -> None:
    config = CONFIGS[path]
    for call_name, call in config.modules.items():
        module = module_source(config, call)
        given = set(named(call)) - META_ARGUMENTS
        unknown = given - set(module.variables)
        assert not unknown, f"module.{call_name}: no variables {unknown}"
        required = {name for name, body in module.variables.items() if "default" not in body}
        assert required <= given, f"module.{call_name}: missing {required - given}"


@pytest.mark.parametrize("path", list(CONFIGS), ids=ids)
def test_every_reference_is_declared(path: Path) -> None:
    config = CONFIGS[path]
    providers = set(config.required_providers)
    texts = [text for document in config.documents for text in strings(document)]
    for text in texts:
        for name in re.findall(r"(?<![\w.])var\.(\w+)", text):
            assert name in config.variables, f"var.{name}"
        for name in re.findall(r"(?<![\w.])local\.(\w+)", text):
            assert name in config.locals, f"local.{name}"
        for call, output in re.findall(r"(?<![\w.])module\.(\w+)\.(\w+)", text):
            assert call in config.modules, f"module.{call}"
            outputs = module_source(config, config.modules[call]).outputs
            assert output in outputs, f"module.{call}.{output}"
        for type_, name in re.findall(r"(?<![\w.])data\.(\w+)\.(\w+)", text):
            assert (type_, name) in config.data, f"data.{type_}.{name}"
        for type_, name in re.findall(r"(?<![\w.])([a-z][a-z0-9]*_\w+)\.(\w+)", text):
            if type_.split("_")[0] in providers:
                assert (type_, name) in config.resources, f"{type_}.{name}"


@pytest.mark.parametrize("path", list(CONFIGS), ids=ids)
def test_nothing_newer_than_terraform_1_0(path: Path) -> None:
    config = CONFIGS[path]
    assert not config.blocks & NEWER_BLOCKS
    for document in config.documents:
        for kind in ("resource", "data"):
            for block in document.get(kind, []):
                for bodies in named(block).values():
                    for body in named(bodies).values():
                        for lifecycle in body.get("lifecycle", []):
                            assert not {"precondition", "postcondition",
                                        "replace_triggered_by"} & set(lifecycle)
        for text in strings(document):
            used = set(re.findall(r"\b(\w+)\(", text)) & NEWER_FUNCTIONS
            assert not used, f"functions newer than Terraform 1.0: {used}"
            assert "provider::" not in text


def test_no_secret_is_written_in_a_file() -> None:
    for file in [*ROOT.rglob("*.tf"), *ROOT.rglob("*.tfvars*")]:
        text = file.read_text()
        assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text), file
        assert "-----BEGIN" not in text, file
        assert not SECRET_ATTRIBUTES.search(text), f"{file}: a literal secret"
    assert not list(ROOT.rglob("*.tfvars")), "only .tfvars.example files are kept"
    assert not list(ROOT.rglob("*.tfstate*")), "state lives in the S3 backend"


# ---- The example ----------------------------------------------------------------------

def test_the_example_calls_every_module() -> None:
    sources = {Path(unquote(call["source"])).name
               for call in CONFIGS[EXAMPLE].modules.values()}
    assert sources == MODULE_NAMES


def test_the_tfvars_example_sets_the_example_variables() -> None:
    values = named(hcl2.loads((EXAMPLE / "production.tfvars.example").read_text()))
    variables = CONFIGS[EXAMPLE].variables
    assert set(values) <= set(variables)
    required = {name for name, body in variables.items() if "default" not in body}
    assert required <= set(values), required - set(values)


def output_keys(name: str) -> set[str]:
    (value,) = [body["value"] for output, body in CONFIGS[EXAMPLE].outputs.items()
                if output == name]
    return set(named(value))


def test_the_example_outputs_name_caas_settings() -> None:
    reference = (repo_root() / "docs" / "configuration.md").read_text()
    settings = set(re.findall(r"^\| `(CAAS_[A-Z0-9_]+)`", reference, flags=re.MULTILINE))
    config, secrets = output_keys("caas_config"), output_keys("caas_secrets")
    assert config | secrets <= settings, (config | secrets) - settings
    assert not config & secrets
    assert {"CAAS_MONGODB_URL", "CAAS_REDIS_URL", "CAAS_MEDIA_S3_SECRET_KEY"} <= secrets
    assert {"CAAS_STORE", "CAAS_KAFKA_BOOTSTRAP", "CAAS_KAFKA_TLS", "CAAS_MEDIA_STORE",
            "CAAS_SEARCH_ENGINE", "CAAS_SEARCH_ELASTICSEARCH_URL"} <= config


def test_the_example_outputs_the_variables_the_release_workflow_reads() -> None:
    workflow = (repo_root() / ".github" / "workflows" / "release.yml").read_text()
    read = set(re.findall(r"\bvars\.([A-Z0-9_]+)", workflow))
    optional = {"K8S_NAMESPACE", "K8S_DEPLOYMENT"}  # with defaults in the workflow
    assert output_keys("github_environment_variables") == read - optional
