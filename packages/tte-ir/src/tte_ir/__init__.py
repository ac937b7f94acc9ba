"""tte-ir: the intermediate representation of the Tiny Training Engine.

Graphs are immutable (:class:`Graph`, :class:`Node`, :class:`TensorSpec`); :func:`verify` checks
every invariant; :func:`save`/:func:`load` read and write ``.tte`` files; :mod:`tte_ir.reference`
executes graphs exactly as NUMERICS.md specifies; :func:`import_seed_pkl` imports the seed paper's
int8 MCU models. :func:`kernel_call` says how a node becomes one engine kernel call
(:mod:`tte_ir.kernels`, the description every consumer reads). :func:`compile_training` turns a forward graph and a :class:`Scheme` into one
training-step graph (:mod:`tte_ir.autodiff`, :mod:`tte_ir.tiling`), :func:`memory_report` plans its
arena (:mod:`tte_ir.memory`) and :func:`train_step` executes it (:mod:`tte_ir.reference_train`).
"""

from tte_ir import reference, reference_train, rounding
from tte_ir._ir import DType, Graph, GraphBuilder, Node, Op, QuantParams, TensorSpec, TteError, VerifyError
from tte_ir.autodiff import GRAD_RULES, build_training_graph, eliminate_dead_code, fp32_head, training_info
from tte_ir.compiler import compile_training
from tte_ir.importers import SeedModelError, import_seed_pkl, load_seed_pkl
from tte_ir.kernels import KERNEL_CALLS, KernelCall, conv_family, kernel_call, weight_layout
from tte_ir.memory import GreedyPlanner, MemoryReport, NaivePlanner, Planner, memory_report
from tte_ir.memory_plot import plot_memory
from tte_ir.ops import OP_TABLE, OpDef, node_attrs, node_macs
from tte_ir.quant import (
    add_multipliers,
    conv_multiplier,
    dequantize_linear,
    node_multipliers,
    pool_multiplier,
    qas_divisors,
)
from tte_ir.reference_train import StepResult, initial_state, train_step
from tte_ir.scheme import (
    Scheme,
    SchemeError,
    WeightUpdate,
    conv_nodes,
    is_depthwise,
    load_scheme,
    save_scheme,
    select_channels,
)
from tte_ir.serialize import FORMAT_VERSION, TteFormatError, load, save
from tte_ir.summary import LayerRow, summarize
from tte_ir.tiling import tile_backward_channels, tile_frozen_rows
from tte_ir.verify import verify

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "GRAD_RULES",
    "KERNEL_CALLS",
    "OP_TABLE",
    "DType",
    "Graph",
    "GraphBuilder",
    "GreedyPlanner",
    "KernelCall",
    "LayerRow",
    "MemoryReport",
    "NaivePlanner",
    "Node",
    "Op",
    "OpDef",
    "Planner",
    "QuantParams",
    "Scheme",
    "SchemeError",
    "SeedModelError",
    "StepResult",
    "TensorSpec",
    "TteError",
    "TteFormatError",
    "VerifyError",
    "WeightUpdate",
    "add_multipliers",
    "build_training_graph",
    "compile_training",
    "conv_family",
    "conv_multiplier",
    "conv_nodes",
    "dequantize_linear",
    "eliminate_dead_code",
    "fp32_head",
    "import_seed_pkl",
    "initial_state",
    "is_depthwise",
    "kernel_call",
    "load",
    "load_scheme",
    "load_seed_pkl",
    "memory_report",
    "node_attrs",
    "node_macs",
    "node_multipliers",
    "plot_memory",
    "pool_multiplier",
    "qas_divisors",
    "reference",
    "reference_train",
    "rounding",
    "save",
    "save_scheme",
    "select_channels",
    "summarize",
    "tile_backward_channels",
    "tile_frozen_rows",
    "train_step",
    "training_info",
    "verify",
    "weight_layout",
]
