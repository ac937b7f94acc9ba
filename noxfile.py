"""Task runner. `nox -s tests` is the test command CI runs; the other sessions build, lint and benchmark.

Every session installs with the pins in constraints.txt (torch 2.13.0, a CPU wheel on local disk).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))

# Each package with the extras its tests need, in dependency order.
PACKAGES = {
    "tte-ir": "./packages/tte-ir[plot,tflite]",
    "tte-codegen": "./packages/tte-codegen",
    "tte-algo": "./packages/tte-algo",
    "tte-engine": "./engine",
}

TFLITE_INTERPRETER = "ai-edge-litert==2.3.0"

# In-tree dependencies of each package: pip must take them from the tree, never from an index.
LOCAL_DEPENDENCIES = {"tte-codegen": ("tte-ir",), "tte-algo": ("tte-ir", "tte-codegen")}

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def install_packages(session: nox.Session, *names: str) -> None:
    session.install(*CONSTRAINTS, "pytest", "hypothesis", "pyelftools", *(PACKAGES[n] for n in names))


@nox.session
def tests(session: nox.Session) -> None:
    """All packages' tests, including the engine's host and QEMU tests."""
    # Warnings are errors in our CI builds (a user's pip install and generated projects default to OFF):
    # the engine wheel (TTE_ENGINE_WERROR, read by engine/pyproject.toml) and every project the tests build
    # through tte_codegen.build (TTE_WERROR).
    session.env.update({"TTE_ENGINE_WERROR": "ON", "TTE_WERROR": "1"})
    install_packages(session, *PACKAGES)
    # TFLite's own interpreter: the tests that compare tte with it (tests/ir/test_tflite_*.py) skip without it
    session.install(*CONSTRAINTS, TFLITE_INTERPRETER)
    session.run("pytest", *session.posargs)


# What `nox -s fuzz` runs: (test file, share of the cases). The .tte and .tflite readers report every case
# they ran; the scheme and data-file properties run their share each (hypothesis statistics in the log).
FUZZ_SHARES = (
    ("tests/ir/test_format_fuzz.py", 0.4),
    ("tests/ir/test_tflite_fuzz.py", 0.2),
    ("tests/ir/test_scheme_fuzz.py", 0.15),  # two properties: 0.3 of the cases
    ("tests/codegen/test_data_fuzz.py", 0.1),
)


@nox.session
def fuzz(session: nox.Session) -> None:
    """The input paths fuzzed with 100,000 mutated cases in all (posargs: another total): .tte files
    (tests/ir/test_format_fuzz.py), .tflite files (test_tflite_fuzz.py), schemes (test_scheme_fuzz.py) and
    tte run data files (tests/codegen/test_data_fuzz.py). Prints the cases run and how they ended; any uncaught exception or
    hang fails it."""
    install_packages(session, "tte-ir", "tte-codegen", "tte-engine")
    total = int(session.posargs[0]) if session.posargs else 100_000
    report = Path(session.create_tmp()) / "fuzz.json"
    report.unlink(missing_ok=True)
    for test, share in FUZZ_SHARES:
        env = {"TTE_FUZZ_EXAMPLES": str(int(total * share)), "TTE_FUZZ_REPORT": str(report), "TTE_FUZZ_TIMEOUT": "10"}
        session.run("pytest", test, "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics", env=env)
    result = json.loads(report.read_text())
    session.log(f"fuzz: .tte reader {result['cases']} cases, 0 uncaught exceptions, 0 hangs (over 10 s); outcomes:")
    for outcome, count in sorted(result["outcomes"].items()):
        session.log(f"  {count:>7}  {outcome}")
    for warning, count in sorted(result["warnings"].items()):
        session.log(f"  {count:>7}  warning (not a failure): {warning}")
    tflite = result["tflite"]
    session.log(f"fuzz: .tflite reader {tflite['cases']} cases, 0 uncaught exceptions, 0 hangs (over 10 s); outcomes:")
    for outcome, count in sorted(tflite["outcomes"].items(), key=lambda item: -item[1]):
        session.log(f"  {count:>7}  {outcome}")


@nox.session
def lint(session: nox.Session) -> None:
    """pre-commit: ruff, ruff-format, clang-format and file hygiene over the whole tree."""
    session.install(*CONSTRAINTS, "pre-commit")
    session.run("pre-commit", "run", "--all-files", "--show-diff-on-failure")


@nox.session(venv_backend="venv")
@nox.parametrize("package", list(PACKAGES))
def isolation(session: nox.Session, package: str) -> None:
    """Each package installs alone with only its own dependencies (tte-ir never pulls torch)."""
    local = [PACKAGES[name].split("[")[0] for name in (*LOCAL_DEPENDENCIES.get(package, ()), package)]
    session.install(*CONSTRAINTS, *local)
    session.run("python", str(ROOT / "tests" / "isolation_check.py"), package, env={"TTE_SHARED": str(shared_dir())})


def shared_dir() -> Path:
    return Path(os.environ.get("TTE_SHARED", ROOT.parent / "shared"))


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the built-in default (`tte demo`): pretrain a small model, quantize, choose a scheme under
    a budget, compile, generate C, train on the device engine, and the Cortex-M7 figures under QEMU."""
    install_packages(session, "tte-ir", "tte-codegen", "tte-algo")
    out = ROOT / "out" / "demo"
    session.run("tte", "demo", "--out", str(out), "--json", str(out / "demo.json"), *session.posargs,
                env={"OMP_NUM_THREADS": "2", "TTE_ROOT": str(ROOT)})  # fmt: skip


