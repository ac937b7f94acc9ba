"""The host benchmark (``nox -s bench_host``): milliseconds per training step of the generated C on the
host against PyTorch eager on one CPU thread, for the same model and scheme, measured in one run.

For each model: compile the training graph, generate the C, build the host library (CMake ``Release``,
as :func:`tte_codegen.build` configures it) and time ``HostModel.train_step`` at batch 1 beside:

- **PyTorch float**: the float network of the same architecture (the int8 graph's weights dequantized,
  activations from the output ranges: relu6, relu or none) with ``requires_grad`` only on what the
  scheme trains: the biases of the last ``n_bias`` convs, the weights of the scheme's convs and the
  head. A weight slice (ratio < 1) is approximated by the whole weight with its gradient masked to the
  scheme's channels, so PyTorch computes the whole weight gradient where tte computes the slice's.
  One step is forward, cross-entropy, backward and an SGD step (``torch.optim.SGD``).
- **PyTorch int8 simulation**: :class:`tte_algo.sim.Int8Sim` on the whole forward, the gradients of
  the trained codes and head, and the QAS update with the scheme's rounding (what ``tte train`` runs,
  there with the frozen prefix cached; here it runs every step, as the C does).

The machine is shared and noisy, so the implementations are interleaved: ``rounds`` rounds of ``steps``
steps each (the order rotating by round, after a warm-up step each), and every figure is the median
over rounds of that round's milliseconds per step; ratios are of the medians. With valgrind installed,
``--callgrind`` also counts the instructions of a few C steps (a small C driver linking the library,
``--toggle-collect`` on the training step): the repeatable host measure.

The models: ``demo`` (the ``tte demo`` network, mcunet-tiny at 32x32, seed-initialized instead of
pretrained: the time of a step does not depend on the values; the scheme the demo chooses under its
budget) and ``mcunet-5fps`` (the seed model under the seed's ``49kb`` scheme, from ``--shared``); or
any ``.tte`` forward graph with ``--tte FILE --scheme SPEC``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from tte_ir import DType, Graph, Op, Scheme, TteError, conv_nodes
from tte_ir.autodiff import fp32_head
from tte_ir.cli_args import parse_bytes
from tte_ir.scheme import is_depthwise, select_channels
from tte_ir.serialize import atomic_write_bytes

__all__ = ["BenchCase", "bench_case", "demo_case", "float_twin", "format_table", "main", "mcunet_case"]

IMPLEMENTATIONS = ("tte C", "PyTorch float", "PyTorch int8 sim")


@dataclass(frozen=True)
class BenchCase:
    """One model to time: its int8 forward graph and the scheme it trains under."""

    name: str
    graph: Graph
    scheme: Scheme


def demo_case() -> BenchCase:
    """The ``tte demo`` model (seed-initialized) and the scheme the demo chooses under its budget."""
    from tte_algo.data import dequantize_input, load_digits
    from tte_algo.demo import DemoConfig, choose_scheme
    from tte_algo.floatgraph import FloatNet
    from tte_algo.fx_import import import_fx
    from tte_algo.ptq import calibrate, export_graph
    from tte_algo.zoo import build_model

    config = DemoConfig()
    model = build_model(config.model, len(config.target), seed=config.seed)
    fgraph = import_fx(model, config.model)
    calibration = load_digits(config.resolution, config.target).codes[:256]
    ranges = calibrate(FloatNet(fgraph), [dequantize_input(calibration)])
    shape = (3, config.resolution, config.resolution)
    graph = export_graph(fgraph, ranges, shape, head="fp32", metadata={"source": "tte_algo.host_bench (demo)"})
    scheme, _, _ = choose_scheme(config, graph)
    return BenchCase(f"demo ({config.model} {config.resolution}x{config.resolution})", graph, scheme)


def mcunet_case(shared: Path) -> BenchCase:
    """MCUNet-5fps (128x128, 10 classes, fp32 head) under the seed's ``49kb`` scheme, from ``shared``."""
    from tte_ir import import_seed_pkl, load_scheme

    model = shared / "models" / "mcunet-5fps.pkl"
    schemes = shared / "schemes" / "seed-schemes.json"
    for path in (model, schemes):
        if not path.exists():
            raise TteError(f"{path} not found: pass --shared, the folder with models/ and schemes/")
    graph = import_seed_pkl(model, 10, head="fp32")
    return BenchCase("mcunet-5fps 49kb", graph, load_scheme(schemes, ("mcunet-5fps", "49kb")))


