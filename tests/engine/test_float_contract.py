"""The kernels keep their own float contract (NUMERICS.md section 4): built outside the engine's CMake
target -- copied into another project, with contraction asked for (``-O2 -ffp-contract=fast``) on a
core that has fused multiply-add -- their objects hold exactly the fused multiply-adds the sources ask
for (``fmaf``: the count of a ``-ffp-contract=off`` build), so the host and the MCU still compute the
same bits. The same kernels with kernels-impl.h's pragma block taken out hold more: the flags would
contract them, and the check can fail. On a core without VFMA (Cortex-M3, software float) every fused
multiply-add the sources ask for is the engine's correctly rounded tte_fmaf_soft, never newlib's fmaf,
which rounds twice."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, require_tool

KERNELS = ROOT / "engine" / "src" / "kernels"
PRAGMA_BLOCK = re.compile(r"#if defined\(__GNUC__\) && !defined\(__clang__\)\n#pragma GCC optimize.*?#endif\n", re.S)
CONTRACT = ["-std=c99", "-O2", "-ffp-contract=fast", "-Wall", "-Wextra", "-Werror"]

# target: (compiler, its flags for a core with fused multiply-add, objdump, the fused instructions)
HOST_FMA = {
    "x86_64": (["-mfma"], re.compile(r"\bvfn?m(add|sub)\w*")),
    "aarch64": ([], re.compile(r"\bfn?m(add|sub)\b")),
}
CORTEX_M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
CORTEX_M3 = ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"]
ARM_FMA = re.compile(r"\bvfn?m[as]\.f32\b")


def engine_sources(folder: Path, cortex_m: bool) -> dict[str, list[Path]]:
    """Every source of the engine by folder (the int8 kernels do float math too: their requantization),
    with the ARMv7E-M kernels for a Cortex-M core."""
    folders = [folder, folder / "ref", *([folder / "arm"] if cortex_m else [])]
    return {f.name: sorted(f.glob("*.c")) for f in folders}


def fused_counts(tmp: Path, kernels: Path, cc: str, flags: list[str], objdump: str, fused: re.Pattern) -> dict:
    """The number of fused multiply-add instructions in each engine object, built from ``kernels`` (``flags``
    after ``CONTRACT``: a later ``-ffp-contract`` wins)."""
    counts = {}
    for name, sources in engine_sources(kernels, cortex_m="-mcpu=cortex-m4" in flags).items():
        out = tmp / "obj" / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        include = ["-I", str(ROOT / "engine" / "include"), "-I", str(kernels)]
        command = [cc, *CONTRACT, *flags, *include, "-c", *(str(p) for p in sources)]
        result = subprocess.run(command, cwd=out, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        for source in sources:
            listing = subprocess.run([objdump, "-d", str(out / f"{source.stem}.o")], capture_output=True, text=True)
            assert listing.returncode == 0, listing.stderr
            counts[f"{name}/{source.name}"] = len(fused.findall(listing.stdout))
    return counts


def without_pragma(tmp: Path) -> Path:
    """A copy of src/kernels whose kernels-impl.h lacks the float-contract pragma block."""
    copy = tmp / "kernels"
    shutil.copytree(KERNELS, copy)
    impl = copy / "kernels-impl.h"
    text, found = PRAGMA_BLOCK.subn("", impl.read_text())
    assert found == 1, "kernels-impl.h has no float-contract pragma block"
    impl.write_text(text)
    return copy


def check(tmp: Path, cc: str, flags: list[str], objdump: str, fused: re.Pattern) -> None:
    explicit = fused_counts(tmp, KERNELS, cc, [*flags, "-ffp-contract=off"], objdump, fused)
    guarded = fused_counts(tmp, KERNELS, cc, flags, objdump, fused)
    assert guarded == explicit, f"fused multiply-adds beyond the sources' fmaf despite the pragma: {guarded}"
    unguarded = fused_counts(tmp, without_pragma(tmp), cc, flags, objdump, fused)
    assert sum(unguarded.values()) > sum(explicit.values()), (
        f"the flags contract nothing without the pragma: {unguarded}"
    )


def test_host_objects_hold_no_fused_multiply_add(tmp_path: Path) -> None:
    if platform.machine() not in HOST_FMA:
        pytest.skip(f"no fused multiply-add check for a {platform.machine()} host")
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None or shutil.which("objdump") is None:
        pytest.skip("no host C compiler and objdump")
    flags, fused = HOST_FMA[platform.machine()]
    check(tmp_path, cc, flags, "objdump", fused)


def test_cortex_m4_objects_hold_no_fused_multiply_add(tmp_path: Path) -> None:
    cc = require_tool("arm-none-eabi-gcc")
    check(tmp_path, cc, CORTEX_M4, require_tool("arm-none-eabi-objdump"), ARM_FMA)


def undefined_symbols(tmp: Path, flags: list[str], nm: str) -> dict[str, set[str]]:
    """The symbols each engine object built for Cortex-M3 (``CONTRACT`` then ``flags``) calls from outside it."""
    found = {}
    for name, sources in engine_sources(KERNELS, cortex_m=False).items():
        out = tmp / "m3" / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        include = ["-I", str(ROOT / "engine" / "include"), "-I", str(KERNELS)]
        command = [require_tool("arm-none-eabi-gcc"), *CONTRACT, *CORTEX_M3, *flags, *include, "-c"]
        result = subprocess.run([*command, *(str(p) for p in sources)], cwd=out, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        for source in sources:
            listing = subprocess.run([nm, "-u", str(out / f"{source.stem}.o")], capture_output=True, text=True)
            assert listing.returncode == 0, listing.stderr
            found[f"{name}/{source.name}"] = {line.split()[-1] for line in listing.stdout.splitlines()}
    return found


@pytest.mark.slow
def test_cortex_m3_objects_call_the_engines_fmaf(tmp_path: Path) -> None:
    """Every object with a fused multiply-add calls tte_fmaf_soft and none calls fmaf. With __FP_FAST_FMAF
    defined (what the guard in kernels-impl.h tests) the same objects call newlib's fmaf: the check can fail."""
    nm = require_tool("arm-none-eabi-nm")
    soft = undefined_symbols(tmp_path, [], nm)
    forced = undefined_symbols(tmp_path, ["-D__FP_FAST_FMAF=1"], nm)
    fused = {name for name, symbols in forced.items() if "fmaf" in symbols}
    assert fused, "no object asks for a fused multiply-add"
    assert {name for name, symbols in soft.items() if "tte_fmaf_soft" in symbols} == fused
    assert not [name for name, symbols in soft.items() if "fmaf" in symbols]
