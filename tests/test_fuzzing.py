"""The fuzz tests' shared pieces (tests/fuzzing.py): a case past its time limit is a hang, and the report
file holds both readers' sections the way ``nox -s fuzz`` reads them."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.fuzzing import Hang, time_limit, write_report


def test_a_case_past_its_time_limit_is_a_hang() -> None:
    previous = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    with pytest.raises(Hang, match="longer than 0.05 s"), time_limit(0.05):
        time.sleep(5)
    assert time.monotonic() - started < 2
    assert signal.getsignal(signal.SIGALRM) is previous
    with time_limit(5):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # a case within its limit leaves no alarm behind


def test_the_report_keeps_the_tte_summary_beside_the_tflite_section(tmp_path, monkeypatch) -> None:
    report = tmp_path / "fuzz.json"
    report.write_text(json.dumps({"stale": 1}))
    monkeypatch.setenv("TTE_FUZZ_REPORT", str(report))
    write_report({"cases": 3, "outcomes": {"refused by load": 3}})
    write_report({"cases": 2, "outcomes": {"imported, forward ran": 2}}, section="tflite")
    assert json.loads(report.read_text()) == {
        "cases": 3,
        "outcomes": {"refused by load": 3},
        "tflite": {"cases": 2, "outcomes": {"imported, forward ran": 2}},
    }
    monkeypatch.delenv("TTE_FUZZ_REPORT")
    write_report({"cases": 0}, section="tflite")
    assert json.loads(report.read_text())["tflite"]["cases"] == 2
