"""deploy/coturn/turnserver.conf as coturn reads it: a real turnserver started from it
(its ports and secret swapped for the test's, TLS off for want of certificates) takes
the credentials CAAS issues (services/calls/turn.py: IceConfig) and refuses expired
ones, and reads every line of it without complaint."""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aioice import stun, turn

from services.calls.turn import IceConfig, turn_credentials
from tests.support.processes import Process, wait_until
from tests.support.turn import listening_port, relay_range, stun_binding

CONFIG = Path(__file__).parents[2] / "deploy" / "coturn" / "turnserver.conf"
SECRET = "deploy-test-secret"


def configured(tmp_path: Path, port: int, low: int, high: int) -> Path:
    """The deployment's configuration with the test's ports, secret and files."""
    text = CONFIG.read_text()
    swaps = {"listening-port": str(port), "min-port": str(low), "max-port": str(high),
             "static-auth-secret": SECRET}
    for key, value in swaps.items():
        text, count = re.subn(rf"^{key}=.*$", f"{key}={value}", text, flags=re.M)
        assert count == 1, key
    text = re.sub(r"^(cert|pkey|tls-listening-port)=.*$", "", text, flags=re.M)
    text += (f"\nlistening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nno-tls\nno-dtls\n"
             f"pidfile={tmp_path / 'turnserver.pid'}\nuserdb={tmp_path / 'turndb'}\n")
    path = tmp_path / "turnserver.conf"
    path.write_text(text)
    return path


async def test_coturn_takes_the_configuration_and_caas_credentials(tmp_path: Path) -> None:
    executable = shutil.which("turnserver")
    assert executable is not None, "coturn is installed by scripts/test.sh"
    port = listening_port()
    low, high = relay_range()
    process = Process([executable, "-c", str(configured(tmp_path, port, low, high))],
                      cwd=tmp_path, name="turnserver")
    try:
        wait_until(lambda: stun_binding("127.0.0.1", port) is not None, 30, "turnserver")
        ice = IceConfig((f"stun:127.0.0.1:{port}",), (f"turn:127.0.0.1:{port}",), SECRET)
        servers, expire = ice.servers("app/call/alice/phone", datetime.now(UTC))
        assert expire is not None
        issued = servers[1]

        async def allocate(username: str, password: str) -> tuple[str, int]:
            transport, _ = await turn.create_turn_endpoint(
                asyncio.DatagramProtocol, ("127.0.0.1", port), username, password)
            relayed: tuple[str, int] = transport.get_extra_info("sockname")
            transport.close()
            return relayed

        _, relay_port = await allocate(issued.username, issued.credential)
        assert low <= relay_port <= high
        expired = turn_credentials(SECRET, "app/call/alice/phone",
                                   datetime.now(UTC) - timedelta(seconds=1))
        with pytest.raises(stun.TransactionFailed) as refused:
            await allocate(*expired)
        assert refused.value.response.attributes["ERROR-CODE"][0] == 401
    finally:
        process.stop()
    log = "\n".join(process.lines)
    for complaint in ("Bad configuration format", "unknown option", "CONFIG ERROR"):
        assert complaint not in log, log
