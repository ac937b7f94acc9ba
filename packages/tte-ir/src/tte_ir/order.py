"""The order in which training visits samples: one seed, one order, in every implementation.

``tte train`` (the PyTorch simulation), ``tte run`` (the generated C on the host or a board) and
``tte demo`` all draw epoch ``e``'s order from :func:`sample_order`, so a simulation and a device run
with the same ``--seed`` see the same sequence of samples. The held-out split is seeded on its own
(:func:`split_seed`), so changing the training seed never changes which samples are held out.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_order", "split_seed"]

_ORDER_STREAM = 0  # SeedSequence spawn keys keep the order and the split streams apart
_SPLIT_STREAM = 1


def sample_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """The indices ``0 .. count-1`` in the order epoch ``epoch`` of a run seeded ``seed`` visits them."""
    sequence = np.random.SeedSequence(entropy=int(seed), spawn_key=(_ORDER_STREAM, int(epoch)))
    return np.random.default_rng(sequence).permutation(int(count))


def split_seed(seed: int) -> np.random.Generator:
    """The generator that draws a held-out split seeded ``seed`` (independent of any training seed)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=(_SPLIT_STREAM,)))
