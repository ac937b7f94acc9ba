"""``tte generate`` and ``tte run``: the commands a user types, and their errors (one line, exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tte_ir import load, save
from tte_ir.autodiff import training_info
from tte_ir.cli import main

from .conftest import qemu_tools
from .nets import images


@pytest.fixture
def files(training, forward, tmp_path):
    graph = save(training, tmp_path / "train.tte")
    xs = images(forward, 6)
    data = tmp_path / "data.npz"
    np.savez(data, x=xs, y=np.arange(6) % 4)
    return graph, data


def test_generate_writes_the_project(files, tmp_path, capsys):
    graph, _ = files
    assert main(["generate", str(graph), "-o", str(tmp_path / "proj")]) == 0
    assert {"model.h", "model.c", "weights.c", "CMakeLists.txt", "manifest.json"} <= {
        p.name for p in (tmp_path / "proj").iterdir()
    }
    assert "arena" in capsys.readouterr().out


def test_run_on_the_host_trains_and_writes_back(files, tmp_path, capsys):
    graph, data = files
    out, figures = tmp_path / "trained.tte", tmp_path / "run.json"
    code = main(["run", str(graph), "--data", str(data), "--test", str(data), "--epochs", "2", "-o", str(out),
                 "--json", str(figures), "--project", str(tmp_path / "proj")])  # fmt: skip
    assert code == 0
    result = json.loads(figures.read_text())
    assert result["steps"] == 12 and result["skipped_steps"] == 0
    trained = load(out)
    state = training_info(trained)["state"]
    assert any(not np.array_equal(trained.constants[p], load(graph).constants[p]) for p in state)
    assert "test accuracy" in capsys.readouterr().out


def test_run_on_qemu_reports_memory_and_instructions(files, tmp_path, capsys):
    qemu_tools()
    graph, data = files
    code = main(["run", str(graph), "--data", str(data), "--board", "qemu-mps2-an500", "--steps", "2",
                 "--json", str(tmp_path / "run.json")])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "firmware RAM" in out and "instructions/step" in out
    result = json.loads((tmp_path / "run.json").read_text())
    assert result["memory"]["firmware_ram"] > result["memory"]["bss"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "missing.npz"], "no such file"),
        (["--data", "{bad}"], "missing array"),
    ],
)
def test_run_errors_are_one_line(files, tmp_path, capsys, argv, message):
    graph, _ = files
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros(3))
    argv = [a.replace("{bad}", str(bad)).replace("missing.npz", str(tmp_path / "missing.npz")) for a in argv]
    assert main(["run", str(graph), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
