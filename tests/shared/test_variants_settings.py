"""Seed derivation and settings."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest

from iiotlab.errors import VariantError
from iiotlab.settings import DEVELOPMENT_COURSE_SECRET, Settings
from iiotlab.variants import derive_seed, variant_random

pytestmark = pytest.mark.unit


def test_seed_is_the_designed_hmac() -> None:
    expected = hmac.new(b"s3cret", b"edge-01:alice", hashlib.sha256).digest()[:8]
    assert derive_seed("s3cret", "edge-01", "alice") == int.from_bytes(expected, "big")


def test_seed_differs_per_student_lab_and_secret() -> None:
    seeds = {
        derive_seed("s", "edge-01", "alice"),
        derive_seed("s", "edge-01", "bob"),
        derive_seed("s", "edge-02", "alice"),
        derive_seed("t", "edge-01", "alice"),
    }
    assert len(seeds) == 4
    assert derive_seed("s", "edge-01", "alice") == derive_seed("s", "edge-01", "alice")


def test_streams_are_independent_and_repeatable() -> None:
    a = variant_random(42, "registers").random()
    assert a == variant_random(42, "registers").random()
    assert a != variant_random(42, "faults").random()


@pytest.mark.parametrize("student", ["", "a b", "x" * 65, "../etc", "-lead"])
def test_bad_ids_are_refused(student: str) -> None:
    with pytest.raises(VariantError, match="not a valid id"):
        derive_seed("s", "edge-01", student)


def test_settings_warn_without_course_secret(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings = Settings.from_env({})
    assert settings.uses_development_secret
    assert settings.course_secret == DEVELOPMENT_COURSE_SECRET
    assert "IIOTLAB_COURSE_SECRET" in caplog.text
    custom = Settings.from_env({"IIOTLAB_COURSE_SECRET": "x", "IIOTLAB_INFLUX_URL": "http://i"})
    assert not custom.uses_development_secret
    assert custom.influx_url == "http://i"