def _activation(graph: Graph, node: Any) -> str | None:
    """relu6, relu or None: the float activation whose range the node's int8 output clamp keeps."""
    quant = graph.tensors[node.outputs[0]].quant
    scale, zero = quant.tensor_scale, quant.zero_point
    lo = scale * (node.attrs.get("act_min", -128) - zero)
    hi = scale * (node.attrs.get("act_max", 127) - zero)
    if lo < -1e-6:
        return None
    return "relu6" if hi <= 6.0 + 1e-3 else "relu"


def float_twin(graph: Graph) -> Any:
    """The float network of ``graph``'s architecture (a :class:`tte_algo.floatgraph.FloatGraph`): int8
    weights and biases dequantized, an fp32 head as it is, each op's activation from its output range.
    Ops: conv2d, add, global average pool, flatten, linear (what the benchmarked models use)."""
    from tte_algo.floatgraph import FloatGraph, FloatOp

    inputs = {graph.inputs[0]: "input"}
    ops = []
    for node in graph.nodes:
        ins = tuple(inputs.get(name, name) for name in node.inputs)
        kind, weight, bias, act = node.op, None, None, None
        if node.op in (Op.CONV2D, Op.LINEAR):
            w, b = graph.constants[node.inputs[1]], graph.constants[node.inputs[2]]
            ins = ins[:1]
            if graph.tensors[node.inputs[1]].dtype is DType.FLOAT32:
                weight, bias = w.astype(np.float64), b.astype(np.float64)
            else:
                s_w = graph.tensors[node.inputs[1]].quant.scale_array().astype(np.float64)
                s_x = graph.tensors[node.inputs[0]].quant.tensor_scale
                weight = w.astype(np.float64) * s_w.reshape((-1,) + (1,) * (w.ndim - 1))
                bias = b.astype(np.float64) * s_x * s_w
                act = _activation(graph, node)
        elif node.op is Op.ADD:
            act = _activation(graph, node)
        elif node.op not in (Op.GLOBAL_AVG_POOL, Op.RESHAPE):
            raise TteError(f"{node.describe()}: the host benchmark's float network has no {node.op.name.lower()}")
        attrs = {k: node.attrs[k] for k in ("stride", "padding", "groups") if k in node.attrs}
        ops.append(FloatOp(kind, node.name, ins, node.outputs[0], weight, bias, act=act, **attrs))
    return FloatGraph(graph.name, ops, graph.outputs[0])


def _head(graph: Graph) -> Graph:
    """The graph with an fp32 head, as the training-graph compiler trains a scheme with head ``fp32``."""
    from tte_algo.sim import head_node

    if graph.tensors[head_node(graph).inputs[1]].dtype is DType.FLOAT32:
        return graph
    return fp32_head(graph)


