"""A persistent session: what is published while the platform is down is stored after."""

from __future__ import annotations

from pathlib import Path

from platform_helpers import eventually, publisher, telemetry

from iiot_platform.service import PlatformService
from iiot_platform.settings import PlatformSettings
from iiotlab.mqtt import Broker


def settings(broker: Broker, tmp_path: Path, persistent: bool) -> PlatformSettings:
    return PlatformSettings(
        broker_url=broker.url,
        data_dir=tmp_path / "platform",
        client_id="platform-under-test",
        mqtt_persistent_session=persistent,
    )


async def missed_while_down(broker: Broker, tmp_path: Path, persistent: bool) -> int:
    """Messages 1-20 while the platform runs, 21-50 while it is stopped; how many stored."""
    client = await publisher(broker.url)
    try:
        async with PlatformService(settings(broker, tmp_path, persistent)) as service:
            for seq in range(1, 21):
                await client.publish("iiot/t/d-1/telemetry", telemetry("d-1", seq))
            await eventually(lambda: service.ingestor.stats.points_stored == 20)
        for seq in range(21, 51):
            await client.publish("iiot/t/d-1/telemetry", telemetry("d-1", seq))
        async with PlatformService(settings(broker, tmp_path, persistent)) as service:
            if persistent:
                await eventually(lambda: service.ingestor.stats.points_stored == 30)
            else:
                await client.publish("iiot/t/d-1/telemetry", telemetry("d-1", 51))
                await eventually(lambda: service.ingestor.stats.points_stored >= 1)
            return await service.store.count("t", "d-1")
    finally:
        await client.disconnect()


async def test_a_persistent_session_stores_what_came_while_it_was_down(
    broker: Broker, tmp_path: Path
) -> None:
    assert await missed_while_down(broker, tmp_path, persistent=True) == 50


async def test_a_clean_session_misses_it(broker: Broker, tmp_path: Path) -> None:
    assert await missed_while_down(broker, tmp_path, persistent=False) == 21
