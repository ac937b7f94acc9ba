from conftest import ROOT

from tte_ir.gen_header import render_header


def test_committed_c_header_is_current():
    committed = (ROOT / "engine" / "include" / "tte" / "tte_ops.h").read_text()
    assert committed == render_header(), "regenerate: python -m tte_ir.gen_header engine/include/tte/tte_ops.h"
