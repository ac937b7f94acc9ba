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
    from tte_ir.order import sample_order

    qemu_tools()
    graph, data = files
    code = main(["run", str(graph), "--data", str(data), "--board", "qemu-mps2-an500", "--steps", "4", "--seed", "3",
                 "--json", str(tmp_path / "run.json")])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "firmware RAM" in captured.out and "instructions/step" in captured.out
    assert "tenth of the steps: 1 of 4 each" in captured.out and "tte run on qemu-mps2-an500" in captured.err
    result = json.loads((tmp_path / "run.json").read_text())
    assert result["memory"]["firmware_ram"] > result["memory"]["bss"]
    assert result["order"] == sample_order(6, 3, 0)[:4].tolist()
    # the same --seed and --steps on the host visit the same samples: the same losses, bit for bit
    assert main(["run", str(graph), "--data", str(data), "--steps", "4", "--seed", "3", "--quiet",
                 "--json", str(tmp_path / "host.json")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "host.json").read_text())["losses"] == result["losses"]


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


FORWARD_GRAPH = "is a forward graph, not a compiled training graph: run `tte compile` first"


@pytest.mark.parametrize("command", ["generate", "plan", "run"])
def test_a_trained_forward_graph_is_refused_in_one_line(forward, tmp_path, capsys, command):
    # `tte train` writes a metadata["training"] record of its own (how it trained), not a compiled step's.
    record = {"qas": True, "rounding": "nearest", "batch_size": 8, "epochs": 1, "schedule": "cosine", "scheme": {}}
    path = save(forward.replace(metadata={**forward.metadata, "training": record}), tmp_path / "trained.tte")
    extra = {"generate": ["-o", str(tmp_path / "proj")], "plan": [], "run": ["--data", str(tmp_path / "d.npz")]}
    assert main([command, str(path), *extra[command]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"trained.tte: graph '{forward.name}' {FORWARD_GRAPH}" in err


def test_plan_reports_the_arena_generate_lays_out(files, training, tmp_path, capsys):
    from tte_codegen.lowering import lower

    graph, _ = files
    assert main(["generate", str(graph), "-o", str(tmp_path / "proj")]) == 0
    capsys.readouterr()
    manifest = json.loads((tmp_path / "proj" / "manifest.json").read_text())
    assert main(["plan", str(graph), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["arena_peak_bytes"] == lower(training).arena_bytes == manifest["planner"]["arena_bytes"]
    for key in ("total_bytes", "io_bytes", "trainable_bytes", "flash_bytes", "input_in_arena"):
        assert plan[key] == manifest["planner"][key], key
    assert main(["plan", str(graph), "--json", "--input-outside-arena"]) == 0
    outside = json.loads(capsys.readouterr().out)
    assert outside["input_in_arena"] is False and outside["io_bytes"] > plan["io_bytes"]


def test_host_training_visits_the_shared_sample_order(host_model, training, forward):
    from tte_codegen.training import Dataset, train_host
    from tte_ir.order import sample_order
    from tte_ir.reference_train import initial_state

    data = Dataset(images(forward, 5), np.arange(5) % 4)
    log = train_host(host_model, data, epochs=2, seed=7)
    assert np.array_equal(log.order, np.concatenate([sample_order(5, 7, 0), sample_order(5, 7, 1)]))
    assert not np.array_equal(log.order[:5], np.arange(5))
    host_model.import_params(initial_state(training))
    host_model.step = 0
    replay = [host_model.train_step(data.x[i], int(data.y[i]), None, None) for i in log.order]
    assert np.array_equal(np.asarray(replay, dtype=np.float32), log.losses)


def test_run_reports_mean_losses_progress_and_takes_root(files, tmp_path, capsys):
    from tte_codegen.generate import find_root

    graph, data = files
    figures = tmp_path / "run.json"
    argv = ["run", str(graph), "--data", str(data), "--epochs", "4", "--root", str(find_root()),
            "--project", str(tmp_path / "proj"), "--json", str(figures)]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    result = json.loads(figures.read_text())
    losses = np.asarray(result["losses"], dtype=np.float64)
    assert len(losses) == 24 and result["loss_window"] == 2
    assert result["loss_first"] == pytest.approx(losses[:2].mean()) and result["loss_last"] == pytest.approx(
        losses[-2:].mean()
    )
    assert (
        f"loss {result['loss_first']:.4f} -> {result['loss_last']:.4f} (means over the first and the last tenth "
        "of the steps: 2 of 24 each)" in captured.out
    )
    assert "training on the host" in captured.err
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""
