"""Our InvSR noise predictor vs the authors' class: keys, shapes, count, strict loading, forward parity.

Fixture: ``tests/fixtures/invsr_predictor_keys.json`` from ``tests/fixtures/make_invsr_predictor_keys.py``
(their NoisePredictor from zsyOAOA/InvSR@609788c ``configs/sample-sd-turbo.yaml``, random init).
The live test runs their code in a subprocess and skips when ``.authors/`` is absent.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from methods.invsr.checkpoint import load_predictor
from methods.invsr.predictor import NoisePredictor
from srbench.errors import CheckpointError
from srbench.weights import MissingWeightsError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).with_name("fixtures")
FIXTURE = json.loads((FIXTURES / "invsr_predictor_keys.json").read_text())
MAKER = FIXTURES / "make_invsr_predictor_keys.py"


def _maker():
    spec = importlib.util.spec_from_file_location("make_invsr_predictor_keys", MAKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # only its pure helpers are used here; no authors' import at module level
    return mod


@pytest.fixture(scope="module")
def model() -> NoisePredictor:
    return NoisePredictor().eval()


def test_keys_shapes_and_count_match_authors(model):
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == FIXTURE["keys"]  # same names, same order, same shapes
    assert sum(p.numel() for p in model.parameters()) == FIXTURE["num_parameters"] == 33_837_576


def test_strict_load_strips_prefixes_and_rejects_bad_files(model, tmp_path):
    g = torch.Generator().manual_seed(1)
    sd = {k: torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}
    wrapped = {"state_dict": {f"module._orig_mod.{k}": v for k, v in sd.items()}}
    path = tmp_path / "noise_predictor_sd_turbo_v5.pth"
    torch.save(wrapped, path)
    fresh = load_predictor(NoisePredictor(), path)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, sd[k]), k

    with pytest.raises(CheckpointError, match="1 predictor keys missing"):
        load_predictor(NoisePredictor(), {k: v for k, v in sd.items() if k != "encoder.conv_out.bias"})
    with pytest.raises(CheckpointError, match="1 unused"):
        load_predictor(NoisePredictor(), {**sd, "encoder.extra": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="encoder.conv_out.weight has shape"):
        load_predictor(NoisePredictor(), {**sd, "encoder.conv_out.weight": torch.zeros(8, 512, 1, 1)})
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError) as err:
        load_predictor(NoisePredictor(), tmp_path / "junk.pth")
    assert "\n" not in str(err.value)
    with pytest.raises(MissingWeightsError) as err:
        load_predictor(NoisePredictor(), tmp_path / "absent.pth")
    assert (
        "\n" not in str(err.value)
        and "absent.pth" in str(err.value)
        and "huggingface.co/OAOA/InvSR" in str(err.value)
    )


def test_forward_matches_pinned_authors_numbers(model):
    mk = _maker()
    pin = FIXTURE["pinned"]
    load_predictor(model, mk.pinned_weights(dict(FIXTURE["keys"])))
    with torch.no_grad():
        h = model.encoder(2 * mk.pinned_input() - 1, pin["t"])
    want = torch.tensor(pin["moments"]).reshape(pin["moments_shape"])
    assert (h - want).abs().max().item() <= 1e-5


def test_forward_matches_authors_live(model, tmp_path):
    if not (ROOT / ".authors" / "src" / "diffusers").is_dir():
        pytest.skip("authors' InvSR checkout (.authors/) absent")
    out = tmp_path / "authors.pt"
    run = subprocess.run(
        [sys.executable, str(MAKER), "--live", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    ref = torch.load(out, weights_only=True)
    load_predictor(model, ref["state_dict"])
    with torch.no_grad():
        h = model.encoder(2 * ref["x"] - 1, ref["t"])
        dist = model.distribution(ref["x"], ref["t"])
        mean = model(ref["x"], ref["t"], mode=True)
    assert (h - ref["moments"]).abs().max().item() <= 1e-5
    assert (dist.std - ref["std"]).abs().max().item() <= 1e-5
    assert (mean - ref["mean"]).abs().max().item() <= 1e-5


def test_sample_uses_per_image_generators_and_mode_is_the_mean():
    torch.manual_seed(0)
    small = NoisePredictor(_tiny()).eval()
    y = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        dist = small.distribution(y, 199)
        a = small(y, 199, generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
        b = small(y[1:], 199, generator=[torch.Generator().manual_seed(2)])  # image 1 alone, same draw
        mean = small(y, 199, mode=True)
    torch.testing.assert_close(a[1:], b, rtol=0, atol=1e-5)  # batched vs single: float order only
    want0 = dist.mean[:1] + dist.std[:1] * torch.randn(
        dist.mean[:1].shape, generator=torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(a[:1], want0, rtol=0, atol=1e-6)
    assert torch.equal(mean, dist.mean)
    assert dist.logvar.min() >= -30 and dist.logvar.max() <= 20


def _tiny():
    from methods.invsr.predictor import NoisePredictorConfig

    return NoisePredictorConfig(
        block_out_channels=(32, 64), layers_per_block=(1, 1), temb_channels=64, attention_head_dim=32
    )
