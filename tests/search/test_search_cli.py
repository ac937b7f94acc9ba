"""`tte search` as a command: --plot without matplotlib is refused before any work, and the search
shows its progress (per generation) on stderr unless --quiet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import tte

# the CLI's main with matplotlib made unimportable, as in an installation without it
NO_MATPLOTLIB = (
    "import sys; sys.modules['matplotlib'] = None; from tte_ir.cli import main; raise SystemExit(main(sys.argv[1:]))"
)


@pytest.fixture(scope="module")
def table(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A made-up contribution table of the tiny model: biases of the last 1..3 convs, and two weight entries."""
    from tte_algo.search import Contributions
    from tte_algo.search.contrib import graph_digest
    from tte_ir import conv_nodes, load

    graph = load(tiny_model)
    n = len(conv_nodes(graph))
    contrib = Contributions(
        n,
        {0: 0.0, 1: 0.01, 2: 0.02, 3: 0.03},
        {(n - 1, 1.0): 0.02, (n - 2, 0.25): 0.01},
        {"model_digest": graph_digest(graph)},
    )
    return contrib.save(tmp_path_factory.mktemp("table") / "contrib.json")


def _search(tiny_model: Path, table: Path, *args: str) -> tuple[str, ...]:
    return ("search", str(tiny_model), "--contrib", str(table), "--budget", "1MB", "-o", "s.json",
            "--population", "4", "--generations", "3", *args)  # fmt: skip


def test_plot_without_matplotlib_is_refused_before_the_search(tiny_model: Path, table: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", NO_MATPLOTLIB, *_search(tiny_model, table, "--plot", "p.png", "--quiet")],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "pip install matplotlib" in r.stderr and "--plot" in r.stderr
    assert not (tmp_path / "s.json").exists()  # refused before the search ran


def test_search_shows_progress_unless_quiet(tiny_model: Path, table: Path, tmp_path: Path) -> None:
    shown = tte(*_search(tiny_model, table), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "search" in shown.stderr and "3/3" in shown.stderr and "best gain" in shown.stderr, shown.stderr
    assert shown.stdout.startswith("wrote s.json")  # the result alone on stdout
    quiet = tte(*_search(tiny_model, table, "--quiet"), cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
