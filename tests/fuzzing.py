"""What the file readers' fuzz tests (tests/ir/test_format_fuzz.py: .tte, tests/ir/test_tflite_fuzz.py:
.tflite) share: the hypothesis settings that spread ``TTE_FUZZ_EXAMPLES`` over a file's properties, the
per-case time limit (``TTE_FUZZ_TIMEOUT`` seconds) past which a case counts as a hang, the byte edits of
a seed file, and the ``TTE_FUZZ_REPORT`` file that ``nox -s fuzz`` reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = ["TIMEOUT_S", "TOTAL", "Hang", "byte_edits", "fuzz_settings", "set_word", "time_limit", "write_report"]

TOTAL = int(os.environ.get("TTE_FUZZ_EXAMPLES", "400"))
TIMEOUT_S = float(os.environ.get("TTE_FUZZ_TIMEOUT", "10"))


def fuzz_settings(properties: int) -> settings:
    """Hypothesis settings for one of a file's ``properties`` properties: its share of ``TOTAL`` cases,
    derandomized unless ``TTE_FUZZ_EXAMPLES`` is set."""
    return settings(
        max_examples=max(1, TOTAL // properties),
        deadline=None,  # time_limit() counts hangs; timing noise must not fail a case
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize="TTE_FUZZ_EXAMPLES" not in os.environ,
    )


class Hang(Exception):
    """A case ran past TTE_FUZZ_TIMEOUT."""


@contextlib.contextmanager
def time_limit(seconds: float = TIMEOUT_S) -> Iterator[None]:
    """Raise :class:`Hang` in the block once it has run ``seconds``; the previous SIGALRM handler is
    restored on the way out."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"a case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def set_word(raw: bytearray, at: int, word: int) -> None:
    """Overwrite the 4 bytes at ``at`` with ``word``, little-endian (a flatbuffer's offsets and lengths)."""
    raw[at : at + 4] = int(word).to_bytes(4, "little")


def byte_edits(
    data: st.DataObject,
    seed: bytes,
    *,
    max_edits: int,
    max_tail: int,
    words: Callable[[bytearray, int], st.SearchStrategy[int]] | None = None,
) -> bytes:
    """``seed`` after 1 to ``max_edits`` edits drawn from ``data``: a bit flipped, a byte set, the file cut
    at a point, or a tail of up to ``max_tail`` random bytes appended; given ``words``, also (drawn twice
    as often as each of the others) the aligned 32-bit word around a point set to a value drawn from
    ``words(file so far, word offset)``."""
    raw = bytearray(seed)
    kinds = ["flip", "byte", *(["word", "word"] if words is not None else []), "truncate", "extend"]
    for _ in range(data.draw(st.integers(1, max_edits), label="edits")):
        kind = data.draw(st.sampled_from(kinds), label="kind")
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        if kind == "flip":
            raw[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        elif kind == "byte":
            raw[at] = data.draw(st.integers(0, 255), label="byte")
        elif kind == "word" and words is not None:
            at -= at % 4  # the flatbuffer aligns offsets and lengths to 4 bytes
            set_word(raw, at, data.draw(words(raw, at)))
        elif kind == "truncate":
            del raw[at:]
            if not raw:
                break
        else:
            raw += data.draw(st.binary(min_size=1, max_size=max_tail), label="tail")
    return bytes(raw)


def write_report(summary: dict[str, Any], section: str | None = None) -> None:
    """Write ``summary`` as JSON to ``TTE_FUZZ_REPORT``, when it is set: as the whole file, or under the key
    ``section`` beside what the file already holds."""
    target = os.environ.get("TTE_FUZZ_REPORT")
    if not target:
        return
    path = Path(target)
    if section is not None:
        summary = {**(json.loads(path.read_text()) if path.exists() else {}), section: summary}
    path.write_text(json.dumps(summary, indent=1))
