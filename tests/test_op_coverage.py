"""Every op has an entry in every consumer, and every consumer reads the one description of its kernel.

An op added to ``tte_ir.Op`` without, say, its simulation kernel fails here at test time, naming the op
and the consumer, instead of failing later on the first graph that uses it. ``docs/adding-an-op.md``
lists the files these entries live in.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tte_ir import Op
from tte_ir.autodiff import GRAD_RULES, NOT_DIFFERENTIABLE
from tte_ir.kernels import KERNEL_CALLS, OP_KERNELS, SIGNATURES, kernel_call
from tte_ir.ops import OP_TABLE
from tte_ir.reference import FORWARD
from tte_ir.reference_train import TRAINING_KERNELS

ROOT = Path(__file__).resolve().parents[1]
FORWARD_OPS = frozenset(GRAD_RULES)  # the ops a user's model is made of; the rest are the compiler's


def _declared_kernels() -> set[str]:
    """The kernel functions the engine's public headers declare."""
    text = "".join((ROOT / "engine" / "include" / "tte" / h).read_text() for h in ("tte.h", "tte_train.h"))
    return set(re.findall(r"\btte_status\s+tte_(\w+)\s*\(", text))


def _missing() -> list[str]:
    """What each op lacks, one line per gap."""
    from tte_algo.sim import SIM_KERNELS
    from tte_engine import calls

    declared = _declared_kernels()
    bound = set(calls.bound_kernels())
    gaps = []
    for op in Op:
        name = op.name.lower()
        if op not in OP_TABLE:
            gaps.append(f"{name}: no row in tte_ir.ops.OP_TABLE (shapes, dtypes, roles)")
        if op not in KERNEL_CALLS or op not in OP_KERNELS:
            gaps.append(f"{name}: no kernel call in tte_ir.kernels (KERNEL_CALLS and OP_KERNELS)")
            continue
        if (op in GRAD_RULES) == (op in NOT_DIFFERENTIABLE):
            gaps.append(f"{name}: needs exactly one of a gradient rule (GRAD_RULES) or NOT_DIFFERENTIABLE")
        if op in FORWARD_OPS:
            if op not in FORWARD and OP_KERNELS[op] != (None,):
                gaps.append(f"{name}: no numpy reference kernel (tte_ir.reference.FORWARD)")
            if op not in SIM_KERNELS:
                gaps.append(f"{name}: no simulation kernel (tte_algo.sim.SIM_KERNELS)")
        elif op not in TRAINING_KERNELS:
            gaps.append(f"{name}: no training reference kernel (tte_ir.reference_train.TRAINING_KERNELS)")
        for kernel in OP_KERNELS[op]:
            if kernel is None:
                continue
            if kernel not in SIGNATURES:
                gaps.append(f"{name}: kernel '{kernel}' has no C signature (tte_ir.kernels.SIGNATURES)")
            if kernel not in declared:
                gaps.append(f"{name}: kernel 'tte_{kernel}' is not declared by engine/include/tte (the C engine)")
            if kernel not in bound:
                gaps.append(f"{name}: kernel '{kernel}' is not in the engine binding (regenerate kernel_calls.inc)")
    return gaps


def test_every_op_has_every_consumer() -> None:
    gaps = _missing()
    assert not gaps, "ops missing an entry:\n" + "\n".join(gaps)


def test_a_missing_entry_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the simulation's add kernel: the coverage check names the op and the consumer."""
    from tte_algo import sim

    monkeypatch.delitem(sim.SIM_KERNELS, Op.ADD)
    assert _missing() == ["add: no simulation kernel (tte_algo.sim.SIM_KERNELS)"]


def test_kernel_calls_pick_kernels_their_op_lists() -> None:
    """Every node of a compiled training graph that uses every op becomes a call its op declares."""
    from tests.codegen.nets import scheme, tiled_residual_net
    from tte_ir.compiler import compile_training

    for head in ("fp32", "int8"):
        graph = compile_training(tiled_residual_net(head=head), scheme(head=head))
        for node in graph.nodes:
            assert kernel_call(graph, node).kernel in OP_KERNELS[node.op], node.describe()
