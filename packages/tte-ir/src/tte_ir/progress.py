"""Progress of long-running commands, shown the same way by every ``tte`` command.

A command that runs longer than a few seconds wraps its loop in :func:`progress`; the bar goes to
standard error (rich when it is installed, else one plain line per second), so standard output stays
the command's result. ``enabled=False`` (the commands' ``--quiet``) shows nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Advance", "progress"]

Advance = Callable[..., None]
"""``advance(steps=1, status="")``: ``steps`` more units done; ``status`` a short note (a loss, a job name)."""


@contextmanager
def progress(description: str, total: int | None, *, enabled: bool = True) -> Iterator[Advance]:
    """A progress bar over ``total`` units (None: unknown) as a context manager yielding ``advance``."""
    if not enabled:
        yield lambda steps=1, status="": None
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    except ImportError:
        yield from _plain(description, total)
        return
    bar = Progress(
        TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.description}"), console=Console(stderr=True),
    )  # fmt: skip
    task = bar.add_task("", total=total)
    with bar:
        yield lambda steps=1, status="": bar.update(task, advance=steps, description=status)


def _plain(description: str, total: int | None) -> Iterator[Advance]:
    done = 0
    last = 0.0

    def advance(steps: int = 1, status: str = "") -> None:
        nonlocal done, last
        done += steps
        now = time.monotonic()
        if now - last >= 1.0 or (total is not None and done >= total):
            last = now
            of = f"/{total}" if total is not None else ""
            print(f"{description}: {done}{of} {status}".rstrip(), file=sys.stderr, flush=True)

    yield advance
