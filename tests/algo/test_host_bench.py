"""The host benchmark (nox -s bench_host) end to end on a tiny graph: C built, timed beside PyTorch, one table."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.algo.helpers import random_graph

pytest.importorskip("torch", reason="tte-algo needs torch (pip install torch==2.13.0 -c constraints.txt)")
pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="building the host library needs cmake")


def _tiny(tmp_path):
    from tte_ir import Scheme, WeightUpdate, save, save_scheme

    graph_path, scheme_path = tmp_path / "tiny.tte", tmp_path / "scheme.json"
    save(random_graph(3, head="fp32", size=8), graph_path)
    save_scheme(Scheme(n_bias=2, weights=(WeightUpdate(1, 0.5), WeightUpdate(2, 0.5)), head="fp32"), scheme_path)
    return graph_path, scheme_path


@pytest.mark.slow  # builds the engine and the model (about 10 s on 2 cores)
def test_table_of_a_tiny_model(tmp_path, capsys):
    from tte_algo.host_bench import main

    graph_path, scheme_path = _tiny(tmp_path)
    callgrind = "1" if shutil.which("valgrind") else "0"
    argv = ["--tte", str(graph_path), "--scheme", str(scheme_path), "--out", str(tmp_path / "out")]
    argv += ["--steps", "2", "--rounds", "2", "--callgrind", callgrind, "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:4] == ["model", "scheme", "tte C ms/step", "PyTorch float ms/step"]
    assert set(lines[1]) <= {"|", "-"}
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    assert len(row) == len(header) and row[0] == "tiny" and row[1] == "bias last 2; w 1@0.5, 2@0.5; head"
    c_ms, float_ms, sim_ms = float(row[2]), float(row[3]), float(row[5])
    assert c_ms > 0 and float_ms > 0 and sim_ms > 0
    assert float(row[4].rstrip("x")) == pytest.approx(c_ms / float_ms, rel=0.02, abs=0.01)
    assert lines[3].startswith("batch 1, 1 thread; medians of 2 interleaved rounds of 2 steps")
    (result,) = json.loads((tmp_path / "r.json").read_text())
    assert all(len(v) == 2 for v in result["rounds_ms_per_step"].values())
    assert result["build_type"] == "Release"
    if callgrind == "1":
        # the step of a 3x8x8 model: thousands of instructions, far from a whole program's millions
        assert 1e3 < result["callgrind"]["per_step"] < 2e7
        assert row[7].endswith(" M") and float(row[8]) > 0


def test_float_twin_computes_what_the_int8_graph_does():
    """The PyTorch side is the same network: its float logits track the int8 simulation's."""
    import torch

    from tte_algo.floatgraph import FloatNet
    from tte_algo.host_bench import demo_case, float_twin
    from tte_algo.sim import Int8Sim

    graph = demo_case().graph
    net, sim = FloatNet(float_twin(graph)), Int8Sim(graph)
    x = torch.from_numpy(np.random.default_rng(0).integers(-128, 128, size=(8, 3, 32, 32)).astype(np.int8))
    quant = graph.tensors[graph.inputs[0]].quant
    with torch.no_grad():
        a = net((x.float() - quant.zero_point) * quant.tensor_scale).flatten().numpy()
        b = sim(x).flatten().numpy()
    assert np.corrcoef(a, b)[0, 1] > 0.95


def test_bad_arguments_exit_2(tmp_path, capsys):
    from tte_algo.host_bench import main

    assert main(["--tte", str(tmp_path / "x.tte")]) == 2
    assert capsys.readouterr().err.strip() == "error: --tte and --scheme go together"
    assert main(["--models", "resnet"]) == 2
    assert "unknown model(s) resnet" in capsys.readouterr().err
