"""The terminal every command prints to: rich consoles for results (stdout) and errors (stderr)."""
from __future__ import annotations

from rich.console import Console

console = Console()
# Errors are not hard-wrapped: a path or key split by an inserted newline could not be copied.
err_console = Console(stderr=True, soft_wrap=True)
