"""tte-algo: quantize PyTorch CNNs and train them as real int8 graphs with quantization-aware scaling.

- :mod:`tte_algo.zoo`: float MobileNetV2 / ProxylessNAS / MCUNet-style networks from a block list, a plain CNN;
- :mod:`tte_algo.fx_import`: a user's float CNN -> BN-folded float graph through ``torch.fx``;
- :mod:`tte_algo.ptq`: calibration and export to a ``tte_ir`` int8 forward graph;
- :mod:`tte_algo.sim`: the batched, differentiable, bit-exact int8 simulation of any forward graph;
- :mod:`tte_algo.train`: QAS-SGD with sparse-update schemes and the three rounding modes, and the fp32 baseline;
- :mod:`tte_algo.data`: built-in digits and image folders as device input codes;
- :mod:`tte_algo.bench`: the QAS accuracy benchmark (``nox -s accuracy``).

Names are re-exported lazily, so that ``import tte_algo`` (done by the ``tte`` command's entry points)
does not import torch until something that needs it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "BlockNet": "zoo",
    "BlockSpec": "zoo",
    "PlainCNN": "zoo",
    "ZOO": "zoo",
    "build_model": "zoo",
    "mobilenetv2_blocks": "zoo",
    "FloatGraph": "floatgraph",
    "FloatNet": "floatgraph",
    "FloatOp": "floatgraph",
    "SUPPORTED": "fx_import",
    "UnsupportedModelError": "fx_import",
    "import_fx": "fx_import",
    "activation_quant": "ptq",
    "calibrate": "ptq",
    "export_graph": "ptq",
    "quantize_weights": "ptq",
    "Int8Sim": "sim",
    "head_node": "sim",
    "TrainConfig": "train",
    "TrainResult": "train",
    "evaluate": "train",
    "scheme_last_convs": "train",
    "train_float": "train",
    "train_int8": "train",
    "DataError": "data",
    "Dataset": "data",
    "dequantize_input": "data",
    "load_data": "data",
    "load_digits": "data",
    "load_image_folder": "data",
    "parse_classes": "data",
    "quantize_model": "ptq",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tte_algo.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tte_algo' has no attribute '{name}'")
