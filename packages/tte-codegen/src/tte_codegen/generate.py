"""Write the C project of one training graph: ``model.h``, ``model.c``, ``weights.h``, ``weights.c``,
``tte_model.h``, ``model.cmake``, ``CMakeLists.txt`` and ``manifest.json`` (what the Python runners
need to read the exported parameters back: their order, layouts and offsets, plus the planner's figures).
Every C symbol and CMake target of the project carries the project's name (``<name>_train_step``),
so models of different names link into one program.

The templates (``templates/*.j2``) read as the C they print; :mod:`tte_codegen.lowering` decides
every pointer, array and call.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from tte_codegen.lowering import CArray, CModel, ParamLayout, c_values, lower
from tte_ir import Graph, TteError
from tte_ir.serialize import atomic_write_bytes

__all__ = ["GeneratedProject", "engine_cmake_dir", "engine_kernels", "find_root", "generate", "load_project"]

VERSION = "0.1.0"
MANIFEST = "manifest.json"
# A model's name prefixes its C symbols and macros and names its CMake target: a C identifier, not
# starting with an underscore (reserved in C) nor with `tte` (the engine's names, and tte_model.h's aliases).
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def find_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the engine (``engine/``, C sources and CMake package) and ``boards/``: ``root``,
    else ``$TTE_ROOT``, else the checkout this package is installed from (an editable install), else the
    working directory when it is a checkout, else the copy the installed ``tte-engine`` package carries
    (:func:`tte_engine.sources.root`)."""
    candidates = [Path(root)] if root is not None else []
    if os.environ.get("TTE_ROOT"):
        candidates.append(Path(os.environ["TTE_ROOT"]))
    candidates += [Path(__file__).resolve().parents[4], Path.cwd()]
    for candidate in candidates:
        if (candidate / "engine" / "CMakeLists.txt").is_file() and (candidate / "boards").is_dir():
            return candidate.resolve()
    try:
        from tte_engine.sources import root as installed_root

        return installed_root()
    except (ImportError, FileNotFoundError) as exc:
        installed = f"the tte-engine package: {exc}"
    tried = ", ".join([*(str(c) for c in candidates), installed])
    raise TteError(
        f"no engine/ and boards/ found (tried {tried}); pip install tte-engine (it carries both), set TTE_ROOT "
        "to a tte checkout, or pass --root to `tte generate` or `tte run`"
    )


def engine_cmake_dir(root: Path) -> Path:
    """The folder of the engine's ``tte_engineConfig.cmake`` under ``root`` (:func:`find_root`): a generated
    project is configured with ``-Dtte_engine_DIR=`` this folder."""
    return root / "engine" / "cmake"


def engine_kernels(root: Path) -> frozenset[str]:
    """The ``tte_*`` functions the engine's public headers declare."""
    declared: set[str] = set()
    for header in sorted((root / "engine" / "include" / "tte").glob("*.h")):
        declared.update(re.findall(r"\b(tte_\w+)\s*\(", header.read_text()))
    return frozenset(declared)


@dataclass(frozen=True)
class GeneratedProject:
    """A generated C project: its folder and the manifest written beside the sources."""

    path: Path
    manifest: dict[str, Any]

    @property
    def params(self) -> list[ParamLayout]:
        """The trained parameters in export order."""
        return [
            ParamLayout(
                p["tensor"],
                p["dtype"],
                tuple(p["ir_shape"]),
                tuple(p["engine_shape"]),
                tuple(p["to_ir_axes"]),
                p["offset"],
                p["nbytes"],
            )
            for p in self.manifest["params"]
        ]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The IR shape of one input image, ``[1, C, H, W]``."""
        return tuple(self.manifest["input_shape"])

    @property
    def root(self) -> Path:
        """The engine and boards the project builds against: those it was generated with, or, where that
        folder is gone (the project was copied to another machine), :func:`find_root`'s."""
        return find_root(self.manifest["root"])


def load_project(path: str | os.PathLike[str]) -> GeneratedProject:
    """A project written by :func:`generate`."""
    folder = Path(path)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise TteError(f"{folder}: not a generated project (no {MANIFEST}; run `tte generate`)") from None
    except json.JSONDecodeError as exc:
        raise TteError(f"{folder / MANIFEST}: not valid JSON ({exc})") from None
    return GeneratedProject(folder, manifest)


