"""What the per-model benchmarks (:mod:`tte_algo.tflite_bench`, ``nox -s tflite``; :mod:`tte_algo.zoo_bench`,
``nox -s zoo``) share: one table per model, printed as soon as it is done, and a model tte refuses reported
in one line without hiding the others' tables."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from tte_ir import TteError

__all__ = ["print_tables", "usage_error"]


def usage_error(prog: str, exc: TteError) -> int:
    """Print ``prog: error: <exc>`` on stderr for a command line that cannot run; returns the exit status 2."""
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return 2


def print_tables(
    prog: str, names: Iterable[str], report: Callable[[str], dict[str, Any]], table: Callable[[dict[str, Any]], str]
) -> int:
    """Print ``table(report(name))`` for each of ``names`` in turn. A model whose report raises a
    :class:`~tte_ir.TteError` gets ``prog: name: error: <exc>`` on stderr instead and the others still run;
    returns 2 when any model failed, else 0."""
    failed = 0
    for name in names:
        try:
            result = report(name)
        except TteError as exc:
            # one model tte cannot take must not hide the others' tables
            print(f"{prog}: {name}: error: {exc}", file=sys.stderr, flush=True)
            failed += 1
            continue
        print(table(result), flush=True)
    return 2 if failed else 0
