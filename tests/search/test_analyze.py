"""Contribution analysis: the shared frozen prefix is exact, an interrupted analysis resumes from its
cache (in process and through `tte analyze` stopped by SIGINT), and the results do not depend on it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import ANALYZE_ARGS, CLASSES, RESOLUTION

SETTINGS = {"window": 6, "bias_points": 2, "first_ratios": (1.0,), "refine": 1, "epochs": 1, "batch_size": 64}


def _train_data():
    from tte_algo.data import load_digits, parse_classes

    train, _ = load_digits(RESOLUTION, parse_classes(CLASSES)).split(0.25, 0)
    return train


class _Counting:
    """An in-process executor that counts the jobs it runs and raises after ``fail_after`` of them."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.ran = 0
        self.fail_after = fail_after
        self.workers = 1

    def imap_unordered(self, fn, items):
        for i, item in enumerate(items):
            if self.fail_after is not None and self.ran >= self.fail_after:
                raise KeyboardInterrupt
            self.ran += 1
            yield i, fn(item)


def test_suffix_training_is_exact(tiny_model: Path) -> None:
    """Training the suffix graph on the prefix's cached activations changes exactly the same codes
    (with nearest rounding: stochastic rounding draws its noise by conv index, which the cut shifts)."""
    import torch

    from tte_algo.data import Dataset
    from tte_algo.search import split_graph
    from tte_algo.sim import Int8Sim
    from tte_algo.train import TrainConfig
    from tte_ir import load

    graph = load(tiny_model)
    data = _train_data().subset(torch.arange(96))
    prefix, suffix, offset = split_graph(graph, 15)
    assert prefix and offset <= 15 and len(suffix.inputs) == 1
    with torch.no_grad():
        cut = Int8Sim(graph).run({graph.inputs[0]: data.codes.float()}, prefix)[suffix.inputs[0]]
    cut_data = Dataset(cut.to(torch.int8), data.labels, data.classes)
    config = TrainConfig(epochs=1, batch_size=16, eval_every_epoch=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the analysis's jobs run; a contended thread pool only spins
    try:
        full, part = _both(graph, suffix, offset, data, cut_data, config)
    finally:
        torch.set_num_threads(threads)
    assert full.metrics["test_accuracy"] == part.metrics["test_accuracy"]
    for name, array in part.graph.constants.items():
        assert (full.graph.constants[name] == array).all(), name


def _both(graph, suffix, offset, data, cut_data, config):
    """The same scheme trained on the whole graph and on the suffix graph (nearest rounding)."""
    from tte_algo.train import train_int8
    from tte_ir import Scheme, WeightUpdate

    full = train_int8(graph, Scheme(n_bias=6, weights=(WeightUpdate(17, 0.5),), rounding="nearest"), data, data, config)
    scheme = Scheme(n_bias=6, weights=(WeightUpdate(17 - offset, 0.5),), rounding="nearest")
    return full, train_int8(suffix, scheme, cut_data, cut_data, config)


def test_interrupted_analysis_resumes_from_the_cache(tiny_model: Path, tmp_path: Path) -> None:
    from tte_algo.search import AnalysisReport, AnalysisSettings, JobCache, analyze
    from tte_ir import load

    graph, train = load(tiny_model), _train_data()
    settings = AnalysisSettings(**SETTINGS)
    stopped = _Counting(fail_after=3)
    report = AnalysisReport()
    with pytest.raises(KeyboardInterrupt):
        analyze(graph, train, settings, cache=JobCache(tmp_path / "cache"), executor=stopped, report=report)
    assert stopped.ran == 3 and report.ran == 3
    assert len(list((tmp_path / "cache").glob("*.json"))) == 3

    resumed = _Counting()
    report = AnalysisReport()
    contrib = analyze(graph, train, settings, cache=JobCache(tmp_path / "cache"), executor=resumed, report=report)
    assert report.cached == 3 and resumed.ran == report.ran == report.total - 3
    assert contrib.metadata["jobs"] == {"total": report.total, "cached": 3, "ran": report.total - 3}

    fresh = _Counting()
    again = analyze(graph, train, settings, cache=JobCache(tmp_path / "fresh"), executor=fresh)
    assert fresh.ran == report.total
    assert (again.dacc_bias, again.dacc_weight) == (contrib.dacc_bias, contrib.dacc_weight)
    grid = sorted(contrib.dacc_bias)
    assert grid == [0, 3, 6] and contrib.dacc_bias[0] == 0.0
    assert {conv for conv, _ in contrib.dacc_weight} == set(contrib.metadata["candidates"])
    refined = contrib.metadata["refined"]
    assert len(refined) == 1
    assert {r for conv, r in contrib.dacc_weight if conv == refined[0]} == {0.125, 0.25, 0.5, 1.0}


def _analyze_cmd(model: Path, out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "tte_ir.cli", "analyze", str(model), "-o", str(out), "--cache", str(cache),
            "--workers", "1", "--quiet", *ANALYZE_ARGS]  # fmt: skip


def test_cli_analyze_stopped_by_sigint_resumes(tiny_model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "contrib.json"
    proc = subprocess.Popen(
        _analyze_cmd(tiny_model, out, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while len(list(cache.glob("*.json"))) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "run the same command again to resume" in stdout
    assert not out.exists()
    done = len(list(cache.glob("*.json")))
    assert done >= 2

    rerun = subprocess.run(_analyze_cmd(tiny_model, out, cache), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    total, cached, ran = map(int, re.search(r"jobs: (\d+) \((\d+) from the cache, (\d+) run\)", rerun.stdout).groups())
    assert cached == done and cached + ran == total and ran > 0
    table = json.loads(out.read_text())
    assert table["format"] == "tte-contributions" and table["metadata"]["jobs"]["cached"] == done


def test_cli_analyze_refusals(tiny_model: Path, tmp_path: Path) -> None:
    from .helpers import tte

    for args, message in [
        (("--ratios", "1/3"), "first ratios must be among"),
        (("--window", "99"), "window must be in 1..21"),
        (("--convs", "2"), "outside the analysis window"),
        (("--classes", "0-9"), "the data has 10 classes, the graph's head 5"),
        (("--data", str(tmp_path / "nowhere")), "not a folder"),
    ]:
        r = tte("analyze", str(tiny_model), "-o", "c.json", "--quiet", "--workers", "1", *args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "c.json").exists()
