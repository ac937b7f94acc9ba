"""The new classifier head an importer puts in place of a model's own (``--classes N``)."""

from __future__ import annotations

import numpy as np

from tte_ir._ir import DType, GraphBuilder, Op, QuantParams

__all__ = ["HEAD_INIT", "new_head"]

HEAD_INIT = "uniform(+-1/sqrt(C)), numpy default_rng({seed}), zero bias"


def new_head(b: GraphBuilder, x: str, num_classes: int, head: str, seed: int, logits_scale: float) -> str:
    """Add the node ``head``: a ``num_classes`` linear layer over the ``[1, C]`` tensor ``x`` with weights
    drawn as :data:`HEAD_INIT` says (PyTorch's ``nn.Linear`` bound), in float32 (``head`` "fp32") or as
    int8 codes with per-class scales and int8 logits of scale ``logits_scale`` (``head`` "int8").
    Returns the logits tensor."""
    features = b.spec(x).shape[1]
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(features)
    w_float = rng.uniform(-bound, bound, size=(num_classes, features))
    if head == "fp32":
        w = b.constant("head.w", w_float.astype(np.float32))
        bias = b.constant("head.b", np.zeros(num_classes, dtype=np.float32))
        y = b.tensor("logits", (1, num_classes), DType.FLOAT32)
    else:
        w_scales = (np.abs(w_float).max(axis=1) / 127.0).astype(np.float32)
        codes = np.clip(np.rint(w_float / w_scales.astype(np.float64)[:, None]), -127, 127).astype(np.int8)
        w = b.constant("head.w", codes, QuantParams.per_channel(w_scales))
        bias = b.constant("head.b", np.zeros(num_classes, dtype=np.int32))
        y = b.tensor("logits", (1, num_classes), DType.INT8, QuantParams.per_tensor(logits_scale, 0))
    b.node("head", Op.LINEAR, (x, w, bias), (y,))
    return y
