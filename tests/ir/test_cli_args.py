"""The shared argument checks (tte_ir.cli_args) and their use by tte import-pkl, compile and plan:
bad numbers, budgets and output paths refused in one line, exit 2 (issue 15)."""

from __future__ import annotations

import json
import math
import re

import pytest

from tests.compiler.nets import residual_net
from tte_ir import TteError, save
from tte_ir.cli import main
from tte_ir.cli_args import (
    DataError,
    bounded_float,
    bounded_int,
    check_file_size,
    distinct_outputs,
    learning_rate,
    output_file,
    output_folder,
    parse_bytes,
    seed_value,
)


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, -1e-9, 100.000001, 3.4e38, 10**400, True, "0.1", None]
)
def test_learning_rates_outside_the_bound_are_refused(value):
    with pytest.raises(TteError, match=r"--lr must be a finite number in \[0, 100\], got "):
        learning_rate(value, "--lr")


def test_learning_rates_inside_the_bound_are_floats():
    assert learning_rate(0, "--lr") == 0.0 and isinstance(learning_rate(1, "--lr"), float)
    assert learning_rate(100, "--lr") == 100.0 and learning_rate(0.05, "--lr") == 0.05


def test_open_intervals_integers_and_seeds():
    assert bounded_float(0.5, "f", 0, 1, low_open=True, high_open=True) == 0.5
    for edge in (0.0, 1.0):
        with pytest.raises(TteError, match=r"f must be a finite number in \(0, 1\)"):
            bounded_float(edge, "f", 0, 1, low_open=True, high_open=True)
    assert bounded_int(3, "n", 1) == 3
    for bad in (0, 2.0, True, "3", None):
        with pytest.raises(TteError, match="n must be an integer >= 1"):
            bounded_int(bad, "n", 1)
    assert seed_value(2**32 - 1, "--seed") == 2**32 - 1
    for bad in (-1, 2**32, 1e300):
        with pytest.raises(TteError, match=r"--seed must be an integer in \[0, 4294967295\]"):
            seed_value(bad, "--seed")


@pytest.mark.parametrize(
    ("text", "size"), [("128KB", 131072), ("131072", 131072), ("0.5MB", 524288), (" 1 kib ", 1024), ("1GB", 1024**3)]
)
def test_budgets_parse(text, size):
    assert parse_bytes(text, "--budget") == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot read '' as a size"),
        ("   ", "cannot read"),
        ("-1KB", "cannot read"),
        ("1e3", "cannot read"),
        ("12 parsecs", "cannot read"),
        ("nan", "cannot read"),
        ("0", "is 0 B; a size must be at least 1 B"),
        ("0.0001KB", "is 0 B"),
    ],
)
def test_bad_budgets_are_refused(text, message):
    with pytest.raises(TteError, match=re.escape(message)) as caught:
        parse_bytes(text, "--budget")
    assert str(caught.value).startswith("--budget: ")


def test_output_paths(tmp_path):
    assert output_file(tmp_path / "a.tte", "-o") == tmp_path / "a.tte"
    assert output_file(tmp_path / "new" / "deeper" / "a.tte", "-o").name == "a.tte"  # the writers create folders
    (tmp_path / "f").write_text("x")
    for bad, message in (
        (tmp_path, "is a folder; name a file"),
        ("", "name a file to write"),
        (f"{tmp_path}/", "name a file to write"),
        (tmp_path / "f" / "a.tte", "is not a folder"),
        ("/proc/1/nope/a.tte", "cannot write into /proc"),
    ):
        with pytest.raises(TteError, match=re.escape(message)):
            output_file(bad, "-o")
    assert output_folder(tmp_path / "proj", "-o") == tmp_path / "proj"
    assert output_folder(tmp_path, "-o") == tmp_path
    with pytest.raises(TteError, match="is a file; name a folder"):
        output_folder(tmp_path / "f", "-o")
    assert list(tmp_path.iterdir()) == [tmp_path / "f"], "the probes leave nothing behind"
    distinct_outputs(("-o", tmp_path / "a"), ("--json", None), ("--plot", tmp_path / "b"))
    with pytest.raises(TteError, match="-o and --front both name"):
        distinct_outputs(("-o", tmp_path / "a"), ("--front", tmp_path / "." / "a"))


def test_data_file_sizes(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        check_file_size(tmp_path / "missing")
    with pytest.raises(DataError, match="not a file"):
        check_file_size(tmp_path)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(DataError, match="the file is empty"):
        check_file_size(tmp_path / "empty")
    (tmp_path / "big").write_bytes(b"x" * 11)
    with pytest.raises(DataError, match="11 B is over the 10 B limit"):
        check_file_size(tmp_path / "big", limit=10)
    assert check_file_size(tmp_path / "big", limit=11) == 11


@pytest.fixture
def forward_file(tmp_path):
    return save(residual_net(), tmp_path / "fwd.tte")


def _scheme(tmp_path, **fields):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"format": "tte-scheme", "version": 1, "n_bias": 2, **fields}))
    return path


def _refused(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", ""], "--budget: cannot read '' as a size"),
        (["--budget", "0"], "--budget: '0' is 0 B"),
        (["-o", "{tmp}"], "is a folder; name a file to write"),
        (["-o", "/proc/1/x/train.tte"], "cannot write into /proc"),
    ],
)
def test_compile_refuses_budgets_and_outputs(forward_file, tmp_path, capsys, extra, message):
    argv = ["compile", str(forward_file), "--scheme", str(_scheme(tmp_path)), "-o", str(tmp_path / "t.tte")]
    err = _refused(capsys, [*argv, *[a.replace("{tmp}", str(tmp_path)) for a in extra]])
    assert message in err


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"weights": [{"conv": 9, "ratio": 1}]}, '"weights": weight update of conv 9 is out of range'),
        ({"n_bias": 99}, '"n_bias": n_bias 99 exceeds the 5 convs'),
        ({"weights": [{"conv": 1.5, "ratio": 1}]}, '"weights"[0]: "conv" must be an integer'),
        ({"seed": 1e300}, '"seed" must be an integer in [0, 4294967295], got 1e+300'),
        ({"train_head": "no"}, '"train_head" must be true or false'),
    ],
)
def test_compile_names_the_scheme_file_and_field(forward_file, tmp_path, capsys, fields, message):
    scheme = _scheme(tmp_path, **fields)
    err = _refused(capsys, ["compile", str(forward_file), "--scheme", str(scheme), "-o", str(tmp_path / "t.tte")])
    assert f"{scheme}: " in err and message in err
    assert not (tmp_path / "t.tte").exists()


def test_plan_and_import_pkl_check_their_outputs(forward_file, tmp_path, capsys):
    assert "--plot" in _refused(capsys, ["plan", str(forward_file), "--plot", str(tmp_path)])
    err = _refused(capsys, ["import-pkl", "model.pkl", "-o", str(tmp_path)])
    assert "-o " in err and "is a folder" in err
    assert "--classes must be an integer >= 1" in _refused(
        capsys, ["import-pkl", "model.pkl", "-o", str(tmp_path / "m.tte"), "--classes", "0"]
    )
    assert "--seed must be an integer in [0, 4294967295]" in _refused(
        capsys, ["import-pkl", "model.pkl", "-o", str(tmp_path / "m.tte"), "--seed", "-5"]
    )
