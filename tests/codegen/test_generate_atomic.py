"""`tte generate` replaces a project whole: killed (SIGKILL) at random moments it leaves the complete
old project or the complete new one, never a mix; temporary folders follow one documented pattern
and the next run removes them; an exception leaves nothing behind; outputs get the umask's modes."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import random
import signal
import stat
import time
from pathlib import Path

import pytest

from tte_codegen import generate
from tte_ir import Graph, TteError
from tte_ir.serialize import atomic_write_bytes

STAGING = (".model.tte-new-", ".model.tte-old-")  # tte_codegen.generate's temporary folders for "model"


def files_of(folder: Path) -> dict[str, bytes]:
    """A project's files (its build folders aside), by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith("build-")}


def strays(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name != "model")


def _generate(training: Graph, target: str, name: str) -> None:
    generate(training, target, name=name)


def _generate_killed_before_swap(training: Graph, target: str, name: str) -> None:
    """A generate killed (SIGKILL, as a power cut would) once its staging folder is complete, just before
    the swap that puts it in place."""
    module = importlib.import_module("tte_codegen.generate")  # the module: the package re-exports the function

    def killed(*args: object) -> bool:
        os.kill(os.getpid(), signal.SIGKILL)
        return False

    module._exchange = killed
    generate(training, target, name=name)


def test_a_killed_generate_leaves_the_old_project_or_the_new(training: Graph, tmp_path: Path) -> None:
    refs = {name: files_of(generate(training, tmp_path / "ref" / name, name=name).path) for name in ("alpha", "beta")}
    assert refs["alpha"] != refs["beta"]
    parent = tmp_path / "out"
    target = parent / "model"
    generate(training, target, name="alpha")
    current = "alpha"
    fork = multiprocessing.get_context("fork")
    started = time.perf_counter()
    job = fork.Process(target=_generate, args=(training, str(target), "beta"))
    job.start()
    job.join()
    span = time.perf_counter() - started  # fork, generate and exit, uninterrupted
    current = "beta"
    rng = random.Random(15)
    outcomes = {"old": 0, "new": 0, "interrupted": 0}
    for _ in range(20):
        other = "alpha" if current == "beta" else "beta"
        job = fork.Process(target=_generate, args=(training, str(target), other))
        job.start()
        time.sleep(rng.uniform(0.0, span))
        os.kill(job.pid, signal.SIGKILL)
        job.join()
        got = files_of(target)
        assert got in (refs["alpha"], refs["beta"]), "a mix of two projects"
        left = strays(parent)
        assert all(name.startswith(STAGING) for name in left), left
        outcomes["interrupted"] += bool(left)
        if got == refs[other]:
            outcomes["new"] += 1
            current = other
        else:
            outcomes["old"] += 1
    # Where the random kills land depends on the machine's timing; one kill lands for sure between the
    # written staging folder and the swap: the old project stays, the staging folder is the only stray.
    old_files = files_of(target)
    job = fork.Process(target=_generate_killed_before_swap, args=(training, str(target), "gamma"))
    job.start()
    job.join()
    assert job.exitcode == -signal.SIGKILL
    assert files_of(target) == old_files
    left = strays(parent)
    assert left and all(name.startswith(STAGING) for name in left), (left, outcomes)
    generate(training, target, name="alpha")
    assert files_of(target) == refs["alpha"] and strays(parent) == []


def test_an_exception_leaves_the_old_project_and_no_temporary_folder(
    training: Graph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "model"
    old = files_of(generate(training, target, name="alpha").path)

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)  # every file write's last step
    with pytest.raises(OSError, match="No space left"):
        generate(training, target, name="beta")
    monkeypatch.undo()
    assert files_of(target) == old and strays(tmp_path) == []


def test_build_folders_survive_and_foreign_files_are_refused(training: Graph, tmp_path: Path) -> None:
    target = tmp_path / "model"
    generate(training, target)
    (target / "build-host").mkdir()
    (target / "build-host" / "CMakeCache.txt").write_text("kept\n")
    generate(training, target)
    assert (target / "build-host" / "CMakeCache.txt").read_text() == "kept\n"
    (target / "notes.txt").write_text("mine\n")
    with pytest.raises(TteError, match=r"model: holds files `tte generate` does not write \(notes.txt\)"):
        generate(training, target)
    assert (target / "notes.txt").read_text() == "mine\n"
    (tmp_path / "file").write_text("")
    with pytest.raises(TteError, match="file: not a folder"):
        generate(training, tmp_path / "file")


def test_outputs_get_the_umask_modes(training: Graph, tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        project = generate(training, tmp_path / "model")
        single = tmp_path / "single.json"
        atomic_write_bytes(single, b"{}\n")
        kept = tmp_path / "kept.json"
        kept.write_bytes(b"")
        kept.chmod(0o604)
        atomic_write_bytes(kept, b"{}\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(project.path.stat().st_mode) == 0o750
    assert {stat.S_IMODE(p.stat().st_mode) for p in project.path.iterdir()} == {0o640}
    assert stat.S_IMODE(single.stat().st_mode) == 0o640
    assert stat.S_IMODE(kept.stat().st_mode) == 0o604  # an existing file keeps its mode, as open() does
