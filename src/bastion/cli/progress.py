"""Rich progress bars for the library's :class:`~bastion.probes.context.ProgressFactory`.

One :class:`rich.progress.Progress` display holds every bar: the overall assessment
bar stays for the whole run and each probe adds its own bar while it works.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from bastion.cli.console import err_console

__all__ = ["RichProgress"]


class _Bar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._task, amount)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        self._progress.update(self._task, total=total, description=description)


class RichProgress:
    """A progress factory drawing on stderr; use it as a context manager around the run."""

    def __init__(self, *, disable: bool = False) -> None:
        self.display = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            disable=disable,
            transient=False,
        )
        self._open = 0

    def __enter__(self) -> RichProgress:
        self.display.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.display.stop()

    @contextmanager
    def __call__(self, *, total: float | None, description: str) -> Iterator[_Bar]:
        task = self.display.add_task(description, total=total)
        outermost = self._open == 0
        self._open += 1
        try:
            yield _Bar(self.display, task)
        finally:
            self._open -= 1
            if not outermost:  # per-probe bars go away; the overall bar stays on screen
                self.display.remove_task(task)
