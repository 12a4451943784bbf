"""Commands of this part: `iiotlab up` and `iiotlab platform serve`."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer

from iiotlab.errors import ConfigError

platform_app = typer.Typer(help="The mini platform alone.", no_args_is_help=True)


async def _run_until_signalled(
    start: Callable[[], Awaitable[Any]],
    stop: Callable[[], Awaitable[None]],
    ready: Callable[[Any], None],
) -> None:
    """Start, report, wait for SIGINT/SIGTERM, stop."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        result = await start()
        ready(result)
        await stopping.wait()
    finally:
        await stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _print_info(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(info, separators=(",", ":")), nl=True)
        return
    typer.echo(f"iiotlab is up. UI: {info['ui']}  API docs: {info['api_docs']}")
    typer.echo(f"MQTT: {info['mqtt']}" + (f"  TLS: {info['mqtts']}" if "mqtts" in info else ""))
    if info.get("modbus"):
        typer.echo(f"Modbus TCP: {info['modbus']}  OPC UA: {info.get('opcua') or 'off'}")
    for device in info.get("devices", []):
        typer.echo(
            f"  device {device['device']} (plant {device['plant']}, unit {device['unit_id']})"
        )
    for user in info.get("mqtt_users", []):
        typer.echo(f"  MQTT user {user['username']} / {user['password']}: {user['url']}")
    for token in info.get("tokens", []):
        typer.echo(f"  API token ({token['role']}, tenant {token['tenant']}): {token['token']}")
    if not info.get("auth"):
        typer.echo(f"Auth is off: everything is open; tenant {info['tenant']!r}.")
    typer.echo("Press Ctrl-C to stop.")


def _tls_files(cert: Path | None, key: Path | None, ca: Path | None) -> Any:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError(
            "TLS needs both a certificate and its key",
            key="--tls-cert/--tls-key",
            expected="both options, PEM files",
        )
    from iiotlab.certs import TlsFiles

    for path in (cert, key, ca):
        if path is not None and not path.is_file():
            raise ConfigError("file not found", file=path)
    return TlsFiles(ca_file=ca or cert, cert_file=cert, key_file=key)


def up_command(
    plant: list[str] = typer.Option(
        [], "--plant", help="Plant to simulate (repeat; default: all five)."
    ),
    broker: str | None = typer.Option(
        None,
        "--broker",
        help="Use this broker (mqtt://[user:pass@]host:port) instead of the embedded one.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address every server binds."),
    port: int = typer.Option(8000, "--port", help="Platform HTTP port (0: a free port)."),
    mqtt_port: int = typer.Option(1883, "--mqtt-port", help="Embedded broker port (0: free)."),
    modbus_port: int = typer.Option(5020, "--modbus-port", help="Modbus TCP port (0: free)."),
    opcua_port: int = typer.Option(4840, "--opcua-port", help="OPC UA port (0: free)."),
    no_opcua: bool = typer.Option(False, "--no-opcua", help="Serve Modbus TCP only."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Where data goes (default: $IIOTLAB_DATA_DIR or ~/.iiotlab)."
    ),
    with_gateway: bool = typer.Option(
        False, "--with-gateway", help="Also run the reference gateway for every plant."
    ),
    auth: bool = typer.Option(
        False, "--auth", help="Require API tokens and MQTT passwords (printed at start)."
    ),
    tenant: str = typer.Option("demo", "--tenant", help="Tenant (student id) of the plants."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="Broker TLS certificate."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="Its private key."),
    tls_ca: Path | None = typer.Option(None, "--tls-ca", help="CA that signed it (for clients)."),
    tls_port: int = typer.Option(8883, "--tls-port", help="Broker TLS port (0: free)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on one line."),
) -> None:
    """Start broker, simulator, platform with UI (and gateways); Ctrl-C stops everything."""
    from iiot_platform.stack import ALL_PLANTS, LabStack, StackConfig
    from iiotlab.settings import Settings

    unknown = [p for p in plant if p not in ALL_PLANTS]
    if unknown:
        raise ConfigError(
            "unknown plant", key="--plant", value=unknown[0], expected=" or ".join(ALL_PLANTS)
        )
    settings = Settings.from_env()
    config = StackConfig(
        plants=tuple(plant) or ALL_PLANTS,
        tenant=tenant,
        host=host,
        port=port,
        broker_url=broker,
        mqtt_port=mqtt_port,
        modbus_port=modbus_port,
        opcua_port=opcua_port,
        enable_opcua=not no_opcua,
        data_dir=data_dir or settings.data_dir,
        with_gateway=with_gateway,
        auth=auth,
        tls=_tls_files(tls_cert, tls_key, tls_ca),
        tls_port=tls_port,
        course_secret=settings.course_secret,
    )
    stack = LabStack(config)

    async def start() -> dict[str, Any]:
        await stack.start()
        return stack.info()

    asyncio.run(_run_until_signalled(start, stack.stop, lambda info: _print_info(info, as_json)))


def serve_command(
    broker: str = typer.Option(
        "mqtt://127.0.0.1:1883", "--broker", help="Broker URL (mqtt[s]://[user:pass@]host:port)."
    ),
    ca_file: Path | None = typer.Option(None, "--ca-file", help="CA of an mqtts:// broker."),
    host: str = typer.Option("127.0.0.1", "--host", help="HTTP address."),
    port: int = typer.Option(8000, "--port", help="HTTP port (0: a free port)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Platform data folder."),
    tokens: Path | None = typer.Option(
        None, "--tokens", help="Tokens file (turns auth on): '<token> <role> [tenant]' lines."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the URLs as one JSON line."),
) -> None:
    """Run the platform alone against a broker."""
    from iiot_platform.settings import PlatformSettings, load_tokens
    from iiot_platform.stack import PlatformServer

    overrides: dict[str, Any] = {"broker_url": broker, "broker_ca_file": ca_file}
    if data_dir is not None:
        overrides["data_dir"] = data_dir / "platform"
    if tokens is not None:
        overrides.update(tokens=load_tokens(tokens), auth_enabled=True)
    server = PlatformServer(PlatformSettings.from_env(**overrides), host, port)

    async def start() -> dict[str, Any]:
        await server.start()
        base = f"http://{host}:{server.port}"
        return {"platform": base, "ui": base + "/", "api_docs": base + "/docs", "mqtt": broker}

    def ready(info: dict[str, Any]) -> None:
        typer.echo(json.dumps(info) if as_json else f"platform: {info['ui']} (Ctrl-C stops)")

    asyncio.run(_run_until_signalled(start, server.stop, ready))


def register(app: typer.Typer) -> None:
    """Add `iiotlab up` and `iiotlab platform serve`."""
    app.command("up")(up_command)
    platform_app.command("serve")(serve_command)
    app.add_typer(platform_app, name="platform")
