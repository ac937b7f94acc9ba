"""The `tte` command: import-pkl, inspect, and one-line errors with exit status 2."""

from __future__ import annotations

from tte_ir.cli import main


def test_import_and_inspect(tmp_path, seed_model_path, capsys):
    out = tmp_path / "m.tte"
    assert main(["import-pkl", str(seed_model_path("mcunet-5fps")), "-o", str(out), "--classes", "10"]) == 0
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "totals: 42 convs, 1 linear layer, 7 adds, 22,455,104 MACs" in text
    assert "464,816 int8 weight bytes" in text
    assert "blocks.13.pw2" in text


def test_error_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.tte"
    bad.write_bytes(b"garbage")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("tte inspect: error: ") and "bad.tte: not a .tte file" in err
    assert "Traceback" not in err


def test_missing_model_exit_2(tmp_path, capsys):
    assert main(["import-pkl", str(tmp_path / "none.pkl"), "-o", str(tmp_path / "x.tte")]) == 2
    assert "none.pkl: cannot read" in capsys.readouterr().err
    assert not (tmp_path / "x.tte").exists()
