"""``tte run``'s inputs: data files, learning rates, counts and output paths, all refused in one line
(exit 2) before anything is generated or built (issue 15)."""

from __future__ import annotations

import io
import re
import struct
import zipfile

import numpy as np
import pytest

from tte_codegen.training import load_npz
from tte_ir import save
from tte_ir.autodiff import training_info
from tte_ir.cli import main
from tte_ir.cli_args import DataError

from .nets import images


@pytest.fixture
def graph_file(training, tmp_path):
    return save(training, tmp_path / "train.tte")


def _labels(training, count):
    classes = training.tensors[training_info(training)["logits"]].shape[1]
    return np.arange(count) % classes


def _run(graph_file, tmp_path, capsys, *argv):
    project = tmp_path / "proj"
    code = main(["run", str(graph_file), "--project", str(project), *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not project.exists(), "refused before the project was generated"
    return err


def _npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f, t: b"", "the file is empty"),
        (lambda f, t: _npz_bytes(), "missing array 'x'"),
        (lambda f, t: _npz_bytes(x=images(f, 4))[:300], "not a readable .npz, truncated or damaged"),
        (lambda f, t: _npz_bytes(x=images(f, 4), y=_labels(t, 4))[:-40], "not a readable .npz"),
        (lambda f, t: b"\x93NUMPY" + b"\0" * 64, "a .npy file holds one array"),
        (lambda f, t: b"hello, world", "not an .npz"),
        (lambda f, t: _npz_bytes(x=images(f, 0), y=_labels(t, 0)), r"holds no images \(x is \[0, "),
        (lambda f, t: _npz_bytes(x=images(f, 3), y=_labels(t, 3).astype(np.float64)), "labels y are float64"),
        (lambda f, t: _npz_bytes(x=images(f, 3), y=np.array([0, 1, 99])), r"label 99 \(sample 2\) is outside 0\.\."),
        (lambda f, t: _npz_bytes(x=images(f, 3), y=np.array([0, -1, 1])), r"label -1 \(sample 1\) is outside"),
        (lambda f, t: _npz_bytes(x=images(f, 3)[:, :, :-1], y=_labels(t, 3)), r"x is \[3, .*\]; the model takes"),
        (lambda f, t: _npz_bytes(x=images(f, 3), y=_labels(t, 2)), r"y is \[2\]; it must be \[N\] = \[3\]"),
        (lambda f, t: _npz_bytes(x=images(f, 3).astype(np.int16), y=_labels(t, 3)), "x is int16"),
        (lambda f, t: _npz_bytes(x=images(f, 3), y=np.array([0, "a", 1], dtype=object)), "never unpickled"),
        (
            lambda f, t: _npz_bytes(x=np.full(images(f, 2).shape, np.nan, np.float32), y=_labels(t, 2)),
            "non-finite inputs",
        ),
    ],
)
def test_bad_data_files_are_refused_before_the_build(training, forward, graph_file, tmp_path, capsys, make, message):
    data = tmp_path / "data.npz"
    data.write_bytes(make(forward, training))
    err = _run(graph_file, tmp_path, capsys, "--data", str(data))
    assert str(data) in err
    assert re.search(message, err), err


def test_a_bad_test_set_is_refused_before_the_build(training, forward, graph_file, tmp_path, capsys):
    good, empty = tmp_path / "good.npz", tmp_path / "empty.npz"
    np.savez(good, x=images(forward, 3), y=_labels(training, 3))
    np.savez(empty, x=images(forward, 0), y=_labels(training, 0))
    err = _run(graph_file, tmp_path, capsys, "--data", str(good), "--test", str(empty))
    assert "empty.npz: holds no images" in err


def test_size_limits_are_checked_before_reading(training, graph_file, tmp_path, capsys):
    huge = tmp_path / "huge.npz"
    with huge.open("wb") as f:
        f.truncate(2 * 1024**3 + 1)  # sparse: costs no disk
    assert "over the 2,147,483,648 B limit of a data file" in _run(graph_file, tmp_path, capsys, "--data", str(huge))
    # a small archive whose members claim to inflate to 3 GiB (the sizes zipfile trusts)
    bomb = bytearray(_npz_bytes(x=np.zeros(4, np.int8), y=np.zeros(4, np.int64)))
    at = bomb.find(b"PK\x01\x02")
    bomb[at + 24 : at + 28] = struct.pack("<I", 3 * 1024**3)
    (tmp_path / "bomb.npz").write_bytes(bytes(bomb))
    err = _run(graph_file, tmp_path, capsys, "--data", str(tmp_path / "bomb.npz"))
    assert "x and y inflate to" in err and "over the 2,147,483,648 B limit" in err


