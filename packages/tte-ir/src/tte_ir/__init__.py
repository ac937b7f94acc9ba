"""tte-ir: the intermediate representation of the Tiny Training Engine.

Graphs are immutable (:class:`Graph`, :class:`Node`, :class:`TensorSpec`); :func:`verify` checks
every invariant; :func:`save`/:func:`load` read and write ``.tte`` files; :mod:`tte_ir.reference`
executes graphs exactly as NUMERICS.md specifies; :func:`import_seed_pkl` imports the seed paper's
int8 MCU models.
"""

from tte_ir import reference, rounding
from tte_ir._ir import DType, Graph, GraphBuilder, Node, Op, QuantParams, TensorSpec, TteError, VerifyError
from tte_ir.importers import SeedModelError, import_seed_pkl, load_seed_pkl
from tte_ir.ops import OP_TABLE, OpDef, node_attrs, node_macs
from tte_ir.quant import add_multipliers, conv_multiplier, node_multipliers, pool_multiplier
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
from tte_ir.verify import verify

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "OP_TABLE",
    "DType",
    "Graph",
    "GraphBuilder",
    "LayerRow",
    "Node",
    "Op",
    "OpDef",
    "QuantParams",
    "Scheme",
    "SchemeError",
    "SeedModelError",
    "TensorSpec",
    "TteError",
    "TteFormatError",
    "VerifyError",
    "WeightUpdate",
    "add_multipliers",
    "conv_multiplier",
    "conv_nodes",
    "import_seed_pkl",
    "is_depthwise",
    "load",
    "load_scheme",
    "load_seed_pkl",
    "node_attrs",
    "node_macs",
    "node_multipliers",
    "pool_multiplier",
    "reference",
    "rounding",
    "save",
    "save_scheme",
    "select_channels",
    "summarize",
    "verify",
]
