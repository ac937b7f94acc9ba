"""Two generated models of different names in one program (issue 10): their projects' model.cmake
targets link into one executable, and each model, trained in turn with the other, gives the losses
and parameters it gives alone (its own arena, parameters and step counter)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tte_codegen import HostModel, generate
from tte_ir.layout import to_engine_layout
from tte_ir.reference_train import initial_state

from .nets import images, variant

STEPS = 4

# One training step of each model in turn; prints both losses as float32 bits and writes each
# model's exported parameters. argv: the two image files, then the two parameter files.
MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "{a}/model.h"
#include "{b}/model.h"

static int8_t *read_images(const char *path, size_t bytes) {{
    int8_t *data = malloc(bytes);
    FILE *f = fopen(path, "rb");
    if (data == NULL || f == NULL || fread(data, 1, bytes, f) != bytes) {{
        exit(1);
    }}
    fclose(f);
    return data;
}}

static void write_params(const char *path, void *blob, size_t bytes) {{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(blob, 1, bytes, f) != bytes) {{
        exit(1);
    }}
    fclose(f);
}}

static unsigned long bits(float v) {{
    unsigned int u;
    memcpy(&u, &v, sizeof u);
    return u;
}}

int main(int argc, char **argv) {{
    if (argc != 5) {{
        return 2;
    }}
    const int8_t *xa = read_images(argv[1], (size_t){A}_INPUT_BYTES * {steps});
    const int8_t *xb = read_images(argv[2], (size_t){B}_INPUT_BYTES * {steps});
    for (int t = 0; t < {steps}; ++t) {{
        const float la = {a_name}_train_step(xa + (size_t)t * {A}_INPUT_BYTES, t % {A}_CLASSES, NULL);
        const float lb = {b_name}_train_step(xb + (size_t)t * {B}_INPUT_BYTES, t % {B}_CLASSES, NULL);
        if ({a_name}_last_status() != {A}_STEP_OK || {b_name}_last_status() != {B}_STEP_OK) {{
            return 1;
        }}
        printf("%08lx %08lx\n", bits(la), bits(lb));
    }}
    static uint8_t pa[{A}_EXPORT_BYTES], pb[{B}_EXPORT_BYTES];
    write_params(argv[3], pa, {a_name}_export_params(pa, sizeof pa));
    write_params(argv[4], pb, {b_name}_export_params(pb, sizeof pb));
    return 0;
}}
"""

CMAKE = """cmake_minimum_required(VERSION 3.20)
project(two_models LANGUAGES C)
add_subdirectory({root}/engine ${{CMAKE_BINARY_DIR}}/engine)
include({a}/model.cmake)
include({b}/model.cmake)
add_executable(two_models main.c)
target_link_libraries(two_models PRIVATE {a_name} {b_name})
target_compile_options(two_models PRIVATE -Wall -Wextra -Werror)
set_target_properties(two_models PROPERTIES C_STANDARD 99 C_EXTENSIONS OFF)
"""


def _run(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


def _alone(project, training, xs) -> tuple[list[int], bytes]:
    """Loss bits and exported parameters of the model trained alone, through the host runner."""
    model = HostModel(project)
    model.import_params(initial_state(training))
    model.step = 0
    losses = [model.train_step(x, t % model.classes) for t, x in enumerate(xs)]
    return [int(v) for v in np.asarray(losses, dtype=np.float32).view(np.uint32)], model.export_blob()


@pytest.mark.slow
def test_two_models_link_into_one_program_and_both_train(project, training, host_library, tmp_path):
    """The residual net (project 'model', an fp32 head) and its int8-head variant ('beta'), whose
    arrays have the same tensor names: in one executable, both train as they do alone."""
    other = variant("int8-head")
    beta = generate(other, tmp_path / "beta", name="beta")
    a, b = project.manifest["name"], beta.manifest["name"]
    folders = {"a": project.path.as_posix(), "b": beta.path.as_posix(), "a_name": a, "b_name": b}
    source = tmp_path / "program"
    source.mkdir()
    (source / "main.c").write_text(MAIN.format(**folders, A=a.upper(), B=b.upper(), steps=STEPS))
    (source / "CMakeLists.txt").write_text(CMAKE.format(**folders, root=project.root.as_posix()))
    out = tmp_path / "build"
    _run(["cmake", "-S", str(source), "-B", str(out), "-DCMAKE_BUILD_TYPE=Release"])
    _run(["cmake", "--build", str(out), "-j", "2"])

    xa, xb = images(training, STEPS), images(other, STEPS, seed=5)
    for name, xs in (("a", xa), ("b", xb)):
        (tmp_path / f"{name}.bin").write_bytes(b"".join(to_engine_layout(x[None]).tobytes() for x in xs))
    args = [str(tmp_path / f) for f in ("a.bin", "b.bin", "a.params", "b.params")]
    printed = [line.split() for line in _run([str(out / "two_models"), *args]).splitlines()]
    together = {name: [int(row[k], 16) for row in printed] for k, name in enumerate("ab")}

    for name, proj, graph, xs in (("a", project, training, xa), ("b", beta, other, xb)):
        losses, blob = _alone(proj, graph, xs)
        assert together[name] == losses, name
        exported = (tmp_path / f"{name}.params").read_bytes()  # the export: a 24-byte header, then the payload
        assert exported[:4] == b"TTEM" and exported[24:] == blob, name
