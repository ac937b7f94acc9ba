"""The generated C: what it holds (planner offsets, tiles, flash/SRAM split) and what it refuses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tte_codegen import CodegenError, find_root
from tte_codegen.generate import engine_kernels
from tte_codegen.lowering import lower
from tte_ir import save
from tte_ir.autodiff import training_info
from tte_ir.cli import main
from tte_ir.memory import memory_report


def test_arena_offsets_are_the_planners(project, training):
    plan = memory_report(training, input_in_arena=True).plan
    source = (project.path / "model.c").read_text()
    assert f"#define MODEL_ARENA_BYTES {plan.arena_bytes}" in (project.path / "model.h").read_text()
    macros = re.findall(r"^#define T_\w+ \(\(\w+ \*\)\(tte_arena\.bytes \+ (\d+)\)\) /\* (\S+): ", source, re.M)
    assert macros, "no arena tensors in model.c"
    buffer_of = {t: b.name for b in plan.buffers for t in b.tensors}
    for offset, tensor in macros:
        assert int(offset) == plan.offsets[buffer_of[tensor]], tensor
    assert "input" in {tensor for _, tensor in macros}  # the image has a slot in the arena


def test_tiled_groups_become_loops(project, training):
    axes = {(n.attrs.get("tile") or {}).get("axis") for n in training.nodes}
    assert {"rows", "channels"} <= axes, "the test network must exercise both kinds of tiles"
    source = (project.path / "model.c").read_text()
    assert "static const tte_row_band g0_rows[" in source
    assert "const tte_channel_band band = {c, c + 16 <= 40 ? 16 : 40 - c};" in source


def test_frozen_weights_in_flash_trained_in_sram(project, training):
    weights = (project.path / "weights.c").read_text()
    for name in training_info(training)["state"]:
        ident = "model_p_" + re.sub(r"[^0-9A-Za-z_]", "_", name)
        assert re.search(rf"^(int8_t|int32_t|float) {ident}\[", weights, re.M), name
    assert re.search(r"^const int8_t model_c_stem_w\[", weights, re.M)


def test_generated_code_builds_with_werror(host_library, project):
    flags = (project.path / "model.cmake").read_text()
    assert "-Werror" in flags
    assert host_library.exists()


def test_an_op_without_kernel_is_refused_by_name(training):
    declared = engine_kernels(find_root()) - {"tte_add_bwd_f32"}
    with pytest.raises(CodegenError, match=r"node 'b1\.add\.bwd' \(add_bwd\).*tte_add_bwd_f32"):
        lower(training, declared=declared)


def test_cli_refuses_an_op_without_kernel(training, tmp_path):
    root = tmp_path / "checkout"
    (root / "boards").mkdir(parents=True)
    (root / "engine" / "include" / "tte").mkdir(parents=True)
    (root / "engine" / "CMakeLists.txt").write_text("# an engine without kernels\n")
    (root / "engine" / "include" / "tte" / "tte.h").write_text("int tte_conv2d_fwd_s8(void);\n")
    graph = save(training, tmp_path / "train.tte")
    command = [sys.executable, "-m", "tte_ir.cli", "generate", str(graph), "-o", str(tmp_path / "out")]
    result = subprocess.run([*command, "--root", str(root)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "error:" in result.stderr and "the engine has no kernel" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_forward_graph_is_not_a_training_graph(forward, tmp_path):
    from tte_codegen import generate
    from tte_ir import TteError

    with pytest.raises(TteError, match="not a (compiled )?training graph"):
        generate(forward, tmp_path / "out")


def _exported(library: Path) -> dict[str, str]:
    """The external symbols a static library defines, with nm's type letter (T code, D/R/B data)."""
    if shutil.which("nm") is None:
        pytest.skip("'nm' (binutils) is not installed")
    listing = subprocess.run(["nm", "-g", "--defined-only", str(library)], capture_output=True, text=True, check=True)
    return {f[2]: f[1] for f in (line.split() for line in listing.stdout.splitlines()) if len(f) == 3}


