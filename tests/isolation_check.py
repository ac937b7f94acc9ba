"""Run inside a virtual environment holding exactly one tte package (see `nox -s isolation`).

Checks that the package's commands work and that nothing outside its declared dependency set was
installed: tte-ir must never pull torch (a firmware engineer compiling a graph has no torch).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Heavy dependencies each package may (True) or must not (False) bring in.
ALLOWED = {
    "tte-ir": {"torch": False, "jinja2": False, "tte_engine": False, "tte_algo": False},
    "tte-codegen": {"torch": False, "jinja2": True, "tte_algo": False},
    "tte-engine": {"torch": False, "jinja2": False, "tte_algo": False},
    "tte-algo": {"torch": True, "jinja2": True},  # jinja2 through torch and tte-codegen (the demo)
}
# The `tte` subcommands each installation must offer, and no others.
COMMANDS = {
    "tte-ir": {"import-pkl", "inspect", "compile", "plan", "import-tflite", "eval", "export-tflite"},
    "tte-codegen": {
        "import-pkl",
        "inspect",
        "compile",
        "plan",
        "import-tflite",
        "eval",
        "export-tflite",
        "generate",
        "run",
    },
    "tte-engine": None,  # a library: no command
    "tte-algo": {
        "import-pkl",
        "inspect",
        "compile",
        "plan",
        "import-tflite",
        "eval",
        "export-tflite",
        "generate",
        "run",
        "quantize",
        "train",
        "analyze",
        "search",
        "demo",
    },
}


def main(package: str) -> int:
    failures = []
    for module, allowed in ALLOWED[package].items():
        present = importlib.util.find_spec(module) is not None
        if present and not allowed:
            failures.append(f"{package} pulled in '{module}', which it must not depend on")
    expected = COMMANDS[package]
    if expected is None:
        importlib.import_module(package.replace("-", "_"))
    else:
        from tte_ir.cli import build_parser

        offered = set(build_parser()._subparsers._group_actions[0].choices)
        if offered != expected:
            failures.append(f"{package} offers commands {sorted(offered)}, expected {sorted(expected)}")
    shared = Path(os.environ.get("TTE_SHARED", "../shared"))
    model = shared / "models" / "mcunet-5fps.pkl"
    if package == "tte-ir" and model.exists():
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "m.tte"
            subprocess.run(["tte", "import-pkl", str(model), "-o", str(out)], check=True)
            shown = subprocess.run(["tte", "inspect", str(out)], check=True, capture_output=True, text=True).stdout
            if "42 convs, 1 linear layer" not in shown:
                failures.append("tte inspect did not report 42 convs and 1 linear layer for mcunet-5fps")
    for failure in failures:
        print(f"isolation: {failure}", file=sys.stderr)
    print(f"isolation {package}: {'FAILED' if failures else 'ok'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
