"""The optimized forward kernels against their reference twins (tte/tte_ref.h): the ARMv7E-M ones
(engine/src/kernels/arm) under QEMU Cortex-M7 and M4, and the host ones (engine/src/kernels/host) built
natively, each clone (AVX2 where the CPU has it, and the baseline copy alone). boards/programs/
kernel_check_main.c runs both on the same data and compares statuses, outputs and masks byte for
byte, on random shapes (odd sizes and channel counts, kernels 1-7 with kh != kw among them, strides 1-3
that differ per axis, padding that differs per side), dense ones (the 3x3 stride-2 stem on 3 channels, 1x1 on 1-2 channels, grouped
ones, which run the reference kernel, and ones beyond the patch bound, which run the chunked copy), on ResNet-8's
dense convs (3x3 on 16-64 channels: patches of 144-576 codes) and on MCUNet-5fps's pointwise,
depthwise and dense convs, six variants each
(extreme zero points, ties, +-2^31 biases, huge and non-finite multipliers, masks, row bands,
trained slices), and four of fixed-point requantization (NUMERICS.md 2b: random and extreme
multipliers and shifts, with masks, a row band and a trained slice, and one whose shifts are all
negative, the ARM kernels' own fixed epilogue), and one of the single rounding
(TTE_REQUANT_FIXED_SINGLE, which the ARM kernels hand to the reference kernel)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, missing

from .helpers import ARM_KERNEL_BOARDS, build_board, require_packages, require_tool

require_packages("tte_ir")

import kernel_bench  # noqa: E402

VARIANTS = 11  # kernel_check_main.c
KERNELS = ROOT / "engine" / "src" / "kernels"
# A host build as CMake compiles it (TTE_ENGINE_HOST_KERNELS), and one whose kernels are the baseline copy
# alone (TTE_HOST_CLONES defined empty: no AVX2 clone), so that the copy the loader does not pick on this
# machine is checked too.
HOST_BUILDS = {"host": [], "host-baseline": ["-DTTE_HOST_CLONES="]}


def _shapes(model) -> list[kernel_bench.Shape]:
    # MCUNet's channel counts, kernels and strides on at most 12x11 maps: border and interior pixels
    # both, in a few seconds of QEMU.
    mcunet = [
        dataclasses.replace(s, in_h=min(s.in_h, 12), in_w=min(s.in_w, 11)) for s in kernel_bench.model_shapes(model)
    ]
    # ResNet-8's dense convs (patches beyond TTE_ARM_CONV_PATCH: the chunked copy, with and without a
    # trained slice) on 6x5 maps.
    resnet8 = [
        dataclasses.replace(s, name=f"resnet8_{s.name}", in_h=6, in_w=5)
        for s in kernel_bench.resnet8_shapes()
        if s.kind == "dense"
    ]
    return kernel_bench.random_shapes(1, 40) + kernel_bench.dense_shapes(1, 24) + resnet8 + mcunet


def _build(board, tmp_path, shapes):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    try:
        return kernel_bench.build_programs(board, tmp_path / board, shapes)
    except subprocess.CalledProcessError as error:
        pytest.fail(f"building {board} failed:\n{error.stdout}\n{error.stderr}")


def _host_check(build: str, tmp_path: Path, shapes) -> tuple[int, dict[tuple[str, int], str]]:
    """tte_kernel_check built with the host C compiler from the sources of a host build of the engine that
    it calls (the reference conv kernels and src/kernels/host, with that folder's -fno-trapping-math), run."""
    cc = next((shutil.which(n) for n in ("cc", "gcc", "clang") if shutil.which(n)), None)
    if cc is None:
        missing("no host C compiler (cc, gcc or clang)")
    source = tmp_path / "kernel_shapes.c"
    source.write_text(kernel_bench.shapes_source(shapes))
    programs = ROOT / "boards" / "programs"
    sources = [programs / "kernel_check_main.c", source, KERNELS / "check.c", KERNELS / "math.c"]
    sources += [KERNELS / "ref" / f"{kernel}.c" for kernel in kernel_bench.KINDS]
    sources += sorted((KERNELS / "host").glob("*.c"))
    exe = tmp_path / "tte_kernel_check"
    command = [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-fno-trapping-math"]
    command += [*HOST_BUILDS[build], "-I", str(ROOT / "engine" / "include"), "-I", str(KERNELS), "-I", str(programs)]
    command += ["-I", str(ROOT / "boards" / "common")]
    subprocess.run([*command, *map(str, sources), "-o", str(exe), "-lm"], check=True, capture_output=True, text=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    return result.returncode, kernel_bench.check_results(result.stdout, "on the host")


def _assert_all_pass(shapes, status: int, results: dict[tuple[str, int], str]) -> None:
    assert {s.window[0] for s in shapes if s.kind == "depthwise"} >= {(3, 3), (5, 5), (7, 7)}
    assert any(s.kind == "dense" and (s.in_c, *s.window[:2]) == (3, (3, 3), (2, 2)) for s in shapes)
    expected = {(s.name, v) for s in shapes for v in range(VARIANTS)}
    assert set(results) == expected
    failed = {k: r for k, r in results.items() if r != "PASS"}
    assert not failed and status == 0, failed


@pytest.mark.qemu
@pytest.mark.slow  # a board build and 1,008 checks under QEMU: about 25 s per board
@pytest.mark.shared
@pytest.mark.parametrize("board", list(ARM_KERNEL_BOARDS))
def test_arm_kernels_equal_the_reference_kernels(board, seed_model_path, tmp_path) -> None:
    shapes = _shapes(seed_model_path("mcunet-5fps"))
    _assert_all_pass(shapes, *kernel_bench.run_check(_build(board, tmp_path, shapes), board))


@pytest.mark.shared
@pytest.mark.parametrize("build", list(HOST_BUILDS))
def test_host_kernels_equal_the_reference_kernels(build, seed_model_path, tmp_path) -> None:
    shapes = _shapes(seed_model_path("mcunet-5fps"))
    _assert_all_pass(shapes, *_host_check(build, tmp_path, shapes))


def test_random_shapes_cover_the_odd_cases() -> None:
    shapes = kernel_bench.random_shapes(1, 40)
    assert any(s.in_c % 4 for s in shapes) and any(s.out_c % 2 for s in shapes)
    assert {s.window[1][0] for s in shapes} == {1, 2, 3}
    assert {s.window[0] for s in shapes if s.kind == "depthwise"} >= {(3, 3), (5, 5), (7, 7)}
    assert any((s.in_h * s.in_w) % 2 for s in shapes if s.kind == "pointwise")
    # the non-square cases: kh != kw, sh != sw (pointwise too), padding that differs per side
    assert any(kh != kw for (kh, kw), _, _ in (s.window for s in shapes if s.kind == "depthwise"))
    assert any(sh != sw for _, (sh, sw), _ in (s.window for s in shapes if s.kind == "pointwise"))
    assert any(t != b or left != r for _, _, (t, left, b, r) in (s.window for s in shapes))


def test_shapes_source_lists_every_shape() -> None:
    shapes = kernel_bench.random_shapes(2, 3)
    source = kernel_bench.shapes_source(shapes)
    assert "const uint32_t kernel_shape_count = 3;" in source
    assert all(
        f'"{s.name}", KERNEL_{s.kind.upper()}, {s.in_h}, {s.in_w}, {s.in_c}, {s.out_c},' in source for s in shapes
    )


def test_dense_shapes_cover_the_stem_and_the_fallbacks() -> None:
    shapes = kernel_bench.dense_shapes(1, 24)
    patch = [s.window[0][0] * s.window[0][1] * s.in_c // s.groups for s in shapes]
    assert any((s.in_c, *s.window) == (3, (3, 3), (2, 2), (1, 1, 1, 1)) for s in shapes)
    assert any((s.in_c, *s.window) == (1, (10, 4), (2, 2), (4, 1, 5, 2)) for s in shapes)  # DS-CNN's stem
    assert {s.groups for s in shapes} == {1, 2} and {s.window[1][1] for s in shapes} == {1, 2, 3}
    assert any(kh != kw for (kh, kw), _, _ in (s.window for s in shapes))
    assert min(patch) == 1 and any(k % 4 for k in patch)
    assert any(k > 160 for k, s in zip(patch, shapes, strict=True) if s.groups == 1)  # beyond TTE_ARM_CONV_PATCH
    assert any(s.out_c % 2 for s in shapes if s.groups == 1)


def test_shapes_source_writes_the_group_count() -> None:
    shapes = [
        kernel_bench.Shape("g", "dense", 4, 4, 6, 4, 3, 1, 1, 2),
        kernel_bench.Shape("d", "depthwise", 4, 4, 5, 5, 3),
    ]
    source = kernel_bench.shapes_source(shapes)
    assert '{"g", KERNEL_DENSE, 4, 4, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 2},' in source
    assert '{"d", KERNEL_DEPTHWISE, 4, 4, 5, 5, 3, 3, 1, 1, 0, 0, 0, 0, 5},' in source
    nonsquare = kernel_bench.Shape("n", "dense", 9, 8, 1, 4, (10, 4), (2, 1), (4, 1, 5, 2))
    assert '{"n", KERNEL_DENSE, 9, 8, 1, 4, 10, 4, 2, 1, 4, 1, 5, 2, 1},' in kernel_bench.shapes_source([nonsquare])


# Each epilogue copy of the ARM kernels (a static function their tables point to), by requantization mode.
COPIES = {
    mode: {
        f"{base}_{mode}{plain}"
        for base in ("run_any", "run_stem", "run_chunked", "dw_run", "channel_pair")
        for plain in ("", "_plain")
    }
    for mode in ("float", "fixed")
}


@pytest.mark.qemu
@pytest.mark.slow  # a board build and 176 checks under QEMU
@pytest.mark.parametrize("mode", ["float", "fixed"])
def test_a_build_of_one_requantization_mode_runs_the_other_by_the_reference(mode, tmp_path) -> None:
    """TTE_ENGINE_REQUANT=<mode>: the kernels carry that mode's epilogue copies only, and a call of the other
    mode (the check's float and fixed variants alike) still gives the reference kernel's bits."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-nm")
    board = "qemu-mps2-an500"
    shapes = kernel_bench.random_shapes(1, 10) + kernel_bench.dense_shapes(1, 6)
    build = tmp_path / board
    build.mkdir()
    source = build / "kernel_shapes.c"
    source.write_text(kernel_bench.shapes_source(shapes))
    cache = {"TTE_KERNEL_SHAPES": source, "TTE_RAM_SIZE": kernel_bench.RAM_SIZE, "TTE_ENGINE_REQUANT": mode}
    try:
        build_board(board, build, **cache)
    except subprocess.CalledProcessError as error:
        pytest.fail(f"building {board} failed:\n{error.stdout}\n{error.stderr}")
    listing = subprocess.run(["arm-none-eabi-nm", str(build / "tte_kernel_check.elf")], capture_output=True, text=True)
    symbols = {line.split()[-1] for line in listing.stdout.splitlines() if line.strip()}
    other = "fixed" if mode == "float" else "float"
    assert COPIES[mode] <= symbols and not COPIES[other] & symbols
    status, results = kernel_bench.run_check(build, board)
    assert set(results) == {(s.name, v) for s in shapes for v in range(VARIANTS)}
    failed = {k: r for k, r in results.items() if r != "PASS"}
    assert not failed and status == 0, failed
