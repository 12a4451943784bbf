"""Commands of this part (registered into `iiotlab`)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this part's commands to the iiotlab CLI."""
