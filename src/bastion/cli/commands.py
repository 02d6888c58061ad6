"""The list of command modules; each exposes ``register(app: typer.Typer) -> None``."""

from __future__ import annotations

from collections.abc import Callable

import typer

from bastion.cli import (
    artifacts_cmd,
    artifacts_sign_cmd,
    assess_cmd,
    audit_cmd,
    catalog_cmd,
    env_cmd,
    harden_cmd,
    keys_cmd,
    runs_cmd,
    serve_cmd,
    threatmodel_cmd,
    verify_response_cmd,
)

REGISTRARS: list[Callable[[typer.Typer], None]] = [
    assess_cmd.register,
    catalog_cmd.register,
    runs_cmd.register,
    threatmodel_cmd.register,
    env_cmd.register,
    artifacts_cmd.register,
    keys_cmd.register,
    audit_cmd.register,
    verify_response_cmd.register,
    serve_cmd.register,
    harden_cmd.register,
]

# The signing commands live in their own module but belong to the `artifacts` group.
artifacts_sign_cmd.register_into(artifacts_cmd.artifacts_app)
