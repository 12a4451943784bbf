"""The `iiotlab broker` command: run an MQTT broker for a lab on this machine.

Registered by `register(app)`; heavy imports happen inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

from iiotlab.errors import ConfigError
from iiotlab.payloads import MAX_PAYLOAD_BYTES

_USER_FORM = "NAME:PASSWORD:TENANT (TENANT '*' = admin, all topics)"


def parse_user_option(text: str) -> tuple[str, str, str | None]:
    """``alice:pw:alice`` -> ("alice", "pw", "alice"); ``root:pw:*`` -> admin."""
    name, _, rest = text.partition(":")
    password, separator, tenant = rest.rpartition(":")
    if not name or not separator:
        raise ConfigError("bad --user value", key="--user", value=text, expected=_USER_FORM)
    return name, password, None if tenant == "*" else tenant


def broker_command(
    kind: str = typer.Option("embedded", "--kind", help="embedded (amqtt) or mosquitto."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(1883, "--port", help="Plaintext port; 0 picks a free port."),
    users: list[str] = typer.Option([], "--user", help=f"Repeatable: {_USER_FORM}."),
    allow_anonymous: bool | None = typer.Option(
        None,
        "--allow-anonymous/--no-anonymous",
        help="Default: anonymous allowed iff no --user.",
    ),
    tls_dir: Path | None = typer.Option(
        None, "--tls-dir", help="Write a CA and server certificate here and open a TLS port."
    ),
    tls_port: int = typer.Option(8883, "--tls-port", help="TLS port (with --tls-dir)."),
    no_plaintext: bool = typer.Option(
        False, "--no-plaintext", help="Only the TLS listener (needs --tls-dir)."
    ),
    require_client_cert: bool = typer.Option(
        False,
        "--require-client-cert",
        help="Mutual TLS: TLS clients need a certificate of the CA in --tls-dir "
        "(client.crt/client.key there is one).",
    ),
    max_message_bytes: int = typer.Option(
        MAX_PAYLOAD_BYTES,
        "--max-message-bytes",
        help="Larger payloads are acknowledged and dropped; 0 = no limit.",
    ),
) -> None:
    """Run an MQTT broker (users, tenant ACL, TLS) until Ctrl-C / SIGTERM."""
    import asyncio
    import contextlib
    import signal

    from iiotlab.certs import make_tls_files
    from iiotlab.mqtt import BrokerConfig, BrokerUser, make_broker

    if kind not in ("embedded", "mosquitto"):
        raise ConfigError(
            "unknown broker kind", key="--kind", value=kind, expected="embedded or mosquitto"
        )
    config = BrokerConfig(
        host=host,
        port=port,
        users=tuple(BrokerUser(*parse_user_option(text)) for text in users),
        allow_anonymous=allow_anonymous,
        tls=make_tls_files(tls_dir, (host, "localhost", "127.0.0.1")) if tls_dir else None,
        tls_port=tls_port if tls_dir else None,
        plaintext=not no_plaintext,
        require_client_cert=require_client_cert,
        max_message_bytes=max_message_bytes or None,
    )
    broker = make_broker(kind, config)  # type: ignore[arg-type]

    async def serve() -> None:
        # Both signals end the `async with`, so a Mosquitto child is stopped too (SIGTERM's
        # default action would end this process at once and leave Mosquitto listening).
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        async with broker:
            if config.plaintext:
                typer.echo(f"MQTT broker ({kind}) on {broker.url}")
            if broker.tls_url and config.tls:
                typer.echo(f"TLS on {broker.tls_url} (CA file: {config.tls.ca_file})")
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the handlers were set
        asyncio.run(serve())
    typer.echo("stopped", err=True)


def register(app: typer.Typer) -> None:
    app.command("broker")(broker_command)
