"""Shared pytest set-up: the --run-e2e switch and the tier markers."""

from __future__ import annotations

import pytest

from iiotlab.mqtt import BrokerKind
from tests.broker_kinds import BROKER_KINDS


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> BrokerKind:
    """The broker kind under test; parametrises every test that asks for it."""
    kind: BrokerKind = request.param
    return kind


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-e2e", action="store_true", default=False, help="run e2e tests (compose stack)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-e2e"):
        return
    skip = pytest.mark.skip(reason="e2e tests need --run-e2e and a Docker engine")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)
