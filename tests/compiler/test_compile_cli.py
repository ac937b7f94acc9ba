"""`tte compile` and `tte plan`: reports, JSON, plots, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import re

import pytest

from tte_ir import TteError, load, save
from tte_ir.autodiff import training_info
from tte_ir.cli import main
from tte_ir.compile_cli import parse_bytes
from tte_ir.memory import memory_report
from tte_ir.tiling import recomputed_macs

from .nets import residual_net


@pytest.fixture
def model(tmp_path):
    return str(save(residual_net(size=16), tmp_path / "model.tte"))


def _scheme(tmp_path, **fields):
    data = {"format": "tte-scheme", "version": 1, "n_bias": 3, "weights": [{"conv": 2, "ratio": 0.5}], **fields}
    path = tmp_path / "scheme.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_compile_then_plan(tmp_path, model, capsys):
    out = tmp_path / "train.tte"
    assert main(["compile", model, "--scheme", _scheme(tmp_path), "-o", str(out), "--budget", "1MB"]) == 0
    text = capsys.readouterr().out
    assert "arena peak" in text and "trainable state" in text and "I/O" in text and "total" in text
    assert main(["plan", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"arena_peak_bytes", "trainable_bytes", "io_bytes", "total_bytes", "peak_op"} <= set(report)
    assert report["total_bytes"] == report["arena_peak_bytes"] + report["trainable_bytes"] + report["io_bytes"]
    assert main(["plan", str(out), "--planner", "naive", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["arena_peak_bytes"] >= report["arena_peak_bytes"]


def test_plot(tmp_path, model, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "train.tte"
    assert main(["compile", model, "--scheme", _scheme(tmp_path), "-o", str(out)]) == 0
    png = tmp_path / "mem.png"
    assert main(["plan", str(out), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"tte {command}: error: ") and "Traceback" not in err
    return err


def test_impossible_budget(tmp_path, model, capsys):
    out = tmp_path / "train.tte"
    assert main(["compile", model, "--scheme", _scheme(tmp_path), "-o", str(out), "--budget", "2KB"]) == 2
    err = _one_line_error(capsys, "compile")
    assert "over the budget of 2,048 B" in err and "peaks at '" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"weights": [{"conv": 40, "ratio": 1}]}, "out of range"),
        ({"weights": [{"conv": 1, "ratio": 0.3}]}, "not one of 1/8, 1/4, 1/2, 1"),
        ({"rounding": "float-master"}, "simulation only"),
        ({"colour": "red"}, "unknown key 'colour'"),
    ],
)
def test_bad_scheme(tmp_path, model, capsys, fields, message):
    assert main(["compile", model, "--scheme", _scheme(tmp_path, **fields), "-o", str(tmp_path / "t.tte")]) == 2
    assert message in _one_line_error(capsys, "compile")


FORWARD_GRAPH = "is a forward graph, not a compiled training graph: run `tte compile` first"


def test_plan_of_a_forward_graph_is_refused(tmp_path, model, capsys):
    assert main(["plan", model]) == 2
    err = _one_line_error(capsys, "plan")
    assert f"model.tte: graph 'resnet-tiny' {FORWARD_GRAPH}" in err


def test_plan_of_a_trained_forward_graph_is_refused(tmp_path, capsys):
    # `tte train` writes its own metadata["training"] record (how it trained), not a compiled step's.
    forward = residual_net(size=16)
    record = {"qas": True, "rounding": "nearest", "batch_size": 8, "epochs": 1, "schedule": "cosine", "scheme": {}}
    trained = save(forward.replace(metadata={**forward.metadata, "training": record}), tmp_path / "trained.tte")
    assert main(["plan", str(trained)]) == 2
    assert f"trained.tte: graph 'resnet-tiny' {FORWARD_GRAPH}" in _one_line_error(capsys, "plan")


def test_training_info_names_the_graph(tmp_path):
    forward = residual_net(size=16)
    with pytest.raises(TteError, match=f"graph 'resnet-tiny' {re.escape(FORWARD_GRAPH)}"):
        training_info(forward.replace(metadata={"training": {"scheme": {}, "state": {}}}))


def test_plan_labels_its_layout(tmp_path, model, capsys):
    out = tmp_path / "train.tte"
    assert main(["compile", model, "--scheme", _scheme(tmp_path), "-o", str(out)]) == 0
    assert "input image inside the arena, as the generated code lays it out" in capsys.readouterr().out
    assert main(["plan", str(out), "--json"]) == 0
    inside = json.loads(capsys.readouterr().out)
    assert main(["plan", str(out), "--json", "--input-outside-arena"]) == 0
    outside = json.loads(capsys.readouterr().out)
    assert inside["input_in_arena"] is True and outside["input_in_arena"] is False
    image = 3 * 16 * 16  # the int8 [1, 3, 16, 16] input: I/O in one layout, arena bytes in the other
    assert outside["io_bytes"] - inside["io_bytes"] == image
    recomputed = {"recomputed_macs": recomputed_macs(load(out))}
    assert inside == {**memory_report(load(out), input_in_arena=True).to_json(), **recomputed}
    assert outside == {**memory_report(load(out)).to_json(), **recomputed}
    assert main(["plan", str(out), "--input-outside-arena"]) == 0
    assert "input image outside the arena, counted as I/O" in capsys.readouterr().out


def test_parse_bytes():
    assert parse_bytes("128KB") == 131072 and parse_bytes("4096") == 4096 and parse_bytes("0.5MB") == 524288
    with pytest.raises(TteError):
        parse_bytes("lots")
