"""localstripe, the Stripe API emulator billing is tested against (a test server only:
GPL), in a process group of its own on a free port.

It has no host or data-directory option: it binds `::` (every interface) and pickles
its whole store to the hard-coded path /tmp/localstripe.pickle (neither the working
directory nor TMPDIR changes it) on every write, and on every POST, PUT and DELETE.
So it is started through a one-line wrapper that turns that dump into a no-op: runs in
parallel cannot overwrite each other's file, and a write costs no pickling of the whole
store (which grows with every test). With `--from-scratch` the file is never read.

Registered webhooks live outside the store: `reset()` keeps them
(`unregister_webhook` silences one).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.support.processes import Process, free_port, wait_until

SECRET_KEY = "sk_test_caas"  # any sk_… key is accepted
PUBLISHABLE_KEY = "pk_test_caas"  # any pk_… key is accepted where Stripe.js uses one

# localstripe's own entry point (localstripe.server.start reads --port, --from-scratch),
# with the store's dump to /tmp/localstripe.pickle switched off.
_RUN = ("import sys, localstripe.resources as r; "
        "r.Store.dump_to_disk = lambda self: None; "
        "sys.argv[0] = 'localstripe'; "
        "from localstripe.server import start; start()")


@dataclass
class LocalStripe:
    process: Process
    url: str  # http://127.0.0.1:PORT, the API base

    def stop(self) -> None:
        self.process.stop()

    def request(self, method: str, path: str, body: dict[str, object] | None = None,
                key: str = SECRET_KEY) -> tuple[int, dict[str, Any]]:
        """(status, JSON answer) of one call; `body` is sent as JSON (which localstripe
        reads like a form, as Stripe.js's stand-in sends it)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            if key.startswith("sk_") else {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw.decode(errors="replace")}
        return status, parsed if isinstance(parsed, dict) else {"value": parsed}

    def confirm_card_setup(self, setup_intent: str, client_secret: str, publishable_key: str,
                           number: str = "") -> tuple[int, dict[str, Any]]:
        """What Stripe.js does with the card the user typed (localstripe's stand-in of
        confirmCardSetup): only the publishable key and the client secret; without
        `number`, the cardholder's second confirmation (3-D Secure)."""
        body: dict[str, object] = {"key": publishable_key, "use_stripe_sdk": True,
                                   "client_secret": client_secret}
        if number:
            body["payment_method_data"] = {"type": "card", "card": {
                "number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}}
        return self.request("POST", f"/v1/setup_intents/{setup_intent}/confirm", body,
                            key=publishable_key)

    def register_webhook(self, url: str, secret: str, webhook_id: str = "caas",
                         events: list[str] | None = None) -> None:
        """Have every event (or those of `events`) posted to `url`, signed with `secret`
        (the same id again replaces the registration)."""
        body: dict[str, object] = {"url": url, "secret": secret}
        if events is not None:
            body["events"] = events
        status, answer = self.request("POST", f"/_config/webhooks/{webhook_id}", body)
        if status != 200:
            raise RuntimeError(f"registering a webhook: {status} {answer}")

    def unregister_webhook(self, webhook_id: str = "caas") -> None:
        """localstripe cannot forget a webhook: it is left listening for no event."""
        self.register_webhook("http://127.0.0.1:9/", "unused", webhook_id,
                              events=["caas.none"])

    def reset(self) -> None:
        """Empty the store (customers, intents, events …)."""
        status, answer = self.request("DELETE", "/_config/data")
        if status != 200:
            raise RuntimeError(f"resetting localstripe: {status} {answer}")


def start_localstripe() -> LocalStripe:
    port = free_port()
    process = Process([sys.executable, "-c", _RUN, "--port", str(port), "--from-scratch"],
                      name="localstripe")
    server = LocalStripe(process, f"http://127.0.0.1:{port}")

    def ready() -> bool:
        if not process.alive():
            raise RuntimeError("localstripe exited:\n" + "\n".join(process.lines[-30:]))
        try:
            return server.request("GET", "/v1/customers")[0] == 200
        except OSError:
            return False

    try:
        wait_until(ready, 30, "localstripe")
    except BaseException:
        process.stop()
        raise
    return server