def _float_step(graph: Graph, scheme: Scheme) -> Callable[[np.ndarray, int], float]:
    """One PyTorch float training step of the scheme's trainable subset (module docstring)."""
    from tte_algo.floatgraph import FloatNet
    from tte_algo.sim import head_node

    net = FloatNet(float_twin(graph))
    for p in net.parameters():
        p.requires_grad_(False)
    convs = conv_nodes(graph)
    masks: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    body: list[torch.nn.Parameter] = []
    for i, node in enumerate(convs):
        if scheme.trains_bias(i, len(convs)):
            body.append(net.bias(node.name))
        ratio = scheme.ratio_of(i)
        if ratio:
            weight = net.weight(node.name)
            depthwise = is_depthwise(graph, node)
            channels = select_channels(graph.constants[node.inputs[1]], ratio, depthwise)
            mask = torch.zeros(weight.shape[0] if depthwise else weight.shape[1])
            mask[torch.as_tensor(channels, dtype=torch.long)] = 1.0
            shape = (-1, 1, 1, 1) if depthwise else (1, -1) + (1,) * (weight.ndim - 2)
            body.append(weight)
            if ratio < 1:
                masks.append((weight, mask.reshape(shape)))
    head = head_node(graph)
    groups = [{"params": body, "lr": scheme.lr}]
    if scheme.train_head:
        groups.append({"params": [net.weight(head.name), net.bias(head.name)], "lr": scheme.head_lr})
    groups = [g for g in groups if g["params"]]
    for group in groups:
        for p in group["params"]:
            p.requires_grad_(True)
    optimizer = torch.optim.SGD(groups)
    quant = graph.tensors[graph.inputs[0]].quant

    def step(x: np.ndarray, label: int) -> float:
        image = (torch.from_numpy(x).to(torch.float32) - quant.zero_point) * quant.tensor_scale
        loss = F.cross_entropy(net(image), torch.tensor([label]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for weight, mask in masks:
            weight.grad.mul_(mask)
        optimizer.step()
        return float(loss.detach())

    return step


def _sim_step(graph: Graph, scheme: Scheme) -> Callable[[np.ndarray, int], float]:
    """One step of the int8 simulation: whole forward, code gradients, the QAS update (tte train's)."""
    from tte_algo.sim import Int8Sim
    from tte_algo.train import _apply, _step_value, _trained_tensors

    device = torch.device("cpu")
    sim = Int8Sim(graph, device=device)
    trained, float_head = _trained_tensors(graph, scheme, True, device)
    head = {name: sim.constants[name].clone() for name in float_head}
    count = 0

    def step(x: np.ndarray, label: int) -> float:
        nonlocal count
        params = {t.name: t.leaf() for t in trained}
        params.update({name: p.detach().requires_grad_(True) for name, p in head.items()})
        loss = F.cross_entropy(sim(torch.from_numpy(x), params), torch.tensor([label]))
        grads = torch.autograd.grad(loss, list(params.values()))
        with torch.no_grad():
            for t, g in zip(trained, grads[: len(trained)], strict=True):
                value, momentum = _step_value(t, g.to(torch.float32), scheme.lr, scheme)
                _apply(t, value, momentum, scheme, count)
            for name, g in zip(float_head, grads[len(trained) :], strict=True):
                head[name] = head[name] - scheme.head_lr * g
        count += 1
        return float(loss.detach())

    return step


def _trains(scheme: Scheme) -> str:
    """What a scheme trains, in a few words: biases of the last n convs, the weight updates and their
    ratios, the head."""
    weights = ", ".join(f"{w.conv}" + ("" if w.ratio == 1 else f"@{w.ratio:g}") for w in scheme.weights)
    parts = [f"bias last {scheme.n_bias}", f"w {weights}" if weights else "", "head" if scheme.train_head else ""]
    return "; ".join(p for p in parts if p)


def _driver_source(name: str) -> str:
    """A C program running ``argv[1]`` training steps of the generated model on fixed images."""
    return f"""#include <stdio.h>
#include <stdlib.h>
#include "model.h"

int main(int argc, char **argv) {{
    int steps = argc > 1 ? atoi(argv[1]) : 1;
    float loss = 0.0f;
    for (int s = 0; s < steps; ++s) {{
        int8_t *image = {name}_input();
        for (size_t i = 0; i < {name.upper()}_INPUT_BYTES; ++i) image[i] = (int8_t)((i * 37u + (size_t)s * 11u) & 0xff);
        loss = {name}_train_step(image, s % {name.upper()}_CLASSES, NULL);
    }}
    printf("%g\\n", (double)loss);
    return 0;
}}
"""


def _callgrind(project: Any, library: Path, steps: int, folder: Path) -> int:
    """Instructions callgrind counts inside ``steps`` calls of the generated training step."""
    name = str(project.manifest["name"])
    source = folder / "callgrind_driver.c"
    atomic_write_bytes(source, _driver_source(name).encode())
    driver = folder / "callgrind_driver"
    include = project.root / "engine" / "include"
    compile_ = ["cc", "-O2", "-std=c99", str(source), f"-I{project.path}", f"-I{include}", "-o", str(driver)]
    compile_ += [f"-L{library.parent}", f"-l{name}", f"-Wl,-rpath,{library.parent}"]
    result = subprocess.run(compile_, capture_output=True, text=True)
    if result.returncode != 0:
        raise TteError(f"compiling the callgrind driver failed: {result.stderr.strip()[-2000:]}")
    out = folder / "callgrind.out"
    command = ["valgrind", "--tool=callgrind", f"--toggle-collect={name}_train_step", f"--callgrind-out-file={out}"]
    result = subprocess.run([*command, str(driver), str(steps)], capture_output=True, text=True)
    if result.returncode != 0:
        raise TteError(f"valgrind failed: {result.stderr.strip()[-2000:]}")
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise TteError(f"{out}: no instruction total")


def bench_case(
    case: BenchCase,
    out: Path,
    steps: int,
    rounds: int,
    sim: bool = True,
    callgrind: int = 0,
    budget: int | None = None,
) -> dict:
    """Time ``case``'s training step in the generated C (compiled within ``budget`` bytes: see
    :func:`tte_ir.compiler.compile_training`) and in PyTorch (module docstring); returns the medians
    (ms per step), every round's figures and, with ``callgrind`` steps, the C instructions."""
    from tte_codegen import HostModel, generate
    from tte_ir.compiler import compile_training

    graph = _head(case.graph)
    training = compile_training(graph, case.scheme, budget=budget)
    folder = out / "".join(c if c.isalnum() else "-" for c in case.name)
    project = generate(training, folder / "model")
    host = HostModel(project, folder / "build-host")
    cache = (folder / "build-host" / "CMakeCache.txt").read_text()
    build_type = next((ln.split("=", 1)[1] for ln in cache.splitlines() if ln.startswith("CMAKE_BUILD_TYPE:")), "")
    flags = next((ln.split("=", 1)[1] for ln in cache.splitlines() if ln.startswith("CMAKE_C_FLAGS_RELEASE:")), "")

    def c_step(x: np.ndarray, label: int) -> float:
        """A C step that must be a whole one: a skipped update (non-finite) would time less work."""
        loss = host.train_step(x, label)
        if host.last_status != "ok":
            raise TteError(f"{case.name}: the C training step reported {host.last_status}; the timing would be short")
        return loss

    implementations: dict[str, Callable[[np.ndarray, int], float]] = {
        "tte C": c_step,
        "PyTorch float": _float_step(graph, case.scheme),
    }
    if sim:
        implementations["PyTorch int8 sim"] = _sim_step(graph, case.scheme)
    rng = np.random.default_rng(0)
    shape = project.input_shape
    images = rng.integers(-128, 128, size=(steps, *shape)).astype(np.int8)
    labels = rng.integers(0, int(project.manifest["classes"]), size=steps)
    for run in implementations.values():
        run(images[0], int(labels[0]))
    times: dict[str, list[float]] = {key: [] for key in implementations}
    keys = list(implementations)
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            run = implementations[key]
            started = time.perf_counter()
            for x, y in zip(images, labels, strict=True):
                run(x, int(y))
            times[key].append(1000 * (time.perf_counter() - started) / steps)
    medians = {key: statistics.median(values) for key, values in times.items()}
    result = {
        "model": case.name,
        "scheme": case.scheme.to_json(),
        "budget": budget,
        "trains": _trains(case.scheme),
        "steps": steps,
        "rounds": rounds,
        "build_type": build_type,
        "c_flags": flags.strip(),
        "macs_per_step": int(project.manifest["macs_per_step"]),
        "ms_per_step": medians,
        "rounds_ms_per_step": times,
        "ratio_c_over_float": medians["tte C"] / medians["PyTorch float"],
    }
    if sim:
        result["ratio_c_over_sim"] = medians["tte C"] / medians["PyTorch int8 sim"]
    if callgrind:
        instructions = _callgrind(project, host.library_path, callgrind, folder)
        result["callgrind"] = {"steps": callgrind, "per_step": instructions / callgrind}
    return result


def format_table(results: list[dict]) -> str:
    """One row per model: ms per step of each implementation (medians), the ratios, callgrind's count."""
    header = ["model", "scheme", "tte C ms/step", "PyTorch float ms/step", "C / float", "int8 sim ms/step", "C / sim"]
    header += ["C instr/step (callgrind)", "instr/MAC"]
    rows = []
    for r in results:
        ms = r["ms_per_step"]
        sim = "PyTorch int8 sim" in ms
        grind = r.get("callgrind")
        rows.append(
            [
                r["model"],
                r["trains"],
                f"{ms['tte C']:.2f}",
                f"{ms['PyTorch float']:.2f}",
                f"{r['ratio_c_over_float']:.2f}x",
                f"{ms['PyTorch int8 sim']:.2f}" if sim else "-",
                f"{r['ratio_c_over_sim']:.2f}x" if sim else "-",
                f"{grind['per_step'] / 1e6:.1f} M" if grind else "-",
                f"{grind['per_step'] / r['macs_per_step']:.2f}" if grind else "-",
            ]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    lines = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(row) for row in rows]
    if results:
        first = results[0]
        lines.append(
            f"batch 1, 1 thread; medians of {first['rounds']} interleaved rounds of {first['steps']} steps; "
            f"C built {first['build_type']} ({first['c_flags']}), "
            + (f"compiled within {first['budget']:,} B" if first["budget"] else "smallest-peak schedule")
            + ". Wall-clock figures on a shared machine: "
            "compare only the ratios within one run."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m tte_algo.host_bench``: the table on stdout; bad input exits 2 with one line."""
    parser = argparse.ArgumentParser(prog="python -m tte_algo.host_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,mcunet-5fps", help="comma-separated: demo, mcunet-5fps")
    parser.add_argument("--tte", type=Path, help="a forward graph (.tte) to time instead of --models")
    parser.add_argument("--scheme", help="the scheme of --tte (FILE or FILE:model/label)")
    parser.add_argument("--shared", type=Path, default=Path("../shared"), help="folder with models/ and schemes/")
    parser.add_argument("--out", type=Path, default=Path("out/bench_host"), help="generated projects and builds")
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--no-sim", action="store_true", help="leave out the int8 simulation")
    parser.add_argument("--callgrind", type=int, default=3, help="C steps counted under callgrind (0: none)")
    parser.add_argument("--budget", help="compile the C within this planned total, e.g. 123KB (default: smallest peak)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    try:
        if args.steps < 1 or args.rounds < 1 or args.callgrind < 0:
            raise TteError("--steps and --rounds must be positive and --callgrind at least 0")
        if (args.tte is None) != (args.scheme is None):
            raise TteError("--tte and --scheme go together")
        budget = None if args.budget is None else parse_bytes(args.budget, "--budget")
        callgrind = args.callgrind
        if callgrind and shutil.which("valgrind") is None:
            print("valgrind not installed: no callgrind counts", file=sys.stderr)
            callgrind = 0
        torch.set_num_threads(1)
        results = []
        for case in _cases(args):
            results.append(bench_case(case, args.out, args.steps, args.rounds, not args.no_sim, callgrind, budget))
            print(f"{case.name}: done", file=sys.stderr)
        print(format_table(results))
        if args.json is not None:
            atomic_write_bytes(args.json, (json.dumps(results, indent=2) + "\n").encode())
    except TteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _cases(args: argparse.Namespace) -> list[BenchCase]:
    """The models the command line names."""
    from tte_ir import load, load_scheme

    if args.tte is not None:
        return [BenchCase(args.tte.stem, load(args.tte), load_scheme(args.scheme))]
    makers = {"demo": demo_case, "mcunet-5fps": lambda: mcunet_case(args.shared)}
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in makers]
    if unknown or not names:
        raise TteError(f"unknown model(s) {', '.join(unknown) or '(none)'} in --models (demo, mcunet-5fps)")
    return [makers[n]() for n in names]


if __name__ == "__main__":
    sys.exit(main())
