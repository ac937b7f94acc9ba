"""The per-model benchmarks' main loop (tte_algo.bench_tables): every model's table in turn, a model tte
refuses in one stderr line without hiding the others'."""

from __future__ import annotations

from tte_algo.bench_tables import print_tables, usage_error
from tte_ir import TteError


def _report(name: str) -> dict[str, str]:
    if name == "bad":
        raise TteError("bad.tflite: op CUSTOM is not supported")
    return {"model": name}


def test_a_refused_model_does_not_hide_the_others(capsys) -> None:
    assert print_tables("zoo", ["a", "bad", "b"], _report, lambda r: f"table of {r['model']}") == 2
    captured = capsys.readouterr()
    assert captured.out == "table of a\ntable of b\n"
    assert captured.err == "zoo: bad: error: bad.tflite: op CUSTOM is not supported\n"
    assert print_tables("tflite", ["a"], _report, lambda r: r["model"]) == 0
    assert capsys.readouterr() == ("a\n", "")


def test_a_usage_error_is_one_line_and_status_2(capsys) -> None:
    assert usage_error("tflite", TteError("--epochs must be an integer >= 1, got 0")) == 2
    assert capsys.readouterr().err == "tflite: error: --epochs must be an integer >= 1, got 0\n"
