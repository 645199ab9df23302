"""InvSR adapter vs numbers from the AUTHORS' driver + pipeline (zsyOAOA/InvSR @ 609788c).

Pinned: ``tests/fixtures/invsr_authors_forward.pt`` written by
``benchmarks/invsr_vs_authors.py --quick --pin`` (their ``InvSamplerSR.sample_func`` and
``StableDiffusionInvEnhancePipeline`` on a tiny SD folder + a small noise predictor, fp32, injected noise):
a 2-image single-patch case (1 step) and a 12×20 whole image (small-image reflect padding to 16×20,
mod-16 padding to 16×32, three 16-px patches in batches of 2, Gaussian blending, crop, wavelet colour fix
with their padded reference; 3 steps).
Live: the same comparison with their code run now (skips without ``.authors/``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "invsr_authors_forward.pt"
AUTHORS = ROOT / ".authors" / "src" / "diffusers"

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _bench():
    spec = importlib.util.spec_from_file_location(
        "invsr_vs_authors", ROOT / "benchmarks" / "invsr_vs_authors.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    return _bench()


@pytest.fixture(scope="module")
def weights(bench, tmp_path_factory):
    return bench.make_weights(tmp_path_factory.mktemp("invsr_parity"), quick=True)


def _replay(bench, weights, case):
    """Our output with the fixture's noise tensors fed in the authors' consumption order."""
    queue = list(case["noise"])
    m = bench.InvSR.from_config(
        {
            "sd": weights["folder"],
            "weights": weights["predictor"],
            "predictor": weights["predictor_overrides"],
            "steps": case["steps"],
            "chopping": {"size": case["pch_size"], "batch": case["chop_bs"]},
            "color_fix": case["color_fix"] or "none",
            "dtype": "fp32",
        },
        "cpu",
        torch.float32,
    )

    def patch_noise(positions, s1, s2):
        n1, n2 = queue.pop(0), queue.pop(0)
        assert n1.shape == (len(positions), *s1) and n2.shape == (len(positions), *s2)
        return n1, n2

    out = m.upscale_injected(case["lr"], patch_noise)
    assert not queue
    return out


def test_pinned_authors_forward(bench, weights):
    pinned = torch.load(FIXTURE, weights_only=True)
    assert pinned["commit"] == "609788c"
    # the rebuilt random weights are the ones the authors' numbers were made with
    assert bench.weight_checksums(weights) == pytest.approx(pinned["checksums"], rel=1e-6)
    for case in pinned["cases"]:
        ours = _replay(bench, weights, case)
        want = case["authors_output"]
        assert ours.shape == want.shape
        diff = (ours - want).abs().max().item()
        assert diff <= 1e-5, f"{case['name']}: max|Δ| = {diff:.3g} vs the authors' pinned output"


def test_pinned_forward_detects_a_wrong_setting(bench, weights):
    """The comparison can fail: 2 steps instead of the pinned 1 moves the output well past the tolerance."""
    case = torch.load(FIXTURE, weights_only=True)["cases"][0]
    wrong = dict(case, steps=2)
    assert (_replay(bench, weights, wrong) - case["authors_output"]).abs().max() > 1e-3


@pytest.mark.skipif(not AUTHORS.is_dir(), reason="authors' InvSR checkout (.authors/) absent")
def test_live_against_authors_code(bench, weights):
    case = bench.default_cases(quick=True)[0]
    rows, _, _ = bench.compare([case], weights)
    assert rows[0]["max_abs_diff"] <= 1e-5, rows[0]
