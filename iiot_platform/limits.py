"""Per-tenant ingest rate limit: one token bucket per tenant, refilled with time.

With one MQTT subscription for every tenant, holding back one tenant's messages would
hold back everyone's; a tenant over its rate therefore has messages dropped (and counted),
and the others are untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

_MAX_BUCKETS = 10_000  # beyond this, full (idle) buckets are forgotten


@dataclass
class TokenBucket:
    tokens: float
    updated_s: float


class TenantRateLimiter:
    """`allow(tenant)` takes one token from the tenant's bucket: `rate` tokens a second,
    at most `burst` saved up. A rate of 0 turns the limit off."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self.dropped: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, tenant: str) -> bool:
        if not self.enabled:
            return True
        now = self._clock()
        bucket = self._buckets.get(tenant)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._forget_full(now)
            bucket = self._buckets[tenant] = TokenBucket(float(self.burst), now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated_s) * self.rate)
            bucket.updated_s = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        self.dropped[tenant] = self.dropped.get(tenant, 0) + 1
        return False

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def _forget_full(self, now: float) -> None:
        """A bucket that has refilled is the same as a new one: drop it to stay bounded."""
        for tenant, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated_s) * self.rate >= self.burst:
                del self._buckets[tenant]
