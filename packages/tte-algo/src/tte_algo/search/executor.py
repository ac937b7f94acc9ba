"""One interface for running many independent jobs (fine-tuning runs of contribution analysis).

``LocalExecutor`` (default) runs jobs in a process pool on this machine; ``RayExecutor`` sends them
to a Ray cluster (``pip install 'tte-algo[ray]'``, then pass the cluster address) so a large analysis
spreads over many machines and GPUs. Both stream results back as jobs finish, so the caller can
cache each result at once and an interrupted run loses only the jobs in flight.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from tte_ir import TteError
from tte_ir.serialize import atomic_write_bytes

__all__ = ["Executor", "JobCache", "LocalExecutor", "RayExecutor", "job_key", "make_executor"]

T = TypeVar("T")
R = TypeVar("R")


class Executor:
    """Runs ``fn`` over ``items`` and yields ``(index, result)`` pairs in completion order."""

    def imap_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        raise NotImplementedError


class LocalExecutor(Executor):
    """A process pool of ``workers`` processes; ``workers=1`` runs in this process (no pickling).

    Workers start with ``spawn`` (a forked child of a process that already ran torch's thread pool
    can deadlock), so ``fn`` must be importable. When the caller stops early (an interrupt, or an
    exception while handling a result), queued jobs are cancelled rather than run.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or max(1, (os.cpu_count() or 1))

    def imap_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        if self.workers == 1 or len(items) <= 1:
            for i, item in enumerate(items):
                yield i, fn(item)
            return
        pool = ProcessPoolExecutor(min(self.workers, len(items)), mp_context=multiprocessing.get_context("spawn"))
        try:
            pending = {pool.submit(fn, item): i for i, item in enumerate(items)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor(Executor):
    """Jobs as Ray tasks on the cluster at ``address`` (``"local"`` starts Ray in this process)."""

    def __init__(self, address: str, num_gpus_per_job: float = 0.0) -> None:
        try:
            import ray
        except ImportError:
            raise TteError("the Ray backend needs Ray: pip install 'tte-algo[ray]'") from None
        self._ray = ray
        self.num_gpus_per_job = num_gpus_per_job
        if not ray.is_initialized():
            if address == "local":
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address)

    def imap_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        remote = self._ray.remote(num_gpus=self.num_gpus_per_job)(fn)
        pending = {remote.remote(item): i for i, item in enumerate(items)}
        try:
            while pending:
                done, _ = self._ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield pending.pop(ref), self._ray.get(ref)
        finally:
            for ref in pending:  # stopped early: do not leave the cluster running jobs nobody collects
                self._ray.cancel(ref)


def make_executor(address: str | None = None, workers: int | None = None) -> Executor:
    """``LocalExecutor`` unless a Ray cluster ``address`` is given."""
    return RayExecutor(address) if address else LocalExecutor(workers)


def job_key(**parts: Any) -> str:
    """A stable hash of a job's identity (model digest, data digest, settings)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class JobCache:
    """One JSON file per finished job under ``folder``, written atomically (safe to interrupt)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> Any | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a damaged entry is recomputed

    def put(self, key: str, value: Any) -> None:
        atomic_write_bytes(self._path(key), json.dumps(value).encode())
