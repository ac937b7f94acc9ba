"""Task runner. `nox -s tests` is the test command CI runs; the other sessions build, lint and benchmark.

Every session installs with the pins in constraints.txt (torch 2.13.0, a CPU wheel on local disk).
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))

# Each package with the extras its tests need, in dependency order.
PACKAGES = {
    "tte-ir": "./packages/tte-ir[plot]",
}

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def install_packages(session: nox.Session, *names: str) -> None:
    session.install(*CONSTRAINTS, "pytest", "hypothesis", *(PACKAGES[n] for n in names))


@nox.session
def tests(session: nox.Session) -> None:
    """All packages' tests, including the engine's host and QEMU tests."""
    install_packages(session, *PACKAGES)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """pre-commit: ruff, ruff-format, clang-format and file hygiene over the whole tree."""
    session.install(*CONSTRAINTS, "pre-commit")
    session.run("pre-commit", "run", "--all-files", "--show-diff-on-failure")


@nox.session(venv_backend="venv")
@nox.parametrize("package", list(PACKAGES))
def isolation(session: nox.Session, package: str) -> None:
    """Each package installs alone with only its own dependencies (tte-ir never pulls torch)."""
    session.install(*CONSTRAINTS, PACKAGES[package].split("[")[0])
    session.run("python", str(ROOT / "tests" / "isolation_check.py"), package, env={"TTE_SHARED": str(shared_dir())})


def shared_dir() -> Path:
    return Path(os.environ.get("TTE_SHARED", ROOT.parent / "shared"))


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the built-in default: import the MCUNet-5fps seed model and show its layers."""
    install_packages(session, "tte-ir")
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    model = shared_dir() / "models" / "mcunet-5fps.pkl"
    session.run("tte", "import-pkl", str(model), "-o", str(out / "mcunet-5fps.tte"), "--classes", "10")
    session.run("tte", "inspect", str(out / "mcunet-5fps.tte"))
