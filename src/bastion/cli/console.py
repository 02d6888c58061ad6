"""The terminal the CLI writes to, and how errors reach the user.

Library code never prints; the CLI owns the terminal through these two consoles.
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["err_console", "out_console"]

out_console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
