"""`iiotlab gateway ...`: run the reference gateway, or write a starting config."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from edge_gateway.config import GatewayConfig

logger = logging.getLogger("edge_gateway")

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="Gateway YAML file.")
FROM_ENV_OPTION = typer.Option(
    False,
    "--from-env",
    help="Build the config from IIOTLAB_MODBUS_HOST/PORT, IIOTLAB_OPCUA_URL, IIOTLAB_MQTT_URL, "
    "IIOTLAB_MQTT_CA, IIOTLAB_TENANT, IIOTLAB_DEVICE, IIOTLAB_DATASHEET, IIOTLAB_STATE_DIR.",
)
HEARTBEAT_OPTION = typer.Option(
    None, "--heartbeat", help="Seconds: publish every value at least this often (overrides)."
)
DEADBAND_OPTION = typer.Option(
    None,
    "--deadband",
    help="TAG=VALUE (engineering units) or TAG=VALUE% (of the tag's range); repeatable.",
)


def register(app: typer.Typer) -> None:
    """Add `iiotlab gateway run|init` (and `iiotlab gateway --config FILE`)."""
    gateway_app = typer.Typer(
        help="The reference edge gateway: Modbus/OPC UA -> MQTT with store-and-forward.",
        invoke_without_command=True,
        no_args_is_help=False,
    )

    @gateway_app.callback()
    def _default(
        ctx: typer.Context,
        config: Path | None = CONFIG_OPTION,
        from_env: bool = FROM_ENV_OPTION,
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        if config is None and not from_env:
            typer.echo(ctx.get_help())
            raise typer.Exit(0)
        _run(config, from_env)

    @gateway_app.command("run")
    def run(
        config: Path | None = CONFIG_OPTION,
        from_env: bool = FROM_ENV_OPTION,
        heartbeat: float | None = HEARTBEAT_OPTION,
        deadband: list[str] | None = DEADBAND_OPTION,
    ) -> None:
        """Run the gateway until SIGINT/SIGTERM (SIGUSR1 logs the counters)."""
        _run(config, from_env, heartbeat, deadband or [])

    @gateway_app.command("init")
    def init(
        datasheet: Path = typer.Option(..., "--datasheet", "-d", help="Datasheet JSON."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Write here (default: stdout)."),
        broker_url: str = typer.Option("mqtt://127.0.0.1:1883", "--broker-url"),
        prefer: str = typer.Option("modbus", "--prefer", help="modbus or opcua"),
    ) -> None:
        """Write a starting gateway config for every tag of a datasheet."""
        from edge_gateway.config import GatewayConfig
        from edge_gateway.config_builders import config_to_yaml
        from iiotlab.datasheet import load_datasheet
        from iiotlab.errors import ConfigError

        if prefer not in ("modbus", "opcua"):
            raise ConfigError(
                "unknown protocol", key="--prefer", value=prefer, expected="modbus or opcua"
            )
        config = GatewayConfig.from_datasheet(
            load_datasheet(datasheet),
            broker_url=broker_url,
            prefer=prefer,  # type: ignore[arg-type]
        )
        text = config_to_yaml(config)
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {out} ({len(config.tags)} tags)")

    app.add_typer(gateway_app, name="gateway")


def _run(
    config_path: Path | None,
    from_env: bool,
    heartbeat: float | None = None,
    deadbands: list[str] | None = None,
) -> None:
    from edge_gateway.config_builders import config_from_env, with_overrides
    from edge_gateway.config_loader import load_gateway_config
    from iiotlab.errors import ConfigError

    if (config_path is None) == (not from_env):
        raise ConfigError("give exactly one of --config FILE or --from-env", key="--config")
    config = config_from_env() if from_env else load_gateway_config(config_path)  # type: ignore[arg-type]
    config = with_overrides(config, heartbeat_s=heartbeat, deadbands=deadbands or [])
    asyncio.run(serve(config))


async def serve(config: GatewayConfig) -> None:
    """Run a Gateway until SIGINT or SIGTERM; publish `offline` on the way out."""
    from edge_gateway.gateway import Gateway

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    gateway = Gateway(config)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, gateway.log_counters)
    try:
        async with gateway:
            if gateway.metrics_port is not None:
                typer.echo(f"metrics: http://{config.metrics_host}:{gateway.metrics_port}/metrics")
            await stop.wait()
            logger.info("stopping on signal")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.remove_signal_handler(signum)
