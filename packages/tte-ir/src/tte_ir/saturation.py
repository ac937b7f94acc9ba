"""How much of a trained model training pushed to the limits of its codes: the share of trained
int8 weight codes at +-127 and of trained int32 biases at the int32 limits after training.

A QAS step larger than the code range (a learning rate far too high) drives weights to +-127 and
biases to the int32 limits, where they stop learning; the run still ends without error. ``tte
train`` and ``tte run`` therefore record these shares in their metrics and warn, in one line on
stderr, when either is above :data:`SATURATION_WARN`. A per-channel symmetric int8 weight has one
code at +-127 per channel by construction, so a healthy run stays far below the threshold. Biases
already at a limit before training (dead channels, frozen) are not counted as trained.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np

from tte_ir.constants import INT32_MAX, INT32_MIN

__all__ = ["SATURATION_WARN", "saturation", "saturation_text", "warn_saturation"]

SATURATION_WARN = 0.10
"""The share of trained weight codes (or biases) at their limits above which a run warns."""


def saturation(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The shares at the limits of the trained codes ``after`` (int8 weights at +-127, int32 biases at
    the int32 limits, other dtypes ignored), by kind and by tensor (JSON-ready). ``before`` holds the
    same tensors before training: a bias already at a limit there is frozen, not counted."""
    kinds = {"weights": [0, 0], "biases": [0, 0]}
    tensors: dict[str, float] = {}
    for name, value in after.items():
        codes = np.asarray(value)
        if codes.dtype == np.int8:
            kind, trained = "weights", np.ones(codes.shape, dtype=bool)
            limit = np.abs(codes.astype(np.int16)) >= 127
        elif codes.dtype == np.int32:
            old = np.asarray(before[name])
            kind, trained = "biases", (old != INT32_MIN) & (old != INT32_MAX)
            limit = (codes == INT32_MIN) | (codes == INT32_MAX)
        else:
            continue
        count, at_limit = int(trained.sum()), int((limit & trained).sum())
        kinds[kind][0] += at_limit
        kinds[kind][1] += count
        tensors[name] = at_limit / count if count else 0.0
    out: dict[str, Any] = {"threshold": SATURATION_WARN, "tensors": tensors}
    for kind, (at_limit, count) in kinds.items():
        out[kind] = {"at_limit": at_limit, "trained": count, "share": at_limit / count if count else 0.0}
    return out


def saturation_text(stats: Mapping[str, Any]) -> str:
    """One line: ``saturation: 1.2% of 4096 trained weight codes at +-127, 0.0% of 64 biases at the int32 limits``."""
    w, b = stats["weights"], stats["biases"]
    return (
        f"saturation: {100 * w['share']:.1f}% of {w['trained']} trained weight codes at +-127, "
        f"{100 * b['share']:.1f}% of {b['trained']} trained biases at the int32 limits"
    )


def warn_saturation(stats: Mapping[str, Any], stream: TextIO | None = None) -> bool:
    """Write one warning line to ``stream`` (stderr) when a share is above the threshold; whether it did."""
    over = [
        f"{100 * stats[kind]['share']:.1f}% of the trained {label}"
        for kind, label in (("weights", "weight codes"), ("biases", "biases"))
        if stats[kind]["share"] > stats["threshold"]
    ]
    if not over:
        return False
    print(
        f"warning: {' and '.join(over)} ended at their limits (above {100 * stats['threshold']:.0f}%): "
        "they no longer learn; lower the learning rate",
        file=stream if stream is not None else sys.stderr,
    )
    return True