@nox.session
def device(session: nox.Session) -> None:
    """MCUNet-5fps with the seed's "49kb" scheme as Cortex-M7 firmware: the memory table of the linked image
    (an500 run under QEMU, stm32f746g-disco linked) and QEMU instructions per training step and per MAC, for
    the smallest-peak schedule and compiled within DEVICE_BUDGET (row tiles grown: a faster step that still
    fits 128 KB of firmware RAM)."""
    install_packages(session, "tte-ir", "tte-codegen")
    model = shared_dir() / "models" / "mcunet-5fps.pkl"
    if not model.exists():
        session.error(f"{model} not found (the seed models live in ../shared)")
    scheme = f"{shared_dir() / 'schemes' / 'seed-schemes.json'}:mcunet-5fps/49kb"
    for name, budget in (("device", ()), ("device-budget", ("--budget", DEVICE_BUDGET))):
        out = ROOT / "out" / name
        session.run("python", "-m", "tte_codegen.bench", "--model", str(model), "--scheme", scheme, "--out", str(out),
                    "--json", str(out / "device.json"), *budget, *session.posargs, env={"TTE_ROOT": str(ROOT)})  # fmt: skip


# The planned total that keeps the firmware within 128 KB of RAM: the image adds about 4.6 KB to the plan
# (its own .data/.bss and the measured stack; `nox -s device` prints both).
DEVICE_BUDGET = "123KB"


@nox.session
def accuracy(session: nox.Session) -> None:
    """QAS accuracy table (the paper's Table 1 on a digits transfer task): fp32, int8 without QAS, int8 + QAS
    with each rounding mode; best lr of a small grid, 3 seeds. 2 CPU cores, under 15 minutes."""
    # tte-algo's pyproject now also names tte-codegen (for `tte demo`): install it from the tree, never from an index
    session.install(*CONSTRAINTS, "./packages/tte-ir", "./packages/tte-codegen", "./packages/tte-algo")
    out = ROOT / "out" / "accuracy"
    session.run("python", "-m", "tte_algo.bench", "--out", str(out), *session.posargs, env={"OMP_NUM_THREADS": "2"})


