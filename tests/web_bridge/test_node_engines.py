"""The Node.js the tests and scripts/test.sh run satisfies the `engines.node` range of
every package web_bridge installs (its own included), so `npm ci` (engine-strict, see
web_bridge/.npmrc) installs, and runs, what its packages were built for."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.web_bridge.nodejs import VENV_NODE, WEB, node

Version = tuple[int, int, int]
Bound = tuple[str, Version]  # (">=", v), (">", v), ("<", v) or ("<=", v)

COMPARATOR = re.compile(r"^(\^|~|>=|<=|>|<|=)?v?(\*|[xX]|\d+)(?:\.(\*|[xX]|\d+))?"
                        r"(?:\.(\*|[xX]|\d+))?$")


def _parts(groups: tuple[str | None, ...]) -> list[int]:
    """A partial version's given numbers: "14.17" -> [14, 17]; "1.x" -> [1]."""
    parts: list[int] = []
    for group in groups:
        if group is None or not group.isdigit():
            break
        parts.append(int(group))
    return parts


def _low(parts: list[int]) -> Version:
    major, minor, patch = (*parts, 0, 0, 0)[:3]
    return major, minor, patch


def _next(parts: list[int], index: int) -> Version:
    """The first version past `parts` at `index`: _next([1, 2], 1) == (1, 3, 0)."""
    bumped = [*parts[:index], parts[index] + 1]
    return _low(bumped)


def _bounds(comparator: str) -> list[Bound]:
    """One comparator of npm's semver ranges as bounds (prereleases are out of scope)."""
    match = COMPARATOR.match(comparator)
    if match is None:
        raise ValueError(f"a range form this check does not know: {comparator!r}")
    op, parts = match.group(1) or "=", _parts(match.groups()[1:])
    full, n = len(parts) == 3, len(parts)
    if n == 0:  # "*", ">=*", "^x": anything
        return [] if op in ("=", ">=", "<=", "^", "~") else [("<", (0, 0, 0))]
    if op == "=":
        return [(">=", _low(parts)), ("<=", _low(parts)) if full
                else ("<", _next(parts, n - 1))]
    if op == ">=":
        return [(">=", _low(parts))]
    if op == "<":
        return [("<", _low(parts))]
    if op == ">":
        return [(">", _low(parts))] if full else [(">=", _next(parts, n - 1))]
    if op == "<=":
        return [("<=", _low(parts))] if full else [("<", _next(parts, n - 1))]
    if op == "~":
        return [(">=", _low(parts)), ("<", _next(parts, 0 if n == 1 else 1))]
    # "^": below the next change of the leftmost non-zero number given (or of the last)
    index = next((i for i, part in enumerate(parts) if part), n - 1)
    return [(">=", _low(parts)), ("<", _next(parts, index))]


def _holds(version: Version, bound: Bound) -> bool:
    op, limit = bound
    return {">=": version >= limit, ">": version > limit,
            "<": version < limit, "<=": version <= limit}[op]


def satisfies(version: Version, spec: str) -> bool:
    """Whether `version` lies in the npm semver range `spec` (">=22", "^18 || >=20",
    "~1.2", "1.2.x", "1.2 - 2", "*"). Raises ValueError on a form it does not know, so
    that a new form fails here rather than passing unchecked."""
    for alternative in spec.split("||"):
        text = re.sub(r"(\^|~|>=|<=|>|<|=)\s+", r"\1", alternative.strip())
        hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", text)
        comparators = ([f">={hyphen[1]}", f"<={hyphen[2]}"] if hyphen
                       else text.split() or ["*"])
        if all(_holds(version, bound) for comparator in comparators
               for bound in _bounds(comparator)):
            return True
    return False


@pytest.mark.parametrize(("spec", "version", "expected"), [
    (">=22", (24, 19, 0), True),
    (">=22", (20, 20, 2), False),
    (">=14.17", (14, 17, 0), True),
    (">=14.17", (14, 16, 9), False),
    (">=6.0", (6, 0, 0), True),
    ("^18 || >=20", (18, 5, 0), True),
    ("^18 || >=20", (19, 9, 0), False),
    ("^18 || >=20", (22, 0, 0), True),
    ("^0.2.3", (0, 2, 9), True),
    ("^0.2.3", (0, 3, 0), False),
    ("^0.0.3", (0, 0, 4), False),
    ("^0.0", (0, 0, 9), True),
    ("^0.0", (0, 1, 0), False),
    ("^0", (0, 9, 0), True),
    ("^0", (1, 0, 0), False),
    ("^1.2", (1, 9, 0), True),
    ("=20.1", (20, 1, 5), True),
    ("20.1.2", (20, 1, 3), False),
    ("~1.2", (1, 2, 7), True),
    ("~1.2", (1, 3, 0), False),
    ("1.2.x", (1, 2, 5), True),
    ("1.2.x", (1, 3, 0), False),
    (">=18 <21", (20, 1, 0), True),
    (">=18 <21", (22, 0, 0), False),
    (">= 16", (16, 0, 0), True),
    ("<=20", (20, 9, 9), True),
    ("<=20", (21, 0, 0), False),
    (">20", (20, 9, 9), False),
    ("18 - 20.1", (20, 1, 9), True),
    ("18 - 20.1", (20, 2, 0), False),
    ("*", (1, 0, 0), True),
])
def test_the_range_check(spec: str, version: Version, expected: bool) -> None:
    assert satisfies(version, spec) is expected


def test_a_range_form_it_does_not_know_is_an_error() -> None:
    with pytest.raises(ValueError, match="does not know"):
        satisfies((22, 0, 0), ">=22.0.0-rc.1")


def _version(executable: str) -> Version:
    output = subprocess.run([executable, "--version"], capture_output=True, text=True,
                            check=True, timeout=30).stdout.strip()
    major, minor, patch = (int(part) for part in output.removeprefix("v").split("."))
    return major, minor, patch


def test_the_tests_node_satisfies_every_installed_packages_engines() -> None:
    version = _version(node())
    # npm, its scripts and scripts/test.sh run the venv's entry point: the same Node.
    assert _version(str(VENV_NODE)) == version
    lock = json.loads((WEB / "package-lock.json").read_text())
    ranges = {path or "web_bridge": entry["engines"]["node"]
              for path, entry in lock["packages"].items()
              if isinstance(entry.get("engines"), dict) and "node" in entry["engines"]}
    assert "node_modules/@bufbuild/protoc-gen-es" in ranges  # the lock has its engines
    unsatisfied = {path: spec for path, spec in ranges.items()
                   if not satisfies(version, spec)}
    assert unsatisfied == {}, f"node {'.'.join(map(str, version))} is outside these ranges"
