"""``bastion serve``: run the Bastion gateway in front of one or more models.

* ``bastion serve --config gateway.yaml [--host 127.0.0.1] [--port 8000] [--workers N]``
* ``bastion serve --demo`` serves the digits demo model behind the default pipeline and
  prints how to create an API key and call it.

The gateway binds to 127.0.0.1 unless ``--host`` says otherwise. See docs/gateway.md.

Examples
--------
>>> import typer
>>> from typer.testing import CliRunner
>>> app = typer.Typer()
>>> _ = app.callback()(lambda: None)
>>> register(app)
>>> r = CliRunner().invoke(app, ["serve"])
>>> type(r.exception).__name__, "--config" in str(r.exception)
('UsageError', True)
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from bastion.cli.console import err_console
from bastion.errors import UsageError

__all__ = ["register"]


def _demo_instructions(paths: object, host: str, port: int) -> str:
    from bastion.gateway.demo import DemoPaths

    assert isinstance(paths, DemoPaths)
    store = paths.folder / "bastion.db"
    url = f"http://{host}:{port}"
    return (
        f"Serving the digits demo on {url} (docs: {url}/docs, metrics: {url}/metrics).\n"
        "Create a key in another shell:\n"
        f"  BASTION_API_KEY_PEPPER_FILE={paths.pepper} bastion keys create --store {store} "
        "--principal me --model digits\n"
        "Then call it (one 8x8 image, values in [0, 1]):\n"
        f"  curl -s {url}/v1/models/digits/predict -H 'Authorization: Bearer <key>' "
        "-H 'Content-Type: application/json' "
        '-d \'{"input": [[[0,0,0.3,0.8,0.8,0.2,0,0],[0,0,0.8,0.5,0.5,0.8,0,0],'
        "[0,0,0.8,0,0,0.8,0,0],[0,0,0.8,0,0,0.8,0,0],[0,0,0.8,0,0,0.8,0,0],"
        "[0,0,0.8,0,0,0.8,0,0],[0,0,0.8,0.5,0.5,0.8,0,0],[0,0,0.3,0.8,0.8,0.2,0,0]]]}'\n"
        f"Verify the audit log: bastion audit verify --store {store} "
        f"--public-key {paths.signing_key}.pub"
    )


def serve_command(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Gateway config file (see examples/gateway.yaml)."
    ),
    demo: bool = typer.Option(False, "--demo", help="Serve the digits demo model."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (loopback)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker processes."),
    drain: float = typer.Option(
        30.0, "--drain-seconds", min=0, help="How long in-flight requests may finish on stop."
    ),
) -> None:
    """Serve models behind the guard pipeline (FastAPI on uvicorn)."""
    from bastion.gateway.server import serve

    if (config is None) == (not demo):
        raise UsageError("Give --config gateway.yaml, or --demo to serve the demo model.")
    if demo:
        from bastion.gateway.demo import prepare_demo

        paths = prepare_demo()
        os.environ.setdefault("BASTION_API_KEY_PEPPER_FILE", str(paths.pepper))
        err_console.print(_demo_instructions(paths, host, port), soft_wrap=True)
        config = paths.config
    assert config is not None
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            f"[yellow]Binding to {host}: the gateway is reachable from other machines; put TLS "
            "in front of it.[/yellow]"
        )
    serve(config, host=host, port=port, workers=workers, drain_s=drain)


def register(app: typer.Typer) -> None:
    """Add ``bastion serve`` to ``app``."""
    app.command("serve")(serve_command)
