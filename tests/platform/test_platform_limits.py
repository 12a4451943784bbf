"""Limits as settings (every one from its variable) and the per-tenant token bucket."""

from __future__ import annotations

import pytest

from iiot_platform.limits import TenantRateLimiter
from iiot_platform.settings import LIMITS, PlatformSettings
from iiotlab.errors import ConfigError

pytestmark = pytest.mark.unit


def test_every_limit_is_read_from_its_variable() -> None:
    environ = {variable: "7" for variable, _ in LIMITS.values()}
    settings = PlatformSettings.from_env(environ)
    for field_name in LIMITS:
        assert getattr(settings, field_name) == 7, field_name


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"IIOTLAB_PLATFORM_INGEST_BURST": "lots"}, "IIOTLAB_PLATFORM_INGEST_BURST"),
        ({"IIOTLAB_PLATFORM_QUEUE_BYTES": "-1"}, "IIOTLAB_PLATFORM_QUEUE_BYTES"),
    ],
)
def test_bad_limits_name_the_variable(environ: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        PlatformSettings.from_env(environ)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_per_tenant() -> None:
    clock = Clock()
    limiter = TenantRateLimiter(rate=10, burst=5, clock=clock)
    assert [limiter.allow("a") for _ in range(7)] == [True] * 5 + [False] * 2
    assert all(limiter.allow("b") for _ in range(5))  # another tenant has its own bucket
    clock.now += 0.35  # 3.5 tokens back
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    clock.now += 60  # refills to the burst, never beyond
    assert sum(limiter.allow("a") for _ in range(10)) == 5
    assert limiter.dropped == {"a": 2 + 1 + 5} and limiter.dropped_total == 8


def test_rate_zero_turns_the_limit_off() -> None:
    limiter = TenantRateLimiter(rate=0, burst=1)
    assert all(limiter.allow("a") for _ in range(1000)) and limiter.dropped == {}
