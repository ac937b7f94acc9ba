"""``tte quantize`` and ``tte train`` end to end, refusals with exit status 2, and the data loaders."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from tte_algo.data import DataError, load_digits, load_image_folder, parse_classes  # noqa: E402
from tte_algo.ptq import quantize_model  # noqa: E402
from tte_algo.sim import Int8Sim  # noqa: E402
from tte_algo.train import evaluate  # noqa: E402
from tte_algo.zoo import build_model  # noqa: E402
from tte_ir import Scheme, load, reference, save  # noqa: E402

USER_MODELS = """
import torch
from torch import nn


class Bad(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(2))
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


class Evil:
    pass


def bad():
    return Bad()
"""


def tte(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "tte_ir.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_quantize_then_train(tmp_path: Path) -> None:
    model = build_model("plain-cnn", 5)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    q = tte("quantize", "plain-cnn", "--checkpoint", "plain.pt", "--resolution", "16", "--data-classes", "0-4",
            "--calib", "64", "-o", "plain.tte", cwd=tmp_path)  # fmt: skip
    assert q.returncode == 0, q.stderr
    graph = load(tmp_path / "plain.tte")
    assert graph.tensors["input"].shape == (1, 3, 16, 16)
    t = tte("train", "plain.tte", "-o", "trained.tte", "--classes", "0-4", "--epochs", "1", "--batch-size", "32",
            "--rounding", "nearest", "--last-convs", "2", "--quiet", cwd=tmp_path)  # fmt: skip
    assert t.returncode == 0, t.stderr
    metrics = json.loads((tmp_path / "trained.json").read_text())
    assert metrics["rounding"] == "nearest" and metrics["qas"] is True and len(metrics["epochs_log"]) == 1
    trained = load(tmp_path / "trained.tte")
    # "training" is a compiled training graph's record; tte train's own is "trained"
    assert "training" not in trained.metadata
    assert trained.metadata["trained"]["rounding"] == "nearest"
    assert Scheme.from_json(trained.metadata["trained"]["scheme"]).n_bias == 2
    x = np.zeros((1, 3, 16, 16), dtype=np.int8)
    assert reference.run_forward(trained, x).shape == (1, 5)
    for command in ("plan", "generate"):
        r = tte(command, "trained.tte", *(["-o", "gen"] if command == "generate" else []), cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    c = tte("compile", "trained.tte", "--scheme", "trained.json:scheme", "-o", "step.tte", cwd=tmp_path)
    assert c.returncode == 0, c.stderr
    assert tte("plan", "step.tte", cwd=tmp_path).returncode == 0


def test_quantize_refuses_a_zoo_model_without_weights(tmp_path: Path) -> None:
    args = ("quantize", "plain-cnn", "--resolution", "8", "--data-classes", "0-4", "--calib", "16", "-o", "r.tte")
    r = tte(*args, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--checkpoint" in r.stderr and "--random-weights" in r.stderr and not (tmp_path / "r.tte").exists()
    r = tte(*args, "--random-weights", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load(tmp_path / "r.tte").metadata["random_weights"] is True


def test_train_seed_keeps_the_held_out_split(tmp_path: Path, pretrained_plain) -> None:
    """The held-out split is drawn from its own --split-seed: --seed changes the training, not the split."""
    model = copy.deepcopy(pretrained_plain[0])
    torch.manual_seed(0)
    model.classifier = torch.nn.Linear(model.classifier.in_features, 5)  # a fresh head errs on many images
    data = load_digits(16, [5, 6, 7, 8, 9])
    graph = quantize_model(model, data.codes[:64])
    save(graph, tmp_path / "plain.tte")

    def before(*args: str) -> float:
        r = tte("train", "plain.tte", "-o", "t.tte", "--classes", "5-9", "--epochs", "1", "--batch-size", "64",
                "--last-convs", "1", "--quiet", *args, cwd=tmp_path)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return json.loads((tmp_path / "t.json").read_text())["test_accuracy_before"]

    held_out = {seed: data.split(0.25, seed)[1] for seed in (0, 3)}
    expected = {seed: evaluate(Int8Sim(graph), test) for seed, test in held_out.items()}
    assert expected[0] != expected[3]  # the accuracy tells these two splits apart
    assert before("--seed", "1") == before("--seed", "2") == pytest.approx(expected[0])
    assert before("--seed", "1", "--split-seed", "3") == pytest.approx(expected[3])


def test_refusals_exit_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "usermodels.py").write_text(USER_MODELS)
    r = tte("quantize", "usermodels:bad", "--resolution", "16", "-o", "bad.tte", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "module 'features.2'" in r.stderr and "AdaptiveMaxPool2d" in r.stderr and "supported:" in r.stderr
    # a checkpoint holding arbitrary objects is refused by weights_only loading
    subprocess.run(
        [sys.executable, "-c", "import torch, usermodels; torch.save({'x': usermodels.Evil()}, 'evil.pt')"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)}, check=True,
    )  # fmt: skip
    r = tte("quantize", "plain-cnn", "--checkpoint", "evil.pt", "--resolution", "16", "-o", "x.tte", cwd=tmp_path)
    assert r.returncode == 2 and "weights-only" in r.stderr and not (tmp_path / "x.tte").exists()
    r = tte("train", "missing.tte", "-o", "y.tte", cwd=tmp_path)
    assert r.returncode == 2 and "missing.tte" in r.stderr


def test_digits_are_device_codes() -> None:
    data = load_digits(16, [5, 9])
    assert data.codes.dtype == torch.int8 and data.codes.shape[1:] == (3, 16, 16)
    assert int(data.codes.min()) == -128 and int(data.codes.max()) == 127
    assert torch.equal(data.codes[:, 0], data.codes[:, 2])
    assert data.classes == ("5", "9") and set(data.labels.tolist()) == {0, 1}
    train, test = data.split(0.25, seed=0)
    assert len(train) + len(test) == len(data) and abs(len(test) / len(data) - 0.25) < 0.01
    assert parse_classes("0-2,7") == [0, 1, 2, 7]
    with pytest.raises(DataError):
        parse_classes("a-b")


def test_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    for name, value in (("cat", 0), ("dog", 255)):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (20 + i, 10), (value, value, value)).save(tmp_path / name / f"{i}.png")
    data = load_image_folder(tmp_path, 8)
    assert data.classes == ("cat", "dog") and data.labels.tolist() == [0, 0, 1, 1]
    assert data.codes.shape == (4, 3, 8, 8)
    assert set(data.codes[0].unique().tolist()) == {-128} and set(data.codes[3].unique().tolist()) == {127}
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("not an image")
    with pytest.raises(DataError, match="not a readable image"):
        load_image_folder(tmp_path, 8)


def test_quantize_requant_fixed_reaches_the_graph_and_inspect(tmp_path: Path) -> None:
    """tte quantize --requant fixed records it (NUMERICS.md §2b); tte inspect shows it; the default is float."""
    args = ("quantize", "plain-cnn", "--random-weights", "--resolution", "8", "--data-classes", "0-4", "--calib", "16")
    for mode in ("fixed", "float"):
        extra = ("--requant", mode) if mode == "fixed" else ()
        r = tte(*args, *extra, "-o", f"{mode}.tte", cwd=tmp_path)
        assert r.returncode == 0 and f"requant {mode}" in r.stdout, r.stderr
        assert load(tmp_path / f"{mode}.tte").metadata["requant"] == mode
        shown = tte("inspect", f"{mode}.tte", cwd=tmp_path)
        assert shown.returncode == 0 and f"requant {mode}" in shown.stdout.splitlines()[0], shown.stderr
    r = tte(*args, "--requant", "double", "-o", "bad.tte", cwd=tmp_path)
    assert r.returncode == 2 and "--requant" in r.stderr and not (tmp_path / "bad.tte").exists()
