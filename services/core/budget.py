"""How actions count a call against rate-limit budgets the gateway could not know."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

# charge(app_id, user_id): count the current call against that user's budget for
# the RPC (and the app's, if the gateway has not counted it yet; a None user: the
# app's alone). Raises ResourceExhausted(RATE_LIMITED) when a budget is spent.
Charge = Callable[[str, str | None], Awaitable[None]]
