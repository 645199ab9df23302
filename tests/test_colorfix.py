"""srbench.nn.colorfix against the authors' colour-fix functions (InvSR @ 609788c, OSEDiff).

Three layers: (1) a fixture of the authors' outputs (``fixtures/colorfix_authors.npz``, made by
``fixtures/make_colorfix_authors.py`` from their code, never from ours); (2) their code itself on
fresh random tensors when a checkout sits in ``.authors/`` (skipped cleanly otherwise);
(3) properties that hold whatever the reference (x = high + low, ycbcr round trip, range maps).
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from srbench.nn import colorfix as cf

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "colorfix_authors.npz"
INVSR = ROOT / ".authors"
OSEDIFF_FILE = ROOT / ".authors" / "osediff" / "my_utils" / "wavelet_color_fix.py"


@pytest.mark.parametrize("mode", ["wavelet", "adain", "ycbcr"])
def test_pinned_to_authors_fixture(mode):
    data = np.load(FIXTURE)
    sr, ref = torch.from_numpy(data["sr"]), torch.from_numpy(data["ref"])
    out = cf.color_fix(sr, ref, mode)
    assert torch.allclose(out, torch.from_numpy(data[mode]), atol=1e-6, rtol=0), mode


def _invsr_module():
    if not (INVSR / "utils" / "util_color_fix.py").exists():
        pytest.skip("authors' InvSR checkout not in .authors/ (see tests/fixtures/make_colorfix_authors.py)")
    pytest.importorskip("cv2")
    sys.path.insert(0, str(INVSR))
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "utils" or k.startswith("utils.")}
    try:
        from utils import util_color_fix  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(INVSR))
        for k in [k for k in sys.modules if k == "utils" or k.startswith("utils.")]:
            sys.modules.pop(k)
        sys.modules.update(saved)
    return util_color_fix


def _osediff_module():
    if not OSEDIFF_FILE.exists():
        pytest.skip("authors' OSEDiff checkout not in .authors/osediff/")
    spec = importlib.util.spec_from_file_location("_osediff_colorfix", OSEDIFF_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pair(shape, seed, lo=0.0, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    sr = torch.rand(*shape, generator=g) * (hi - lo) + lo
    ref = torch.rand(*shape, generator=g) * (hi - lo) * 0.7 + lo + 0.1 * (hi - lo)
    return sr, ref


@pytest.mark.parametrize("shape", [(1, 3, 17, 40), (3, 3, 64, 48)])
def test_equals_invsr_code(shape):
    ucf = _invsr_module()
    sr, ref = _pair(shape, 3)
    torch.testing.assert_close(cf.wavelet(sr, ref), ucf.wavelet_reconstruction(sr, ref), atol=1e-6, rtol=0)
    torch.testing.assert_close(cf.adain(sr, ref), ucf.adaptive_instance_normalization(sr, ref), atol=1e-6, rtol=0)
    torch.testing.assert_close(cf.ycbcr(sr, ref), ucf.ycbcr_color_replace(sr, ref), atol=1e-6, rtol=0)
    # [-1, 1] inputs: wavelet/adain are affine-equivariant, so their code applies unchanged
    sr2, ref2 = sr * 2 - 1, ref * 2 - 1
    torch.testing.assert_close(cf.color_fix(sr2, ref2, "wavelet", value_range=(-1, 1)), ucf.wavelet_reconstruction(sr2, ref2), atol=1e-6, rtol=0)


def test_equals_osediff_code():
    od = _osediff_module()
    sr, ref = _pair((2, 3, 33, 29), 5, -1.0, 1.0)
    torch.testing.assert_close(cf.wavelet(sr, ref), od.wavelet_reconstruction(sr, ref), atol=1e-6, rtol=0)
    torch.testing.assert_close(cf.adain(sr, ref), od.adaptive_instance_normalization(sr, ref), atol=1e-6, rtol=0)


def test_wavelet_bands_sum_to_input_and_low_band_is_smooth():
    x, _ = _pair((1, 3, 40, 40), 7)
    high, low = cf.wavelet_decompose(x)
    torch.testing.assert_close(high + low, x, atol=1e-6, rtol=0)
    assert low.diff(dim=-1).abs().mean() < 0.2 * x.diff(dim=-1).abs().mean()
    # a constant reference gives sr's detail on that constant
    out = cf.wavelet(x, torch.full_like(x, 0.5))
    torch.testing.assert_close(out - high, torch.full_like(x, 0.5), atol=1e-6, rtol=0)


def test_ycbcr_round_trip_and_range_mapping():
    x, ref = _pair((2, 3, 16, 16), 9, 0.1, 0.9)
    torch.testing.assert_close(cf.ycbcr_to_rgb(cf.rgb_to_ycbcr(x)), x, atol=2e-5, rtol=0)
    # Y of the output is Y of sr (ref near sr, so the mix stays in the RGB gamut and nothing clamps)
    ref = (x + 0.05 * (ref - 0.5)).clamp(0, 1)
    out = cf.ycbcr(x, ref)
    torch.testing.assert_close(cf.rgb_to_ycbcr(out)[:, :1], cf.rgb_to_ycbcr(x)[:, :1], atol=5e-4, rtol=0)
    in_pm1 = cf.color_fix(x * 2 - 1, ref * 2 - 1, "ycbcr", value_range=(-1, 1))
    torch.testing.assert_close(in_pm1, out * 2 - 1, atol=1e-6, rtol=0)


def test_adain_matches_reference_statistics_and_dispatch():
    sr, ref = _pair((2, 3, 20, 30), 11)
    out = cf.color_fix(sr, ref, "adain")
    torch.testing.assert_close(out.mean(dim=(2, 3)), ref.mean(dim=(2, 3)), atol=1e-5, rtol=0)
    assert cf.color_fix(sr, ref, "none") is sr
    half = cf.color_fix(sr.half(), ref.half(), "wavelet")
    assert half.dtype == torch.float16
    with pytest.raises(ValueError, match="unknown colour fix"):
        cf.color_fix(sr, ref, "lab")
    with pytest.raises(ValueError, match="one shape"):
        cf.wavelet(sr, ref[:, :, :10])
