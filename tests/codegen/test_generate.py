"""The generated C: what it holds (planner offsets, tiles, flash/SRAM split) and what it refuses."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tte_codegen import CodegenError, find_root
from tte_codegen.generate import engine_kernels
from tte_codegen.lowering import lower
from tte_ir import save
from tte_ir.autodiff import training_info
from tte_ir.memory import memory_report


def test_arena_offsets_are_the_planners(project, training):
    plan = memory_report(training, input_in_arena=True).plan
    source = (project.path / "model.c").read_text()
    assert f"#define TTE_MODEL_ARENA_BYTES {plan.arena_bytes}" in (project.path / "model.h").read_text()
    macros = re.findall(r"^#define T_\w+ \(\(\w+ \*\)\(tte_arena\.bytes \+ (\d+)\)\) /\* (\S+): ", source, re.M)
    assert macros, "no arena tensors in model.c"
    buffer_of = {t: b.name for b in plan.buffers for t in b.tensors}
    for offset, tensor in macros:
        assert int(offset) == plan.offsets[buffer_of[tensor]], tensor
    assert "input" in {tensor for _, tensor in macros}  # the image has a slot in the arena


def test_tiled_groups_become_loops(project, training):
    axes = {(n.attrs.get("tile") or {}).get("axis") for n in training.nodes}
    assert {"rows", "channels"} <= axes, "the test network must exercise both kinds of tiles"
    source = (project.path / "model.c").read_text()
    assert "static const tte_row_band g0_rows[" in source
    assert "const tte_channel_band band = {c, c + 16 <= 40 ? 16 : 40 - c};" in source


def test_frozen_weights_in_flash_trained_in_sram(project, training):
    weights = (project.path / "weights.c").read_text()
    for name in training_info(training)["state"]:
        ident = "p_" + re.sub(r"[^0-9A-Za-z_]", "_", name)
        assert re.search(rf"^(int8_t|int32_t|float) {ident}\[", weights, re.M), name
    assert re.search(r"^const int8_t c_stem_w\[", weights, re.M)


def test_generated_code_builds_with_werror(host_library, project):
    flags = (project.path / "model.cmake").read_text()
    assert "-Werror" in flags
    assert host_library.exists()


def test_an_op_without_kernel_is_refused_by_name(training):
    declared = engine_kernels(find_root()) - {"tte_add_bwd_f32"}
    with pytest.raises(CodegenError, match=r"node 'b1\.add\.bwd' \(add_bwd\).*tte_add_bwd_f32"):
        lower(training, declared=declared)


def test_cli_refuses_an_op_without_kernel(training, tmp_path):
    root = tmp_path / "checkout"
    (root / "boards").mkdir(parents=True)
    (root / "engine" / "include" / "tte").mkdir(parents=True)
    (root / "engine" / "CMakeLists.txt").write_text("# an engine without kernels\n")
    (root / "engine" / "include" / "tte" / "tte.h").write_text("int tte_conv2d_fwd_s8(void);\n")
    graph = save(training, tmp_path / "train.tte")
    command = [sys.executable, "-m", "tte_ir.cli", "generate", str(graph), "-o", str(tmp_path / "out")]
    result = subprocess.run([*command, "--root", str(root)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "error:" in result.stderr and "the engine has no kernel" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_forward_graph_is_not_a_training_graph(forward, tmp_path):
    from tte_codegen import generate
    from tte_ir import TteError

    with pytest.raises(TteError, match="not a training graph"):
        generate(forward, tmp_path / "out")