def test_model_h_names_only_what_model_c_defines(project, host_library):
    """Every function model.h declares or mentions is defined in model.c, every other name it uses
    is a symbol or a type of its own, every macro one it defines; nothing else leaves the objects."""
    name, upper = project.manifest["name"], project.manifest["name"].upper()
    header = (project.path / "model.h").read_text()
    symbols = _exported(host_library.parent / f"lib{name}.a")
    assert symbols and all(s.startswith(f"{name}_") for s in symbols), sorted(symbols)
    functions = set(re.findall(rf"\b({name}_\w+)\s*\(", header))
    assert {f"{name}_train_step", f"{name}_last_status", f"{name}_param"} <= functions
    assert {f: symbols.get(f) for f in functions} == dict.fromkeys(functions, "T")
    types = set(re.findall(rf"^typedef [^;]*\b({name}_\w+);$|^}} ({name}_\w+);$", header, re.M))
    types = {t for pair in types for t in pair if t}
    assert {f"{name}_lr", f"{name}_logit", f"{name}_step_status"} <= types
    for ident in set(re.findall(rf"\b{name}_\w+", header)) - functions:
        assert ident in symbols or ident in types, ident
    macros = set(re.findall(r"^#define (\w+)", header, re.M)) | set(re.findall(rf"^ +({upper}_\w+) =", header, re.M))
    assert set(re.findall(rf"\b{upper}_\w+", header)) <= macros


def test_tte_model_h_aliases_the_whole_api(project):
    """tte_model.h (train_main.c's fixed names) maps every name of model.h, and only those."""
    name, upper = project.manifest["name"], project.manifest["name"].upper()
    header = (project.path / "model.h").read_text()
    aliases = dict(re.findall(r"^#define (\w+) (\w+)$", (project.path / "tte_model.h").read_text(), re.M))
    public = set(re.findall(rf"\b(?:{name}|{upper})_\w+", header)) - {f"{upper}_H"}
    assert set(aliases.values()) == public
    for alias, target in aliases.items():
        assert re.sub("^(tte_model|TTE_MODEL)_", "", alias) == re.sub(f"^({name}|{upper})_", "", target), alias


@pytest.mark.parametrize("name", ["my-net", "2net", "", "tte", "TTE_net"])
def test_cli_refuses_a_name_that_cannot_prefix_c_symbols(training, tmp_path, capsys, name):
    graph = save(training, tmp_path / "train.tte")
    assert main(["generate", str(graph), "-o", str(tmp_path / "out"), "--name", name]) == 2
    err = capsys.readouterr().err
    assert "model name" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["int8-head", "requant-fixed"])
def test_the_generated_cmake_gives_the_engine_the_graphs_requantization_modes(name, tmp_path):
    """The engine compiles the epilogue copies of the modes the graph's calls use (CModel.requant), no other:
    float alone for a float graph; fixed (and the int8 head's single rounding) for a fixed one."""
    from tte_codegen import generate
    from tte_codegen.generate import engine_cmake_dir

    from .nets import variant

    if shutil.which("cmake") is None or shutil.which("cc") is None:
        pytest.skip("cmake and a C compiler are needed to configure the project")
    training = variant(name)
    modes = lower(training).requant
    assert modes == {"int8-head": ("float",), "requant-fixed": ("fixed", "fixed_single")}[name]
    project = generate(training, tmp_path / "model")
    assert f'set(TTE_ENGINE_REQUANT "{";".join(modes)}" CACHE' in (project.path / "CMakeLists.txt").read_text()
    build = tmp_path / "build"
    configure = ["cmake", "-S", str(project.path), "-B", str(build), "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"]
    configure.append(f"-Dtte_engine_DIR={engine_cmake_dir(project.root)}")
    subprocess.run(configure, check=True, capture_output=True, text=True)
    commands = json.loads((build / "compile_commands.json").read_text())
    engine = [c["command"] for c in commands if "/engine/src/kernels/" in c["file"]]
    float_on, fixed_on = int("float" in modes), int("fixed" in modes)
    assert engine and all(
        f"-DTTE_ENGINE_REQUANT_FLOAT={float_on}" in c and f"-DTTE_ENGINE_REQUANT_FIXED={fixed_on}" in c for c in engine
    )


def test_the_engine_refuses_an_unknown_requantization_mode(project, tmp_path):
    from tte_codegen.generate import engine_cmake_dir

    if shutil.which("cmake") is None or shutil.which("cc") is None:
        pytest.skip("cmake and a C compiler are needed to configure the project")
    configure = ["cmake", "-S", str(project.path), "-B", str(tmp_path / "build"), "-DTTE_ENGINE_REQUANT=float;fix"]
    configure.append(f"-Dtte_engine_DIR={engine_cmake_dir(project.root)}")
    result = subprocess.run(configure, capture_output=True, text=True)
    assert result.returncode != 0 and "'fix' is not a requantization mode" in result.stderr
