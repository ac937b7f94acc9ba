"""The optimized forward kernels on Cortex-M: checked against the reference kernels and counted beside CMSIS-NN.

Both kernel programs (boards/programs/kernel_check_main.c, kernel_bench_main.c) read a table of conv
shapes that this module writes as C (:func:`shapes_source`): the pointwise, depthwise and dense convs
of a seed model (:func:`model_shapes`) or random ones (:func:`random_shapes`, :func:`dense_shapes`).
``bench`` builds ``tte_kernel_bench`` for QEMU Cortex-M7 (mps2-an500) and M4 (mps2-an386), with
CMSIS-NN compiled from ``../shared/anchors/cmsis-nn`` by the same board build and toolchain file when
that folder exists, runs it under ``-icount shift=0`` and prints instructions per MAC by kernel type, then
the fp32 backward kernels (input gradients, weight gradient + update) on the layers at 8x8 and below, or on
ResNet-8's convs (``--model resnet8``: :func:`resnet8_shapes`, every dense one with its backward)::

    python boards/tools/kernel_bench.py bench BUILD_DIR --model ../shared/models/mcunet-5fps.pkl
    python boards/tools/kernel_bench.py bench BUILD_DIR --model resnet8
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from firmware import BOARDS_DIR, QEMU_MACHINES, _table, build_board, run_qemu

from tte_ir.ops import as_padding, as_pair

__all__ = [
    "Shape", "bench", "build_programs", "check_results", "dense_shapes", "model_shapes", "random_shapes",
    "resnet8_shapes", "run_check", "shapes_source",
]  # fmt: skip

CMSIS_NN_DIR = BOARDS_DIR.parent.parent / "shared" / "anchors" / "cmsis-nn"
KINDS = {"pointwise_conv2d_fwd_s8": "pointwise", "depthwise_conv2d_fwd_s8": "depthwise", "conv2d_fwd_s8": "dense"}
RAM_SIZE = "2M"  # QEMU's mps2 SSRAM holds the largest MCUNet-5fps layer twice over; no real board runs these
BACKWARD_MAX_SIDE = 8  # the backward rows: the last blocks (8x8 and 4x4 inputs), the ones sparse updates train
# Instructions per MAC of TinyEngine's backward kernels on the same layers (issue 11's table, which gives 7x7
# without a stride and 3x3 as 3.4-4.0), for the ratio.
TINYENGINE = {
    "pointwise input gradient": 3.6,
    "depthwise input gradient 3x3 s1": 4.0,
    "depthwise input gradient 3x3 s2": 4.0,
    "depthwise input gradient 7x7 s1": 2.5,
    "depthwise input gradient 7x7 s2": 2.5,
    "pointwise weight gradient + update": 4.1,
}


@dataclass(frozen=True)
class Shape:
    """One conv layer: ``kind`` 'pointwise', 'depthwise' or 'dense'; ``kernel`` (KH, KW), ``stride``
    (sh, sw) and ``padding`` (top, left, bottom, right), a plain int meaning every axis or side;
    ``groups`` of a dense conv (a depthwise one has in_c, a pointwise one 1)."""

    name: str
    kind: str
    in_h: int
    in_w: int
    in_c: int
    out_c: int
    kernel: int | tuple[int, int] = 1
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int, int, int] = 0
    groups: int = 1
    backward: bool = False

    @property
    def window(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int, int, int]]:
        """``(kh, kw), (sh, sw), (top, left, bottom, right)``."""
        return as_pair(self.kernel), as_pair(self.stride), as_padding(self.padding)

    def _size(self) -> str:
        (kh, kw), (sh, sw), _ = self.window
        return f"{kh}x{kw} s{sh}" + ("" if sh == sw else f"x{sw}")

    @property
    def kind_label(self) -> str:
        """The kernel type of the bench table: 'pointwise', 'depthwise KHxKW' or 'dense KHxKW sS, C in'."""
        (kh, kw), _, _ = self.window
        if self.kind == "dense":
            return f"dense {self._size()}, {self.in_c} in"
        return "pointwise" if self.kind == "pointwise" else f"depthwise {kh}x{kw}"

    def backward_label(self, kind: str) -> str:
        """The backward table's type of this layer's ``kind`` ('bwd_x' or 'bwd_w_update') kernel."""
        what = "input gradient" if kind == "bwd_x" else "weight gradient + update"
        if self.kind == "pointwise":
            return f"pointwise {what}"
        if self.kind == "dense":
            return f"dense {what} {self._size()}, {self.in_h}x{self.in_w}x{self.in_c} -> {self.out_c}"
        (kh, kw), _, _ = self.window
        geometry = f" {self._size()}" if kind == "bwd_x" else f" {kh}x{kw}"
        return f"depthwise {what}{geometry}"

    @property
    def conv_groups(self) -> int:
        """The descriptor's group count."""
        return self.in_c if self.kind == "depthwise" else self.groups


