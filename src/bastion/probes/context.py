"""What a running probe gets from the executor: seed, progress, output folder.

Probes never print. They report progress through :class:`ProbeContext.progress`,
which the command line draws as a Rich progress bar and tests ignore.

Examples
--------
>>> from bastion.probes.context import ProbeContext
>>> ctx = ProbeContext(seed=7)
>>> with ctx.progress(total=3, description="noise") as bar:
...     bar.advance(3)
>>> bool(ctx.rng().integers(0, 10) == ProbeContext(seed=7).rng().integers(0, 10))
True
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np

__all__ = ["NullProgress", "ProbeContext", "ProgressBar", "ProgressFactory"]


class ProgressBar(Protocol):
    """One progress bar: a probe calls :meth:`advance` as work completes."""

    def advance(self, amount: float = 1) -> None:
        """Mark ``amount`` more units of work done."""
        ...

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        """Change the bar's total or label."""
        ...


class ProgressFactory(Protocol):
    """Creates progress bars; the CLI supplies a Rich-backed one."""

    def __call__(
        self, *, total: float | None, description: str
    ) -> AbstractContextManager[ProgressBar]:
        """Open a bar; it closes when the ``with`` block ends."""
        ...


class NullProgress(AbstractContextManager["NullProgress"]):
    """A progress bar that does nothing (the default outside the CLI)."""

    def __init__(self, *, total: float | None = None, description: str = "") -> None:
        self.total = total
        self.description = description
        self.completed = 0.0

    def advance(self, amount: float = 1) -> None:
        self.completed += amount

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        if total is not None:
            self.total = total
        if description is not None:
            self.description = description

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


@dataclass
class ProbeContext:
    """Everything a probe may use besides the target and the data.

    Parameters
    ----------
    seed : int
        Seed for every random choice the probe makes; same seed, same finding.
    output_dir : Path or None
        Folder for evidence files (images, tables); None keeps evidence inline only.
    progress : ProgressFactory
        Opens progress bars.
    security_decision : bool
        True when the model makes a security decision (malware, intrusion, fraud,
        authentication); severity rules weigh evasion of such models higher.
    logger : logging.Logger
    """

    seed: int = 0
    output_dir: Path | None = None
    progress: ProgressFactory = NullProgress
    security_decision: bool = False
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("bastion.probes"))

    def rng(self, stream: int = 0) -> np.random.Generator:
        """A fresh generator derived from the seed (independent per ``stream``)."""
        return np.random.default_rng([self.seed, stream])

    def evidence_path(self, probe_id: str, filename: str) -> Path | None:
        """Where a probe should write an evidence file, creating the folder."""
        if self.output_dir is None:
            return None
        folder = self.output_dir / "evidence" / probe_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder / filename