# A project is written whole into a hidden sibling of its folder and then moved into place, so that a
# process killed at any moment leaves the old project or the new one, never a mix. The temporary
# folders are named by these prefixes (plus a random suffix); any left by a killed `tte generate`
# are removed by the next one into the same folder.
_NEW = ".{}.tte-new-"
_OLD = ".{}.tte-old-"
_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux's renameat2 with RENAME_EXCHANGE); False where the
    system or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd = -100  # AT_FDCWD
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _write_project(folder: Path, contents: dict[str, bytes]) -> None:
    """Put the project ``contents`` (file name: bytes) at ``folder`` as a whole.

    The files are written into a new hidden sibling folder, the old project's ``build-*`` folders
    (derived, and slow to rebuild) are moved into it, and it then replaces ``folder``: by one atomic
    exchange where the system has it (Linux), else by renaming the old folder aside, the new one in,
    and removing the old one. In that fallback's window between the two renames ``folder`` does not
    exist and the old project lies complete in ``.<name>.tte-old-*``. A folder holding anything else
    than a project's files and build folders is refused rather than replaced. Temporary folders are
    removed on any exception; those of a killed run by the next run."""
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and not folder.is_dir():
        raise TteError(f"{folder}: not a folder; choose a folder for the generated project")
    old_entries = sorted(os.listdir(folder)) if folder.is_dir() else []
    foreign = [e for e in old_entries if e not in contents and not e.startswith("build-")]
    if foreign:
        raise TteError(
            f"{folder}: holds files `tte generate` does not write ({', '.join(foreign[:5])}); the project replaces "
            "the folder whole: choose a new or empty folder, or move them away"
        )
    for pattern in (_NEW, _OLD):
        for stale in parent.glob(pattern.format(folder.name) + "*"):
            shutil.rmtree(stale, ignore_errors=True)
    staging = parent / (_NEW.format(folder.name) + secrets.token_hex(4))
    os.mkdir(staging)  # mode 0o777 less the umask, as any folder
    try:
        for name, data in contents.items():
            atomic_write_bytes(staging / name, data)
        for entry in old_entries:
            if entry.startswith("build-"):
                os.rename(folder / entry, staging / entry)
        if not folder.exists():
            os.rename(staging, folder)
        elif _exchange(staging, folder):
            shutil.rmtree(staging, ignore_errors=True)  # now the old project
        else:
            aside = parent / (_OLD.format(folder.name) + secrets.token_hex(4))
            os.rename(folder, aside)
            os.rename(staging, folder)
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_name(name: str) -> None:
    """Refuse (:class:`~tte_ir.TteError`, saying why) a name that cannot prefix a model's C symbols."""
    if not _NAME.fullmatch(name):
        raise TteError(
            f"model name {name!r} is not a C identifier: it prefixes the generated symbols ({name}_train_step); "
            "use letters, digits and '_', starting with a letter"
        )
    if name.lower() == "tte" or name.lower().startswith("tte_"):
        raise TteError(f"model name {name!r} starts with 'tte', the engine's prefix: choose another --name")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tte_codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _per_line(a: CArray) -> int:
    return 8 if a.ctype in ("float", "int32_t") else 24


def _manifest(m: CModel, root: Path) -> dict[str, Any]:
    r = m.report
    return {
        "format": "tte-codegen-project",
        "version": 1,
        "generator": VERSION,
        "name": m.name,
        "graph": m.graph,
        "root": str(root),
        "input_shape": list(m.input_shape),
        "classes": m.classes,
        "logits_dtype": "float32" if m.logits_ctype == "float" else "int8",
        "lr": m.lr,
        "head_lr": m.head_lr,
        "macs_per_step": sum(b.macs for b in m.forward + m.backward),
        "macs_per_infer": sum(b.macs for b in m.forward),
        "param_bytes": m.param_bytes,
        "params": [
            {
                "tensor": p.tensor,
                "dtype": p.dtype,
                "ir_shape": list(p.ir_shape),
                "engine_shape": list(p.engine_shape),
                "to_ir_axes": list(p.to_ir_axes),
                "offset": p.offset,
                "nbytes": p.nbytes,
            }
            for p, _ in m.params
        ],
        "planner": {**r.to_json(), "arena_bytes": m.arena_bytes, "input_in_arena": True},
        "flash_const_bytes": int(sum(a.values.nbytes for a in m.arrays if not a.sram)),
        "sram_param_bytes": int(sum(a.values.nbytes for a in m.arrays if a.sram)),
        "kernels": list(m.kernels),
    }


def generate(
    graph: Graph,
    out_dir: str | os.PathLike[str],
    *,
    name: str = "model",
    root: str | os.PathLike[str] | None = None,
) -> GeneratedProject:
    """Write the C project of the training graph ``graph`` into ``out_dir``; ``name`` (a C identifier
    not starting with ``tte``) prefixes its symbols (``<name>_infer``, ``<NAME>_CLASSES``) and names
    its CMake target.

    Raises :class:`~tte_codegen.CodegenError` for a node the engine cannot run (naming it and its op).
    """
    _check_name(name)
    checkout = find_root(root)
    model = lower(graph, name=name, declared=engine_kernels(checkout))
    env = _environment()
    _, channels, height, width = model.input_shape
    context = {
        "m": model,
        "name": model.name,
        "NAME": model.name.upper(),
        "version": VERSION,
        "input_h": height,
        "input_w": width,
        "input_c": channels,
        "input_bytes": channels * height * width,
        "train_macs": sum(b.macs for b in model.forward + model.backward),
        "infer_macs": sum(b.macs for b in model.forward),
        "forward_macs": sum(b.macs for b in model.forward),
        "lr_body": f"{float(np.float32(model.lr)).hex()}f",
        "lr_head": f"{float(np.float32(model.head_lr)).hex()}f",
        "flash_bytes": sum(a.values.nbytes for a in model.arrays if not a.sram),
        "sram_bytes": sum(a.values.nbytes for a in model.arrays if a.sram),
        "values": lambda a: c_values(a.values, a.ctype, _per_line(a)),
    }
    files = {
        "model.h": "model.h.j2",
        "model.c": "model.c.j2",
        "weights.h": "weights.h.j2",
        "weights.c": "weights.c.j2",
        "tte_model.h": "tte_model.h.j2",
        "model.cmake": "model.cmake.j2",
        "CMakeLists.txt": "CMakeLists.txt.j2",
    }
    contents = {target: env.get_template(template).render(context).encode() for target, template in files.items()}
    manifest = _manifest(model, checkout)
    contents[MANIFEST] = (json.dumps(manifest, indent=1) + "\n").encode()
    folder = Path(out_dir)
    _write_project(folder, contents)
    return GeneratedProject(folder, manifest)
