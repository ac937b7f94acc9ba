"""With fixed requantization (NUMERICS.md 2b) the forward uses no floating point at all, shown on
qemu-mps2-an385: a Cortex-M3 has no FPU, so every float operation is a call into libgcc's software float.
The forward-only program (boards/programs/bench_main.c: one tte_model_infer and integer output) of the
generated int8-head residual net runs there with QEMU logging the code it executes (-d in_asm); the log
holds none of the soft-float routines for a fixed graph, and several (the float epilogue) for a float
graph, so the check can fail. The check is of the executed code, not of a static call graph: the kernels
choose their epilogue from the descriptor at run time, so both are linked and a call graph from
tte_model_infer reaches the float one either way. The logits equal the host build's."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tte_codegen import HostModel, generate
from tte_codegen.firmware import board_tools
from tte_ir.compiler import compile_training

from .conftest import qemu_tools
from .nets import images, scheme, tiled_residual_net

pytestmark = pytest.mark.qemu

# libgcc's software float: the AEABI names (__aeabi_fadd, __aeabi_dmul, __aeabi_i2f, __aeabi_cfcmpeq, ...) and
# GCC's (__addsf3, __fixsfsi, __floatsisf, __extendsfdf2, ...); no integer helper (__aeabi_idiv, __aeabi_ldivmod).
SOFT_FLOAT = re.compile(
    r"^__aeabi_(?:c?[fd]|u?[il]2[fd])|^__(?:add|sub|mul|div|neg|eq|ne|lt|le|gt|ge|cmp|unord)[sd]f[23]$"
    r"|^__fix(?:uns)?[sd]f[sd]i$|^__float(?:un)?[sd]i[sd]f$|^__extendsfdf2$|^__truncdfsf2$"
)


@pytest.mark.slow
@pytest.mark.parametrize("requant", ["float", "fixed"])
def test_cortex_m3_forward_calls_soft_float_only_with_float_requantization(requant, tmp_path):
    qemu_tools()
    training = compile_training(tiled_residual_net(head="int8", requant=requant), scheme(head="int8"))
    project = generate(training, tmp_path / "model")
    image = images(training, 1)[:1]
    tools = board_tools(project.root)
    log = tmp_path / "code.log"
    run = tools.profile_forward(training, project, tmp_path / "m3", image, board="qemu-mps2-an385", code_log=log)
    executed = tools.executed_functions(run["elf"], log)
    kernels = {f"tte_{kernel}" for _, kernel, *_ in run["blocks"] if kernel}
    assert {f"{project.manifest['name']}_infer", *kernels} <= executed  # the forward ran, every kernel of it
    soft_float = sorted(name for name in executed if SOFT_FLOAT.match(name))
    if requant == "fixed":
        assert soft_float == [], f"the fixed forward ran libgcc's software float: {soft_float}"
    else:
        assert {"__aeabi_fmul", "__aeabi_fadd"} <= set(soft_float), soft_float
    host = HostModel(project, tmp_path / "host").infer(image[0])
    assert run["logits"] == host.view(np.uint8).tolist()  # int8 logits, printed as their byte
