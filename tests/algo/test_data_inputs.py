"""tte_algo's data loading and the argument checks of tte train / quantize / analyze / search / demo:
every bad input one line, exit 2, before torch trains or data load (issue 15)."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")

from tests.compiler.nets import residual_net
from tte_algo.data import MAX_IMAGE_PIXELS, DataError, load_digits, load_image_folder
from tte_ir import save
from tte_ir.cli import main
from tte_ir.cli_args import DataError as SharedDataError


def _png(width: int, height: int) -> bytes:
    """A PNG header declaring ``width`` x ``height`` with one tiny IDAT: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def _folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    from PIL import Image

    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(root / "a" / "ok.png")
    for name, data in files.items():
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_one_data_error_type_for_every_loader():
    assert DataError is SharedDataError


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"b/empty.png": b""}, "empty.png: not a readable image"),
        ({"b/cut.png": _png(8, 8)[:20]}, "cut.png: not a readable image"),
        ({"b/bomb.png": _png(8000, 8000)}, f"bomb.png: 8000x8000 pixels, over the {MAX_IMAGE_PIXELS:,}-pixel"),
        ({"b/text.png": b"not an image at all"}, "text.png: not a readable image"),
    ],
)
def test_bad_images_are_one_data_error(tmp_path, files, message):
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        load_image_folder(_folder(tmp_path, files), 8)
    assert "\n" not in str(caught.value)


def test_selected_classes_without_images_are_refused(tmp_path):
    (tmp_path / "images" / "b").mkdir(parents=True)
    root = _folder(tmp_path, {})
    with pytest.raises(DataError, match=r"the selected classes \[1\] hold no images"):
        load_image_folder(root, 8, [1])
    with pytest.raises(DataError, match="hold no images"):
        load_digits(8, [])


@pytest.fixture
def graph_file(tmp_path):
    return save(residual_net(size=8), tmp_path / "fwd.tte")


def _refused(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "nan"], r"--lr must be a finite number in \[0, 100\], got nan"),
        (["--head-lr", "inf"], r"--head-lr must be a finite number"),
        (["--lr", "-1"], r"--lr must be a finite number"),
        (["--lr", "1e30"], r"--lr must be a finite number"),
        (["--momentum", "1"], r"--momentum must be a finite number in \[0, 1\)"),
        (["--epochs", "0"], r"--epochs must be an integer >= 1, got 0"),
        (["--batch-size", "0"], r"--batch-size must be an integer >= 1"),
        (["--test-fraction", "nan"], r"--test-fraction must be a finite number in \(0, 1\)"),
        (["--seed", "-1"], r"--seed must be an integer in \[0, 4294967295\]"),
        (["--metrics", "{tmp}"], r"--metrics .*: is a folder"),
        (["-o", "{tmp}/m.json"], r"-o and the default --metrics both name"),
        (["--scheme", "{scheme}"], r'"weights": weight update of conv 9 is out of range'),
        (["--test-fraction", "0.001", "--classes", "0-1"], r"into \d+ to train on and 0 to test"),
    ],
)
def test_train_refuses_in_one_line(graph_file, tmp_path, capsys, argv, message):
    scheme = tmp_path / "s.json"
    scheme.write_text('{"format": "tte-scheme", "version": 1, "weights": [{"conv": 9, "ratio": 1}]}')
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{scheme}", str(scheme)) for a in argv]
    out = ["-o", str(tmp_path / "t.tte")] if "-o" not in argv else []
    err = _refused(capsys, ["train", str(graph_file), *out, *argv])
    assert re.search(message, err), err