def test_float_inputs_are_quantized_with_the_input_scale(training, forward, tmp_path):
    image = training.tensors[training_info(training)["input"]]
    codes = images(forward, 4)
    scale, zero = image.quant.scale[0], image.quant.zero_point
    np.savez(tmp_path / "f.npz", x=(codes.astype(np.float64) - zero) * scale, y=_labels(training, 4).astype(np.uint8))
    data = load_npz(tmp_path / "f.npz", training)
    assert data.x.dtype == np.int8 and np.array_equal(data.x, codes)
    assert data.y.dtype == np.int64 and data.y.tolist() == _labels(training, 4).tolist()


def test_load_npz_never_unpickles(training, forward, tmp_path):
    path = tmp_path / "p.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", _npz_member(images(forward, 2)))
        archive.writestr("y.npy", _npz_member(np.array([0, None], dtype=object)))
    with pytest.raises(DataError, match="array 'y' holds Python objects, which are never unpickled"):
        load_npz(path, training)


def _npz_member(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "nan"], r"--lr must be a finite number in \[0, 100\], got nan"),
        (["--head-lr", "nan"], r"--head-lr must be a finite number in \[0, 100\], got nan"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--lr", "3.4e38"], "--lr must be a finite number"),
        (["--head-lr", "-0.01"], "--head-lr must be a finite number"),
        (["--lr", "101"], "--lr must be a finite number"),
        (["--epochs", "0"], r"--epochs must be an integer >= 1, got 0"),
        (["--steps", "-3"], r"--steps must be an integer >= 1, got -3"),
        (["--seed", "-1"], r"--seed must be an integer in \[0, 4294967295\]"),
        (["--seed", str(2**32)], r"--seed must be an integer in \[0, 4294967295\]"),
        (["-o", "{tmp}"], "is a folder; name a file to write"),
        (["-o", "{tmp}/file.txt/x.tte"], "file.txt is not a folder"),
        (["--json", "/proc/x/run.json"], "cannot write into /proc"),
        (["-o", "{tmp}/same", "--json", "{tmp}/same"], "-o and --json both name"),
        (["--project", "{tmp}/file.txt"], "is a file; name a folder"),
        (["--test", "{data}", "--board", "qemu-mps2-an500"], "--test evaluates on the host only"),
    ],
)
def test_arguments_are_refused_in_one_line(training, forward, graph_file, tmp_path, capsys, argv, message):
    data = tmp_path / "data.npz"
    np.savez(data, x=images(forward, 3), y=_labels(training, 3))
    (tmp_path / "file.txt").write_text("a file")
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{data}", str(data)) for a in argv]
    err = _run(graph_file, tmp_path, capsys, "--data", str(data), *argv)
    assert re.search(message, err), err


def test_digits_and_float_inputs_become_the_graphs_input_codes(training, tmp_path):
    pytest.importorskip("sklearn")
    from tte_codegen.training import load_data
    from tte_ir.datasets import load_digits, to_codes

    image = training.tensors[training_info(training)["input"]]
    data = load_data("digits", training, [0, 1, 2, 3])
    digits = load_digits(image.shape[1:], [0, 1, 2, 3])
    assert data.x.dtype == np.int8 and data.x.shape == (len(digits), *image.shape[1:])
    assert np.array_equal(data.x, to_codes(digits.x, image.quant)) and np.array_equal(data.y, digits.y)
    np.savez(tmp_path / "f.npz", x=digits.x[:5], y=digits.y[:5])
    assert np.array_equal(load_data(str(tmp_path / "f.npz"), training).x, data.x[:5])


def test_digits_with_more_classes_than_the_head_are_refused_before_the_build(graph_file, tmp_path, capsys):
    pytest.importorskip("sklearn")
    err = _run(graph_file, tmp_path, capsys, "--data", "digits")
    assert "digits: the data has 10 classes, the graph's head 4; pass --classes (e.g. 0-3)" in err, err
    err = _run(graph_file, tmp_path, capsys, "--data", "digits", "--classes", "0-3", "--test", str(tmp_path / "t.npz"))
    assert "t.npz: no such file" in err, err


def test_run_trains_on_digits(graph_file, tmp_path, capsys):
    pytest.importorskip("sklearn")
    code = main(["run", str(graph_file), "--data", "digits", "--classes", "5-8", "--steps", "3", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "trained 3 steps on the host" in captured.out