def model_shapes(model: Path) -> list[Shape]:
    """The pointwise, depthwise and dense convs of a seed model (``tte import-pkl``), as the compiler calls them."""
    from tte_ir import import_seed_pkl
    from tte_ir.kernels import kernel_call, params_kernel, params_padding, params_stride

    graph = import_seed_pkl(model, num_classes=10, head="fp32")
    shapes = []
    for node in graph.nodes:
        call = kernel_call(graph, node)
        if call.kernel not in KINDS:
            continue
        q = call.params
        shapes.append(
            Shape(
                f"{node.name}", KINDS[call.kernel], q["in_h"], q["in_w"], q["in_c"], q["out_c"],
                params_kernel(q), params_stride(q), params_padding(q),
                q["groups"] if call.kernel == "conv2d_fwd_s8" else 1,
                call.kernel != "conv2d_fwd_s8" and q["in_h"] <= BACKWARD_MAX_SIDE,
            )
        )  # fmt: skip
    return shapes


def resnet8_shapes() -> list[Shape]:
    """The convs of ResNet-8 (tte_algo.user_models, 3x32x32 input) as the compiler calls them, each dense
    one after the stem with its backward kernels (the ones a scheme that trains the 3x3 convs runs)."""
    dense = [(32, 16, 16, 1), (32, 16, 16, 1), (32, 16, 32, 2), (16, 32, 32, 1), (16, 32, 64, 2), (8, 64, 64, 1)]
    shapes = [Shape("stem", "dense", 32, 32, 3, 16, 3, 1, 1)]
    for i, (side, in_c, out_c, stride) in enumerate(dense):
        shapes.append(Shape(f"conv{i + 1}", "dense", side, side, in_c, out_c, 3, stride, 1, backward=True))
    shapes += [
        Shape("shortcut1", "pointwise", 32, 32, 16, 32, 1, 2, 0, backward=True),
        Shape("shortcut2", "pointwise", 16, 16, 32, 64, 1, 2, 0, backward=True),
    ]
    return shapes