@pytest.mark.parametrize(
    ("command", "argv", "message"),
    [
        ("quantize", ["plain-cnn", "-o", "{tmp}"], "is a folder"),
        ("quantize", ["plain-cnn", "-o", "{tmp}/q.tte", "--width", "nan"], r"--width must be a finite number"),
        ("quantize", ["plain-cnn", "-o", "{tmp}/q.tte", "--calib", "0"], r"--calib must be an integer >= 1"),
        ("analyze", ["{graph}", "-o", "{tmp}/c.json", "--lr", "nan"], r"--lr must be a finite number"),
        ("analyze", ["{graph}", "-o", "{tmp}/c.json", "--head-lr", "1e39"], r"--head-lr must be a finite number"),
        ("analyze", ["{graph}", "-o", "{tmp}/c.json", "--seeds", "0,-2"], r"--seeds must be an integer in"),
        ("analyze", ["{graph}", "-o", "{tmp}"], "is a folder"),
        ("search", ["{graph}", "--contrib", "c.json", "--budget", "", "-o", "{tmp}/s.json"], "--budget: cannot read"),
        ("search", ["{graph}", "--contrib", "c.json", "--budget", "0KB", "-o", "{tmp}/s.json"], "is 0 B"),
        (
            "search",
            ["{graph}", "--contrib", "c.json", "--budget", "9KB", "--flash-budget", "", "-o", "{tmp}/s.json"],
            "--flash-budget: cannot read",
        ),
        (
            "search",
            ["{graph}", "--contrib", "c.json", "--budget", "9KB", "--mac-budget", "inf", "-o", "{tmp}/s.json"],
            "--mac-budget must be a finite number",
        ),
        ("search", ["{graph}", "--contrib", "c.json", "--budget", "9KB", "-o", "{tmp}"], "is a folder"),
        (
            "search",
            ["{graph}", "--contrib", "c.json", "--budget", "9KB", "-o", "{tmp}/s", "--front", "{tmp}/s"],
            "-o and --front both name",
        ),
        ("demo", ["--budget", ""], "--budget: cannot read"),
        ("demo", ["--epochs", "0"], "--epochs must be an integer >= 1"),
        ("demo", ["--json", "{tmp}"], "is a folder"),
        ("demo", ["--out", "{graph}"], "is a file; name a folder"),
    ],
)
def test_other_commands_refuse_in_one_line(graph_file, tmp_path, capsys, command, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{graph}", str(graph_file)) for a in argv]
    err = _refused(capsys, [command, *argv])
    assert re.search(message, err), err


def tiny_kws():
    """A keyword-spotting-shaped model: 1 x 49 x 10 input (audio features; digits stretched as a stand-in)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
    ).eval()


def test_gray_non_square_inputs_quantize_and_train_from_digits(tmp_path, capsys):
    graph_file, trained = tmp_path / "kws.tte", tmp_path / "kws-trained.tte"
    argv = ["--input-shape", "1x49x10", "--data", "digits", "--data-classes", "0-4", "--calib", "32"]
    assert main(["quantize", f"{__name__}:tiny_kws", "-o", str(graph_file), *argv]) == 0, capsys.readouterr().err
    from tte_ir import load

    graph = load(graph_file)
    assert graph.tensors[graph.inputs[0]].shape == (1, 1, 49, 10)
    assert "32 inputs [1, 49, 10] of digits" in graph.metadata["calibration"]
    argv = ["--data", "digits", "--classes", "5-9", "--epochs", "1", "--batch-size", "32", "--quiet", "--device", "cpu"]
    assert main(["train", str(graph_file), "-o", str(trained), *argv]) == 0, capsys.readouterr().err
    assert "test accuracy" in capsys.readouterr().out


def test_float_npz_calibrates_at_its_own_shape(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "kws.npz", x=rng.uniform(-1, 1, (8, 1, 49, 10)).astype(np.float32), y=np.arange(8) % 5)
    graph_file = tmp_path / "kws.tte"
    assert main(["quantize", f"{__name__}:tiny_kws", "-o", str(graph_file), "--data", str(tmp_path / "kws.npz")]) == 0
    from tte_ir import load

    graph = load(graph_file)
    assert graph.tensors[graph.inputs[0]].shape == (1, 1, 49, 10)
    np.savez(tmp_path / "wide.npz", x=np.zeros((4, 1, 10, 49), np.float32), y=np.zeros(4, np.int64))
    err = _refused(
        capsys, ["train", str(graph_file), "-o", str(tmp_path / "t.tte"), "--data", str(tmp_path / "wide.npz")]
    )
    assert "x is [4, 1, 10, 49]; the model takes [N, 1, 49, 10] (its input is [1, 1, 49, 10])" in err, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["plain-cnn", "--random-weights", "--input-shape", "1x8x8"],
            r"takes 3-channel inputs; the data are \[1, 8, 8\]",
        ),
        (["plain-cnn", "--random-weights", "--input-shape", "1x8"], r"--input-shape '1x8': expected C x H x W"),
        (["plain-cnn", "--random-weights", "--input-shape", "3x8x8", "--resolution", "8"], "exclude each other"),
        (["plain-cnn", "--random-weights", "--input-shape", "2x8x8"], r"digits: the model takes \[N, 2, 8, 8\]"),
        (["plain-cnn", "--random-weights", "--data", "{tmp}/none.npz"], r"none.npz: no such file"),
        (
            [f"{__name__}:tiny_kws", "--resolution", "16"],
            r"tiny_kws' does not take inputs \[1, 3, 16, 16\] \(Given groups=1.*pass --input-shape C x H x W",
        ),
    ],
)
def test_quantize_refuses_shapes_in_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    err = _refused(capsys, ["quantize", *argv, "-o", str(tmp_path / "q.tte")])
    assert re.search(message, err), err


def test_train_and_analyze_name_the_head_when_the_data_has_more_classes(graph_file, tmp_path, capsys):
    err = _refused(capsys, ["train", str(graph_file), "-o", str(tmp_path / "t.tte")])
    assert "digits: the data has 10 classes, the graph's head 3; pass --classes (e.g. 0-2)" in err, err
    err = _refused(capsys, ["analyze", str(graph_file), "-o", str(tmp_path / "c.json")])
    assert "digits: the data has 10 classes, the graph's head 3; pass --classes" in err, err
