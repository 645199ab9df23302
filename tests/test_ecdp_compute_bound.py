"""benchmarks/ecdp_compute_bound.py: the FLOP count quoted in methods/ecdp/README.md, and that it runs."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ecdp_compute_bound.py"


@pytest.fixture(scope="module")
def bound():
    spec = importlib.util.spec_from_file_location("ecdp_compute_bound", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_published_unet_costs_37_7_gflop_per_step_at_lr_24(bound, one_torch_thread):
    # README: 37.7 GFLOP/NFE at LR 24² → 96² (the basis of its CPU speed bound)
    assert bound.gflop_of(bound.published_unet_call(24)) == pytest.approx(37.7, abs=0.05)


def test_unet_flops_grow_with_the_pixel_count(bound, one_torch_thread):
    small, large = (bound.gflop_of(bound.published_unet_call(s)) for s in (8, 16))
    assert large / small == pytest.approx(4.0, rel=1e-3)


def test_script_prints_its_bound(bound, one_torch_thread, capsys):
    bound.main(4, 1)
    line = capsys.readouterr().out
    assert "GFLOP/NFE" in line and "all FLOPs at sgemm speed" in line
