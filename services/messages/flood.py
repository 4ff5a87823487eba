"""Flood control: how many messages one user may send into one conversation per rate-limit
window (`Plan.sends_per_conversation`), counted by the rate limiter the gateway uses
(shared through Redis by every process when configured)."""

from __future__ import annotations

from services.apps.actions import AppPlans
from services.gateway.gateway import spend
from services.gateway.ratelimit import Bucket, RateLimiter


class SendRate:
    def __init__(self, limiter: RateLimiter, plans: AppPlans) -> None:
        self._limiter = limiter
        self._plans = plans

    async def check(self, app_id: str, conversation_id: str, user_id: str) -> None:
        """Count one message of `user_id` into the conversation; RESOURCE_EXHAUSTED,
        RATE_LIMITED (with when to retry) when their budget there is spent."""
        limit = (await self._plans.plan_of(app_id)).sends_per_conversation
        tag = "{" + app_id + "}"  # one Redis Cluster slot per app, as the gateway's
        await spend(self._limiter, [Bucket(f"{tag}:{user_id}:send:{conversation_id}", limit,
                                           f"user:{app_id}/{user_id}")],
                    "too many messages into this conversation",
                    {"conversation": conversation_id},
                    "messages per window into one conversation")