@nox.session
def zoo(session: nox.Session) -> None:
    """The users' model zoo (issue 12), one table per model: parameters, MACs, and for a last-k and a searched
    scheme (same memory budget) the planned memory of the training step, its firmware RAM and QEMU instructions
    per step on qemu-mps2-an500 (skipped without the ARM toolchain), and held-out accuracy before and after a
    short simulated transfer on digits."""
    session.install(*CONSTRAINTS, "./packages/tte-ir", "./packages/tte-codegen", "./packages/tte-algo")
    out = ROOT / "out" / "zoo"
    session.run("python", "-m", "tte_algo.zoo_bench", "--out", str(out), *session.posargs,
                env={"OMP_NUM_THREADS": "2", "TTE_ROOT": str(ROOT)})  # fmt: skip


@nox.session
def tflite(session: nox.Session) -> None:
    """The int8 TensorFlow Lite models of ../shared/models/tflite (issue 13), one table per model: ops,
    parameters, import time, parity with TFLite's interpreter (requant fixed and float, against its reference
    and optimized kernels' goldens) and held-out accuracy before and after a short simulated transfer."""
    session.install(*CONSTRAINTS, "./packages/tte-ir[tflite]", "./packages/tte-codegen", "./packages/tte-algo")
    models = Path(os.environ.get("TTE_SHARED", ROOT.parent / "shared")) / "models" / "tflite"
    session.run("python", "-m", "tte_algo.tflite_bench", "--dir", str(models), *session.posargs,
                env={"OMP_NUM_THREADS": "2"})  # fmt: skip


# ---- engine and boards (issue 3) ----------------------------------------------------------------------------------

FIRMWARE_TOOL = str(ROOT / "boards" / "tools" / "firmware.py")
BOARD_MODEL = "mcunet-5fps"
BOARD_SCHEME = "mcunet-5fps/49kb"  # the seed's scheme of the generated training image (seed-schemes.json)


def install_engine_tools(session: nox.Session) -> None:
    """tte-ir, tte-engine (golden-case data), tte-codegen (model firmware) and pyelftools (ELF sizes)."""
    session.install(*CONSTRAINTS, "./packages/tte-ir", "./engine", "./packages/tte-codegen", "pyelftools")


@nox.session
def cross(session: nox.Session) -> None:
    """Build every board (qemu-mps2-an500, qemu-mps2-an386, qemu-mps2-an385, stm32f746g-disco): the golden-case
    image and the generated training image of MCUNet-5fps 49kb (when ../shared is present); text/data/bss per
    image."""
    install_engine_tools(session)
    model = shared_dir() / "models" / f"{BOARD_MODEL}.pkl"
    schemes = shared_dir() / "schemes" / "seed-schemes.json"
    generated = ["--model", str(model), "--scheme", f"{schemes}:{BOARD_SCHEME}"]
    if not (model.exists() and schemes.exists()):
        session.warn(f"{model} or {schemes} not found: building the golden-case program only")
        generated = []
    session.run("python", FIRMWARE_TOOL, "cross", str(ROOT / "build" / "cross"), *generated)


@nox.session
def sanitize(session: nox.Session) -> None:
    """The engine's kernel (forward and training) and model tests on a host build with ASan and UBSan."""
    session.install(*CONSTRAINTS, "pytest", "hypothesis", "./packages/tte-ir")
    session.install(*CONSTRAINTS, "--force-reinstall", "--no-deps", "./engine", env={"TTE_ENGINE_SANITIZE": "ON"})
    # Python itself is not instrumented: the runtimes must come first, and libstdc++ with them so that
    # ASan can intercept the C++ exceptions the binding raises as ValueError.
    runtimes = [
        session.run("gcc", f"-print-file-name={lib}", silent=True, external=True).strip()
        for lib in ("libasan.so", "libstdc++.so")
    ]
    session.run(
        "pytest", "tests/engine/test_kernels.py", "tests/engine/test_train_kernels.py", "tests/engine/test_models.py",
        *session.posargs,
        env={"LD_PRELOAD": " ".join(runtimes), "ASAN_OPTIONS": "detect_leaks=0",
             "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"},
    )  # fmt: skip


@nox.session
def bench_forward(session: nox.Session) -> None:
    """QEMU -icount instruction count of the mcunet-5fps inference on Cortex-M7 as generated firmware (the fp32
    head trains, no row tiling), per kernel and per MAC."""
    install_engine_tools(session)
    model = shared_dir() / "models" / f"{BOARD_MODEL}.pkl"
    if not model.exists():
        session.error(f"{model} not found (the seed models live in ../shared)")
    session.run("python", FIRMWARE_TOOL, "bench", str(ROOT / "build" / "bench"), "--model", str(model))


