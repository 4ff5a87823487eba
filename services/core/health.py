"""What the process knows of its own health, for the gRPC health service (and, later,
metrics): the state of each component, and the background tasks that keep running.

- `Health` holds one state per component ("realtime-fanout", "store-writes", …): ok,
  or down with a reason. A change is logged once (WARNING when a component goes down,
  INFO when it is back) and passed to the listeners, which the server maps to the
  health service: each component is a health service name of its own
  (`caas.component.<name>`), and the overall status ("") is NOT_SERVING while a
  component that readiness depends on is down.
- `Background` runs the process's long-running tasks so that none dies silently: a
  task that raises or returns is restarted after a delay growing from 0.1 s to 5 s,
  and its component is down until the task says it works again (`ok()`). It also
  runs the probes of the dependencies readiness needs (`probe`): a check each second
  that must answer within two, so that readiness flips within seconds of a dependency
  dying, and back when it returns, with no client call needed to find out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("caas.health")
CLOSE_SECONDS = 5.0  # how long closing waits for the background tasks to stop

Listener = Callable[[str, bool, bool], None]  # (component, ok, readiness depends on it)
RESTART_FIRST = 0.1
RESTART_MAX = 5.0
SERVING = "serving"  # the process's own component: down once it drains
PROBE_EVERY = 1.0  # seconds between a dependency's checks
PROBE_TIMEOUT = 2.0  # longest a check may take before the dependency counts as down


@dataclass
class Component:
    ok: bool = True
    reason: str = ""
    readiness: bool = False  # the process is not ready while this is down


class Health:
    def __init__(self) -> None:
        self._components: dict[str, Component] = {}
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Call `listener` with every component's state now and on every change."""
        self._listeners.append(listener)
        for name, component in self._components.items():
            listener(name, component.ok, component.readiness)

    def register(self, name: str, *, readiness: bool = False) -> None:
        if name not in self._components:
            self._components[name] = Component(readiness=readiness)
            self._tell(name)

    def down(self, name: str, reason: str) -> None:
        """`name` does not work (logged the first time only)."""
        component = self._components.setdefault(name, Component())
        if component.ok:
            component.ok, component.reason = False, reason
            log.warning("%s is down: %s", name, reason,
                        extra={"component": name, "reason": reason})
            self._tell(name)

    def up(self, name: str) -> None:
        """`name` works (logged when it was down)."""
        component = self._components.setdefault(name, Component())
        if not component.ok:
            component.ok, component.reason = True, ""
            log.info("%s is back", name, extra={"component": name})
            self._tell(name)

    def failed(self, name: str, error: BaseException) -> None:
        """`name` failed with `error`: down (logged once), the stack at DEBUG."""
        log.debug("%s failed", name, exc_info=error)
        self.down(name, f"{type(error).__name__}: {error}")

    def ready(self) -> bool:
        """Whether every component readiness depends on works."""
        return all(c.ok for c in self._components.values() if c.readiness)

    def not_ready(self) -> list[str]:
        """The components readiness depends on that are down, by name."""
        return sorted(name for name, c in self._components.items()
                      if c.readiness and not c.ok)

    def states(self) -> dict[str, tuple[bool, str]]:
        return {name: (c.ok, c.reason) for name, c in self._components.items()}

    def _tell(self, name: str) -> None:
        component = self._components[name]
        for listener in self._listeners:
            listener(name, component.ok, component.readiness)


class Background:
    """The process's long-running tasks, supervised (see the module's docstring)."""

    def __init__(self, health: Health) -> None:
        self._health = health
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, work: Callable[[Callable[[], None]], Awaitable[None]]) -> None:
        """Run `work(ok)` for the life of the process; `work` calls `ok()` whenever it
        has shown that it works (connected, subscribed, a round done)."""
        self._health.register(name)
        self._tasks[name] = asyncio.create_task(self._supervise(name, work), name=name)

    def probe(self, name: str, check: Callable[[], Awaitable[object]], *,
              readiness: bool = True, every: float = PROBE_EVERY,
              timeout: float = PROBE_TIMEOUT) -> None:
        """Check a dependency every `every` seconds: `name` is up while `check` answers
        within `timeout`, down (with the reason) while it fails or takes longer."""
        self._health.register(name, readiness=readiness)
        self._tasks[name] = asyncio.create_task(self._probe(name, check, every, timeout),
                                                name=f"probe {name}")

    async def _probe(self, name: str, check: Callable[[], Awaitable[object]],
                     every: float, limit: float) -> None:
        while True:
            try:
                await asyncio.wait_for(check(), limit)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                self._health.down(name, f"no answer within {limit:g} s")
            except Exception as error:
                self._health.failed(name, error)
            else:
                self._health.up(name)
            await asyncio.sleep(every)

    async def _supervise(self, name: str,
                         work: Callable[[Callable[[], None]], Awaitable[None]]) -> None:
        delay = RESTART_FIRST

        def ok() -> None:
            nonlocal delay
            delay = RESTART_FIRST
            self._health.up(name)

        while True:
            try:
                await work(ok)
                reason = "ended"
            except asyncio.CancelledError:
                raise
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
                log.debug("%s failed", name, exc_info=True)
            self._health.down(name, f"{reason}; restarting")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX)

    async def close(self) -> None:
        """Cancel every task and wait for them, at most CLOSE_SECONDS: a task still
        running then is left behind and named in the log, so a shutdown is bounded."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
            for task in stuck:
                log.warning("background task did not stop when cancelled",
                            extra={"task": task.get_name()})
        self._tasks.clear()
