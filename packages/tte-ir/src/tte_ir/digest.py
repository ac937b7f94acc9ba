"""The model digest: a stable 64-bit identity of a training graph, for the device.

The generated C carries it (``<NAME>_DIGEST`` in ``model.h``) and stamps it into every exported
parameter blob and every flash save (``tte/tte_persist.h``), so that parameters exported from one
model are never loaded into another: ``<name>_import_params`` and ``tte_persist_restore`` compare
it. What it covers is what gives the trained parameters their meaning:

* the graph's structure: every tensor (name, shape, dtype, quantization), every node (name, op,
  inputs, outputs, attributes, so also the scheme's tiling, rounding and seed), the inputs and
  outputs, and the training record's parameter list (``metadata["training"]["state"]``);
* the requantization arithmetic when it is not the default float one (``metadata["requant"]``
  "fixed", NUMERICS.md 2b): the same weights then give other codes;
* every frozen constant (name, dtype, shape and bytes): the weights the trained slices work with.

Left out: the graph's name, the rest of its metadata (provenance, the scheme's learning rates) and
the trained parameters' values, which are what an export carries and a training step changes.
The digest is the first 8 bytes of a SHA-256, little-endian, over a canonical JSON text of the
structure followed by the constants in name order: the same graph gives the same digest on every
machine and Python version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from tte_ir._ir import Graph
from tte_ir.quant import requant_mode
from tte_ir.serialize import graph_to_json

__all__ = ["graph_digest"]


def _structure(graph: Graph) -> dict[str, Any]:
    data = graph_to_json(graph)
    training = graph.metadata.get("training")
    state = training.get("state", {}) if isinstance(training, dict) else {}
    structure = {
        "inputs": data["inputs"],
        "outputs": data["outputs"],
        "tensors": data["tensors"],
        "nodes": data["nodes"],
        "state": [[str(k), str(v)] for k, v in dict(state).items()],
    }
    mode = requant_mode(graph)
    if mode != "float":  # absent for float graphs, so the digests of existing models stay what they were
        structure["requant"] = mode
    return structure


def graph_digest(graph: Graph) -> int:
    """The 64-bit model digest of ``graph`` (an unsigned int): its structure and frozen constants,
    not its trained parameters' values (see the module's docstring)."""
    structure = _structure(graph)
    trained = {name for name, _ in structure["state"]}
    text = json.dumps(structure, sort_keys=True, separators=(",", ":"), default=str)
    h = hashlib.sha256(text.encode())
    for name in sorted(graph.constants):
        if name in trained:
            continue
        array = np.ascontiguousarray(graph.constants[name])
        h.update(f"\n{name}:{array.dtype.str}:{list(array.shape)}\n".encode())
        h.update(array.tobytes())
    return int.from_bytes(h.digest()[:8], "little")