@nox.session
def bench_kernels(session: nox.Session) -> None:
    """QEMU -icount instructions per MAC of the reference and the optimized int8 forward kernels and of the fp32
    backward kernels, Cortex-M7 and M4, on the mcunet-5fps layer shapes (pointwise, depthwise 3x3/5x5/7x7, the
    stem; backward beside TinyEngine's figures) and on ResNet-8's (dense 3x3 convs, forward and backward), beside
    CMSIS-NN built from ../shared/anchors/cmsis-nn with the same toolchain file (left out, with the reason,
    where it is absent)."""
    install_engine_tools(session)
    model = shared_dir() / "models" / f"{BOARD_MODEL}.pkl"
    if not model.exists():
        session.skip(f"{model} not found (the seed models live in ../shared)")
    tool = str(ROOT / "boards" / "tools" / "kernel_bench.py")
    cmsis_nn = shared_dir() / "anchors" / "cmsis-nn"
    for name, shapes in ((BOARD_MODEL, model), ("resnet8", "resnet8")):
        session.run("python", tool, "bench", str(ROOT / "build" / "bench_kernels" / name), "--model", str(shapes),
                    "--cmsis-nn", str(cmsis_nn))  # fmt: skip


@nox.session
def bench_host(session: nox.Session) -> None:
    """Host milliseconds per training step of the generated C against PyTorch eager on one thread (the float
    network with the same trainable subset, and the int8 simulation), the demo model and mcunet-5fps 49kb,
    interleaved in one run (medians, ratios); callgrind instructions per C step where valgrind is installed."""
    install_packages(session, "tte-ir", "tte-codegen", "tte-algo")
    out = ROOT / "out" / "bench_host"
    session.run("python", "-m", "tte_algo.host_bench", "--shared", str(shared_dir()), "--out", str(out),
                "--json", str(out / "bench_host.json"), *session.posargs,
                env={"OMP_NUM_THREADS": "1", "TTE_ROOT": str(ROOT)})  # fmt: skip


@nox.session
def memory(session: nox.Session) -> None:
    """Memory plan of every seed scheme, full update and bias-only for the three seed models (one table)."""
    session.install(*CONSTRAINTS, "rich", "./packages/tte-ir")
    session.run("python", "-m", "tte_ir.memory_bench", str(shared_dir()), *session.posargs)


# ---- sparse-update search (issue 7) -------------------------------------------------------------------------------


def install_search(session: nox.Session, extra: str) -> None:
    """tte-ir, tte-codegen (named by tte-algo's pyproject) and tte-algo with ``extra``, all from the tree."""
    session.install(*CONSTRAINTS, "./packages/tte-ir", "./packages/tte-codegen", f"./packages/tte-algo[{extra}]")


@nox.session
def search(session: nox.Session) -> None:
    """Sparse-update search benchmark: contribution analysis and evolutionary search on the MCUNet-5fps seed
    model adapted to digits (64x64); searched schemes vs last-k, bias-only, head-only and full update at three
    budgets after full simulated training, one table. 2 CPU cores, under 30 minutes; out/search/cache resumes."""
    install_search(session, "plot")
    out = ROOT / "out" / "search"
    session.run(
        "python", "-m", "tte_algo.search.bench", str(shared_dir()), "--out", str(out), *session.posargs,
        env={"OMP_NUM_THREADS": "2"},
    )  # fmt: skip


@nox.session
def ray(session: nox.Session) -> None:
    """The Ray executor path: a contribution analysis through Ray started on this machine (`--address local`)
    gives the same table as the local process pool."""
    install_search(session, "ray")
    session.install(*CONSTRAINTS, "pytest")
    session.run("pytest", "tests/search/ray_check.py", *session.posargs, env={"TTE_REQUIRE_QEMU": "1"})