def _window(rng: np.random.Generator, kh: int, kw: int, i: int) -> tuple[tuple[int, int], tuple[int, ...]]:
    """A stride and padding for shape ``i``: every third one square and symmetric (the MCUNet case),
    the others a stride per axis and padding per side up to the kernel's half (TFLite SAME included)."""
    if i % 3 == 0:
        s, p = int(rng.integers(1, 4)), int(rng.integers(0, min(kh, kw) // 2 + 1))
        return (s, s), (p, p, p, p)
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    top, bottom = (int(v) for v in rng.integers(0, kh // 2 + 1, size=2))
    left, right = (int(v) for v in rng.integers(0, kw // 2 + 1, size=2))
    return stride, (top, left, bottom, right)


def _fits(rng: np.random.Generator, kh: int, kw: int, padding: tuple[int, ...], high: int) -> tuple[int, int]:
    top, left, bottom, right = padding
    return int(rng.integers(max(kh - top - bottom, 1), high)), int(rng.integers(max(kw - left - right, 1), high))


def random_shapes(seed: int, count: int) -> list[Shape]:
    """``count`` small random shapes of both kinds: odd sizes and channel counts (not multiples of 4),
    depthwise kernels 1 to 7 on each axis (square ones and kh != kw), strides 1 to 3 per axis,
    paddings per side up to the kernel's half."""
    rng = np.random.default_rng(seed)
    shapes = []
    for i in range(count):
        kind = ("pointwise", "depthwise")[i % 2]
        kh = 1 if kind == "pointwise" else int(rng.choice([1, 2, 3, 3, 5, 5, 7, 7]))
        kw = kh if kind == "pointwise" or i % 4 == 1 else int(rng.choice([1, 2, 3, 5, 7]))
        stride, padding = _window(rng, kh, kw, i)
        if kind == "pointwise":
            padding = (0, 0, 0, 0)
        in_h, in_w = _fits(rng, kh, kw, padding, 14)
        in_c = int(rng.integers(1, 42))
        out_c = in_c if kind == "depthwise" else int(rng.integers(1, 42))
        shapes.append(Shape(f"random{i}", kind, in_h, in_w, in_c, out_c, (kh, kw), stride, padding))
    return shapes


def dense_shapes(seed: int, count: int) -> list[Shape]:
    """Dense convs: the 3x3 stride-2 stem on 3 channels at odd sizes and paddings 0-1, its TFLite SAME
    twin (padding only at the bottom/right), DS-CNN's 10x4 stride-2 stem on one channel, 1x1 ones on
    1-2 channels (the shortest weight rows), then ``count`` random small ones (kernels 1-7 per axis,
    strides 1-3 per axis, padding per side, odd channel counts), some grouped (the ARM kernel runs the
    reference kernel there) and some with more than the ARM kernel's patch bound (its chunked copy)."""
    rng = np.random.default_rng(seed)
    shapes = [
        Shape("stem0", "dense", 9, 7, 3, 16, 3, 2, 1),
        Shape("stem1", "dense", 10, 12, 3, 5, 3, 2, 1),
        Shape("stem2", "dense", 8, 9, 3, 1, 3, 2, 0),
        Shape("stem3", "dense", 11, 11, 3, 7, 3, 1, 1),
        Shape("stem_same", "dense", 10, 8, 3, 6, 3, 2, (0, 0, 1, 1)),
        Shape("kws_stem", "dense", 21, 10, 1, 8, (10, 4), 2, (4, 1, 5, 2)),
        Shape("tiny0", "dense", 5, 6, 1, 9, 1, 1, 0),
        Shape("tiny1", "dense", 5, 5, 2, 7, 1, 2, 0),
    ]
    for i in range(count):
        kh, kw = int(rng.choice([1, 2, 3, 3, 5, 7])), int(rng.choice([1, 2, 3, 3, 5, 7]))
        stride, padding = _window(rng, kh, kw, i)
        in_h, in_w = _fits(rng, kh, kw, padding, 12)
        groups = 2 if i % 5 == 4 else 1
        in_c = groups * int(rng.integers(1, 10 if i % 7 != 6 else 24))
        out_c = groups * int(rng.integers(1, 20))
        shapes.append(Shape(f"dense{i}", "dense", in_h, in_w, in_c, out_c, (kh, kw), stride, padding, groups))
    return shapes


def shapes_source(shapes: Iterable[Shape]) -> str:
    """The C file of ``kernel_shapes`` and ``kernel_shape_backward`` (boards/programs/kernel_shapes.h)."""
    shapes = list(shapes)
    rows = [
        f'    {{"{s.name}", KERNEL_{s.kind.upper()}, {s.in_h}, {s.in_w}, {s.in_c}, {s.out_c}, '
        f"{', '.join(str(v) for part in s.window for v in part)}, {s.conv_groups}}},"
        for s in shapes
    ]
    return (
        "/* Generated by boards/tools/kernel_bench.py. */\n"
        '#include "kernel_shapes.h"\n\n'
        "const kernel_shape kernel_shapes[] = {\n" + "\n".join(rows) + "\n};\n"
        f"const uint32_t kernel_shape_count = {len(rows)};\n"
        f"const uint8_t kernel_shape_backward[] = {{{', '.join(str(int(s.backward)) for s in shapes) or '0'}}};\n"
    )


def build_programs(board: str, build_dir: Path, shapes: Sequence[Shape], cmsis_nn: Path | None = None) -> Path:
    """Build tte_kernel_check and tte_kernel_bench for ``board`` on ``shapes`` (with CMSIS-NN from ``cmsis_nn``)."""
    from tte_ir.serialize import atomic_write_bytes

    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / "kernel_shapes.c"
    atomic_write_bytes(source, shapes_source(shapes).encode())
    cache = {"TTE_KERNEL_SHAPES": source, "TTE_RAM_SIZE": RAM_SIZE}
    if cmsis_nn is not None:
        cache["TTE_CMSIS_NN_DIR"] = cmsis_nn
    return build_board(board, build_dir, **cache)


def run_check(build: Path, board: str, timeout: float = 300) -> tuple[int, dict[tuple[str, int], str]]:
    """Run a built tte_kernel_check under QEMU: its exit status and each (shape, variant)'s PASS or FAIL reason."""
    status, output = run_qemu(QEMU_MACHINES[board], build / "tte_kernel_check.elf", timeout=timeout)
    return status, check_results(output, "under QEMU")


def check_results(output: str, where: str) -> dict[tuple[str, int], str]:
    """Each (shape, variant)'s PASS or FAIL reason in tte_kernel_check's output (QEMU or a host build)."""
    if not re.search(r"^DONE passed=\d+ failed=\d+$", output, re.MULTILINE):
        raise RuntimeError(f"tte_kernel_check did not finish {where}:\n{output}")
    return {(name, int(v)): r for name, v, r in re.findall(r"^CHECK (\S+) (\d+) (PASS|FAIL.*)$", output, re.M)}


def _bench_counts(build: Path, board: str) -> tuple[list[dict], list[dict]]:
    status, output = run_qemu(QEMU_MACHINES[board], build / "tte_kernel_bench.elf", icount=True, timeout=600)
    pattern = r"^BENCH (\S+) kind=(\w+) macs=(\d+) ref=(\d+) tte=(\d+) cmsis=(\d+|-)$"
    rows = [
        {"name": n, "macs": int(m), "ref": int(r), "tte": int(t), "cmsis": None if c == "-" else int(c)}
        for n, _, m, r, t, c in re.findall(pattern, output, re.MULTILINE)
    ]
    backward = [
        {"name": n, "kind": k, "macs": int(m), "count": int(c)}
        for n, k, m, c in re.findall(r"^BWD (\S+) kind=(\w+) macs=(\d+) count=(\d+)$", output, re.MULTILINE)
    ]
    if status != 0 or not rows or "DONE unit=instructions" not in output or re.search(r"^FAIL", output, re.M):
        raise RuntimeError(f"tte_kernel_bench did not finish under QEMU -icount:\n{output}")
    return rows, backward


def _backward_table(shapes: Sequence[Shape], by_core: dict[str, list[dict]]) -> str:
    """Instructions per MAC of the fp32 backward kernels by type, each core, beside TinyEngine's figures."""
    by_name = {s.name: s for s in shapes}
    labels = {
        (r["name"], r["kind"]): by_name[r["name"]].backward_label(r["kind"]) for r in next(iter(by_core.values()))
    }
    types = sorted(set(labels.values()), key=lambda t: (not t.startswith("pointwise"), "weight" in t, t))
    header = ["backward kernel type", "layers", "MACs", *[f"{core} tte" for core in by_core], "TinyEngine", "M7/TE"]
    table = []
    for kind in types:
        row: list[object] = [kind]
        for i, rows in enumerate(by_core.values()):
            rows = [r for r in rows if labels[(r["name"], r["kind"])] == kind]
            if i == 0:
                row += [len(rows), sum(r["macs"] for r in rows)]
            row.append(f"{sum(r['count'] for r in rows) / sum(r['macs'] for r in rows):.2f}")
        anchor = TINYENGINE.get(kind)
        row += ["-", "-"] if anchor is None else [f"{anchor:.2f}", f"{float(row[3]) / anchor:.2f}"]
        table.append(row)
    return _table(header, table)


def _per_mac(rows: Sequence[dict], key: str) -> float | None:
    if any(r[key] is None for r in rows):
        return None
    return sum(r[key] for r in rows) / sum(r["macs"] for r in rows)


def bench(build_dir: Path, model: Path, cmsis_nn: Path | None = CMSIS_NN_DIR) -> str:
    """Instructions per MAC of the reference kernels, the selected (optimized) kernels and CMSIS-NN on
    ``model``'s pointwise, depthwise and dense conv shapes (``resnet8``: :func:`resnet8_shapes`), by kernel
    type, under QEMU Cortex-M7 and M4."""
    shapes = resnet8_shapes() if str(model) == "resnet8" else model_shapes(model)
    if cmsis_nn is not None and not (cmsis_nn / "Include" / "arm_nnfunctions.h").is_file():
        note = f"CMSIS-NN skipped: {cmsis_nn} is absent (the anchors live in ../shared/anchors)\n"
        cmsis_nn = None
    else:
        note = f"CMSIS-NN: {cmsis_nn} built with the same toolchain file (measurement only)\n" if cmsis_nn else ""
    labels = {s.name: s.kind_label for s in shapes}
    cores = {"qemu-mps2-an500": "M7", "qemu-mps2-an386": "M4"}
    by_core, backward = {}, {}
    for board, core in cores.items():
        build = build_programs(board, build_dir / board, shapes, cmsis_nn)
        by_core[core], backward[core] = _bench_counts(build, board)
    types = sorted(set(labels.values()), key=lambda t: (t != "pointwise", t.startswith("dense"), t))
    header = ["kernel type", "layers", "MACs"]
    for core in cores.values():
        header += [f"{core} ref", f"{core} tte", f"{core} CMSIS-NN", f"{core} tte/CMSIS-NN"]
    table = []
    depthwise = ["depthwise (all)"] if any(t.startswith("depthwise") for t in types) else []
    for kind in [*types, *depthwise, "all"]:
        row: list[object] = [kind]
        for i, core in enumerate(cores.values()):
            rows = [
                r for r in by_core[core]
                if kind == "all" or labels[r["name"]] == kind
                or (kind == "depthwise (all)" and labels[r["name"]].startswith("depthwise"))
            ]  # fmt: skip
            if i == 0:
                row += [len(rows), sum(r["macs"] for r in rows)]
            ref, tte, nn = (_per_mac(rows, key) for key in ("ref", "tte", "cmsis"))
            row += [
                f"{ref:.2f}",
                f"{tte:.2f}",
                "-" if nn is None else f"{nn:.2f}",
                "-" if nn is None else f"{tte / nn:.2f}",
            ]
        table.append(row)

    side = f"{BACKWARD_MAX_SIDE}x{BACKWARD_MAX_SIDE}"
    layers = "dense and shortcut layers" if str(model) == "resnet8" else f"layers of at most {side} inputs"
    return (
        f"{model.stem}: pointwise, depthwise and dense int8 forward convs, instructions per MAC, "
        f"QEMU -icount shift=0 (M7: mps2-an500, M4: mps2-an386)\n{note}{_table(header, table)}\n"
        f"fp32 backward kernels (portable C, the same on every target) on the {layers}: input gradient (MACs of "
        f"the forward conv), weight "
        f"gradient + QAS update of half the input channels (MACs of the trained weights)\n"
        f"{_backward_table(shapes, backward)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("bench",))
    parser.add_argument("build_dir", type=Path)
    parser.add_argument(
        "--model", type=Path, required=True, help="seed model .pkl (../shared/models/mcunet-5fps.pkl), or resnet8"
    )
    parser.add_argument("--cmsis-nn", type=Path, default=CMSIS_NN_DIR, help="CMSIS-NN sources (default: %(default)s)")
    args = parser.parse_args(argv)
    for tool in ("cmake", "arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            parser.error(f"'{tool}' is not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                         "qemu-system-arm cmake)")  # fmt: skip
    if str(args.model) != "resnet8" and not args.model.is_file():
        parser.error(f"{args.model}: no such model file (the seed models live in ../shared/models)")
    try:
        print(bench(args.build_dir, args.model, args.cmsis_nn))
    except subprocess.CalledProcessError as error:
        print(f"{' '.join(map(str, error.cmd))} failed:\n{error.stdout}\n{error.stderr}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
