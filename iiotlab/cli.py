"""The `iiotlab` command. Each part registers its own commands here.

Every part's `cli.py` has `register(app: typer.Typer) -> None` and imports its heavy
libraries inside the command functions, so `iiotlab --help` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from iiotlab import __version__
from iiotlab.errors import IiotlabError

PARTS = (
    "iiotlab.mqtt.cli",
    "simulators.cli",
    "edge_gateway.cli",
    "iiot_platform.cli",
    "grader.cli",
)

NOISY_LOGGERS = ("transitions", "amqtt", "asyncua", "uvicorn.access", "httpx")

app = typer.Typer(
    name="iiotlab",
    help="Industrial internet training lab: simulated PLCs, edge gateways, MQTT, a mini "
    "platform and an auto-grader.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"iiotlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # the broker's state machine logs every session transition at INFO
        for chatty in NOISY_LOGGERS:
            logging.getLogger(chatty).setLevel(logging.WARNING)


def build_app() -> typer.Typer:
    for name in PARTS:
        module = importlib.import_module(name)
        module.register(app)
    return app


def main() -> None:
    """Console entry point: user errors print their message, never a traceback."""
    try:
        build_app()(standalone_mode=True)
    except IiotlabError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)


if __name__ == "__main__":
    main()
