"""The generated C header matches tte_ir, and the C side's numeric constants are tte_ir.constants'."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
from conftest import ROOT, require_tool

from tte_ir import constants, rounding
from tte_ir.gen_header import render_header

HEADER = ROOT / "engine" / "include" / "tte" / "tte_ops.h"
HASH_CASES = [(0, 0, 0), (1, 2, 3), (0xFFFFFFFF, 2**31 + 5, rounding.bias_tensor_id(42)), (123456789, 99999, 7)]
INDEX_STRIDE = 2**32 // 4999 + 1  # about 5000 element indices spanning the whole uint32 range

PROGRAM = r"""
#include <inttypes.h>
#include <stdio.h>

#include "tte/tte_rounding.h"

static const uint32_t cases[][3] = {CASES};

int main(void) {
    printf("INT32_MIN %" PRId32 "\n", (int32_t)INT32_MIN);
    printf("INT32_MAX %" PRId32 "\n", (int32_t)INT32_MAX);
    printf("TTE_QAS_STEP_CLAMP %a %u\n", (double)TTE_QAS_STEP_CLAMP, (unsigned)sizeof(TTE_QAS_STEP_CLAMP));
    printf("TTE_HASH_SHIFT1 %d\n", TTE_HASH_SHIFT1);
    printf("TTE_HASH_MUL1 %" PRIu32 "\n", (uint32_t)TTE_HASH_MUL1);
    printf("TTE_HASH_SHIFT2 %d\n", TTE_HASH_SHIFT2);
    printf("TTE_HASH_MUL2 %" PRIu32 "\n", (uint32_t)TTE_HASH_MUL2);
    printf("TTE_HASH_SHIFT3 %d\n", TTE_HASH_SHIFT3);
    printf("TTE_HASH_UNIFORM_SHIFT %d\n", TTE_HASH_UNIFORM_SHIFT);
    printf("TTE_HASH_UNIFORM_SCALE %a %u\n", (double)TTE_HASH_UNIFORM_SCALE, (unsigned)sizeof(TTE_HASH_UNIFORM_SCALE));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        for (uint64_t i = 0; i <= UINT32_MAX; i += STRIDE) {
            const uint32_t e = (uint32_t)i;
            printf("%" PRIu32 " %a\n", tte_round_hash(cases[c][0], cases[c][1], cases[c][2], e),
                   (double)tte_round_uniform(cases[c][0], cases[c][1], cases[c][2], e));
        }
    }
    return 0;
}
"""

# Literal spellings of the shared constants; outside tte_ir/constants.py and the generated header they
# are copies that could drift.
LITERALS = re.compile(
    r"0x7feb352d|0x846ca68b|1073741824|2147483647|2147483648|16777216"
    r"|\b2(\.0)?\s*\*\*\s*\(?-?(24|30|31)\b|\b1u?\s*<<\s*(30|31)\b",
    re.IGNORECASE,
)
SOURCE_SUFFIXES = {".py", ".c", ".h", ".cc", ".cpp", ".hpp", ".j2", ".cmake", ".txt"}
SKIPPED_DIRS = {"build", ".nox", "__pycache__", ".git", "dist"}
DEFINITIONS = {HEADER, ROOT / "packages" / "tte-ir" / "src" / "tte_ir" / "constants.py"}


def _run_c_program(tmp_path: Path) -> list[str]:
    cc = require_tool("cc")
    cases = ", ".join(f"{{{s & 0xFFFFFFFF}u, {st & 0xFFFFFFFF}u, {t}u}}" for s, st, t in HASH_CASES)
    source = tmp_path / "constants.c"
    source.write_text(PROGRAM.replace("{CASES}", "{" + cases + "}").replace("STRIDE", f"{INDEX_STRIDE}u"))
    exe = tmp_path / "constants"
    flags = ["-std=c99", "-Wall", "-Wextra", "-Wconversion", "-pedantic", "-Werror", "-ffp-contract=off"]
    subprocess.run([cc, *flags, "-I", str(ROOT / "engine" / "include"), str(source), "-o", str(exe)], check=True)
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()


def test_committed_c_header_is_current():
    assert HEADER.read_text() == render_header(), "regenerate: python -m tte_ir.gen_header engine/include/tte/tte_ops.h"


def test_c_constants_and_hash_equal_python(tmp_path: Path):
    lines = _run_c_program(tmp_path)
    c = dict(line.split(" ", 1) for line in lines[:10])
    assert int(c["INT32_MIN"]) == constants.INT32_MIN == np.iinfo(np.int32).min
    assert int(c["INT32_MAX"]) == constants.INT32_MAX == np.iinfo(np.int32).max
    clamp, clamp_size = c["TTE_QAS_STEP_CLAMP"].split()
    assert (float.fromhex(clamp), clamp_size) == (constants.QAS_STEP_CLAMP, "4"), "the clamp must be a C float"
    assert int(c["TTE_HASH_SHIFT1"]) == constants.HASH_SHIFT1
    assert int(c["TTE_HASH_MUL1"]) == constants.HASH_MUL1
    assert int(c["TTE_HASH_SHIFT2"]) == constants.HASH_SHIFT2
    assert int(c["TTE_HASH_MUL2"]) == constants.HASH_MUL2
    assert int(c["TTE_HASH_SHIFT3"]) == constants.HASH_SHIFT3
    assert int(c["TTE_HASH_UNIFORM_SHIFT"]) == constants.UNIFORM_SHIFT
    scale, scale_size = c["TTE_HASH_UNIFORM_SCALE"].split()
    assert (float.fromhex(scale), scale_size) == (constants.UNIFORM_SCALE, "4"), "the scale must be a C float"

    index = np.arange(0, 2**32, INDEX_STRIDE, dtype=np.int64)
    results = [line.split() for line in lines[10:]]
    assert len(results) == len(HASH_CASES) * index.size
    for k, (seed, step, tensor_id) in enumerate(HASH_CASES):
        got = results[k * index.size : (k + 1) * index.size]
        np.testing.assert_array_equal(
            np.array([int(h) for h, _ in got], dtype=np.uint32), rounding.hash32(seed, step, tensor_id, index)
        )
        np.testing.assert_array_equal(
            np.array([float.fromhex(u) for _, u in got], dtype=np.float32),
            rounding.stochastic_uniform(seed, step, tensor_id, index),
        )


def test_no_literal_copy_of_the_shared_constants():
    copies = []
    for top in (ROOT / "engine", ROOT / "packages"):
        for path in sorted(top.rglob("*")):
            rel = path.relative_to(ROOT)
            if path.suffix not in SOURCE_SUFFIXES or path in DEFINITIONS or SKIPPED_DIRS & set(rel.parts):
                continue
            if any(part.endswith(".egg-info") for part in rel.parts) or not path.is_file():
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if LITERALS.search(line):
                    copies.append(f"{rel}:{number}: {line.strip()}")
    assert not copies, "use tte_ir.constants (Python) or the TTE_* macros of tte/tte_ops.h (C):\n" + "\n".join(copies)
