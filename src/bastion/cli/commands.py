"""The list of command modules; each exposes ``register(app: typer.Typer) -> None``."""

from __future__ import annotations

from collections.abc import Callable

import typer

from bastion.cli import assess_cmd, catalog_cmd, runs_cmd

REGISTRARS: list[Callable[[typer.Typer], None]] = [
    assess_cmd.register,
    catalog_cmd.register,
    runs_cmd.register,
]
