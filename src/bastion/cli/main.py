"""Entry point of the ``bastion`` command.

Each command group lives in its own module with a ``register(app)`` function.
:func:`main` turns every :class:`~bastion.errors.BastionError` into one sentence on
stderr and the error's exit code, so bad input never shows a traceback.
"""

from __future__ import annotations

import logging
import sys

import typer

from bastion import __version__
from bastion.cli.console import err_console
from bastion.errors import BastionError

__all__ = ["app", "main"]

app = typer.Typer(
    name="bastion",
    help="Detect, react to and repair threats to machine-learning systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bastion {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for PyTorch in this run (default: PyTorch's own choice). "
        "Small models often run faster with 1.",
    ),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if threads is not None:
        set_torch_threads(threads)


def set_torch_threads(threads: int) -> None:
    """Give PyTorch ``threads`` intra-op CPU threads for the rest of this process.

    The command owns its process, so this is a per-run choice, not library state.
    Does nothing when PyTorch is not installed.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return
    torch.set_num_threads(threads)


def _register_commands() -> None:
    from bastion.cli import commands

    for register in commands.REGISTRARS:
        register(app)


def main() -> None:
    """Run the CLI; map Bastion errors to exit codes without tracebacks."""
    _register_commands()
    try:
        # Outside standalone mode click returns the exit code of typer.Exit instead of
        # exiting, so pass it on: the gate's exit code must reach the shell.
        result = app(standalone_mode=False)
    except BastionError as err:
        err_console.print(f"[bold red]Error:[/] {err}", soft_wrap=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        err_console.print("Interrupted; run the same command again to resume.")
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        err_console.print("Aborted.")
        sys.exit(130)
    except Exception as err:
        # Usage errors (unknown option, missing argument) arrive here outside standalone
        # mode. Typer may vendor its own copy of click, so match the class by name.
        if any(cls.__name__ == "ClickException" for cls in type(err).__mro__):
            err.show()  # type: ignore[attr-defined]
            sys.exit(2)
        raise
    sys.exit(result if isinstance(result, int) else 0)
