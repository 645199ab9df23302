"""InvSR adapter on a tiny SD folder + a small predictor: shapes, seeds, mode, guard, weights, registry."""

from __future__ import annotations

import logging

import pytest
import torch
from omegaconf import OmegaConf

from methods.invsr.checkpoint import PREDICTOR_FILE
from methods.invsr.method import InvSR
from methods.invsr.predictor import NoisePredictor
from methods.invsr.sampler import PUBLISHED_TIMESTEPS
from srbench.method import UnsupportedInput, get_method
from srbench.nn.sd import save_tiny_sd
from srbench.weights import MissingWeightsError, resolve_all
from tests.invsr_tiny import SMALL_PREDICTOR, small_predictor_file

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("invsr")
    sd = save_tiny_sd(root / "sd", scheduler="EulerDiscreteScheduler")
    return sd, small_predictor_file(root / PREDICTOR_FILE)


def _method(weights, **kw):
    sd, pth = weights
    cfg = {
        "sd": str(sd),
        "weights": str(pth),
        "predictor": SMALL_PREDICTOR,
        "chopping": {"size": 16, "batch": 8},
    }
    return InvSR.from_config({**cfg, **kw}, "cpu", torch.float32)


@pytest.mark.parametrize("hw", [(20, 27), (9, 14)])
def test_output_is_four_times_and_in_range(weights, hw):
    m = _method(weights, steps=2)
    lr = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0))
    out = m.upscale(lr, 4, seeds=[0])
    assert out.shape == (1, 3, 4 * hw[0], 4 * hw[1]) and 0 <= out.min() and out.max() <= 1
    assert m.nfe_per_image() == 2.0 and m.describe()["nfe"] == 2
    with pytest.raises(UnsupportedInput):
        m.upscale(lr, 2, seeds=[0])


def test_per_image_seeds_batch_and_chopping_independent(weights):
    m = _method(weights)
    lr = torch.rand(3, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    both = m.upscale(lr, 4, seeds=[5, 6, 7])
    alone = m.upscale(lr[1:2], 4, seeds=[6])
    torch.testing.assert_close(both[1:2], alone, atol=1e-5, rtol=0)
    assert torch.equal(m.upscale(lr, 4, seeds=[5, 6, 7]), both)  # deterministic
    one_patch_per_call = _method(weights, chopping={"size": 16, "batch": 1}).upscale(lr[1:2], 4, seeds=[6])
    torch.testing.assert_close(one_patch_per_call, alone, atol=1e-5, rtol=0)
    other = m.upscale(lr[1:2], 4, seeds=[99])
    assert (other - alone).abs().max() > 1e-4  # the seed matters (two posterior draws)
    mm = _method(weights, mode=True)
    assert torch.equal(mm.upscale(lr[:1], 4, seeds=[1]), mm.upscale(lr[:1], 4, seeds=[2]))  # means: seed-free


def test_steps_timesteps_and_colour_fix_options(weights):
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    base = _method(weights, mode=True, steps=3)
    assert base.describe()["timesteps_model"] == [t - 1 for t in PUBLISHED_TIMESTEPS[3]]
    custom = _method(weights, mode=True, steps=1, timesteps=[100, 200, 50])  # the list wins over the table
    assert custom.describe()["timesteps_published"] == [200, 100, 50]
    a = base.upscale(lr, 4, seeds=[0])
    assert torch.equal(a, custom.upscale(lr, 4, seeds=[0]))
    none = _method(weights, mode=True, steps=3, color_fix="none").upscale(lr, 4, seeds=[0])
    assert (none - a).abs().max() > 1e-3
    # 16×16 = one patch, no padding: the authors' and the aligned colour reference coincide
    assert torch.equal(
        a, _method(weights, mode=True, steps=3, color_fix_reference="aligned").upscale(lr, 4, seeds=[0])
    )


def test_precision_guard_reruns_non_finite_image(weights, caplog):
    m = _method(weights, dtype="bf16", mode=True)
    lr = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))

    def poison(_mod, _inp, out):  # a bf16 "overflow" in image 0 only
        if out.dtype == torch.bfloat16 and out.shape[0] == 2:
            out = out.clone()
            out[0] = float("nan")
        return out

    m.pipe.vae.decoder.register_forward_hook(poison)
    with caplog.at_level(logging.WARNING, logger="srbench.precision"):
        out = m.upscale(lr, 4, seeds=[11, 12])
    assert torch.isfinite(out).all()
    notes = m.per_image_notes()
    assert [n["precision"] for n in notes] == ["fp32", "bf16"] and "retried" in notes[0]
    assert sum("seed 11" in r.getMessage() for r in caplog.records) == 1


def test_shared_tiler_option_runs(weights):
    lr = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(4))
    m = _method(weights, mode=True, tiling="shared", tile={"size": 64, "overlap": 16})
    out = m.upscale(lr, 4, seeds=[0])
    authors = _method(weights, mode=True).upscale(lr, 4, seeds=[0])
    assert out.shape == authors.shape == (1, 3, 96, 160) and torch.isfinite(out).all()
    assert "shared SD tiler" in m.describe()["tiling"]


def test_missing_weights_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError) as err:
        InvSR.from_config({}, "cpu", torch.float32)
    msg = str(err.value)
    assert "\n" not in msg and "sd-turbo" in msg and PREDICTOR_FILE in msg and str(tmp_path / "w") in msg
    assert [w.filename for w in InvSR.required_weights({})] == ["sd-turbo", PREDICTOR_FILE]
    assert InvSR.required_weights({"weights": "random"}) == []
    # the bench runner's pre-check (resolve_all) names both files in one line too (it stopped at the first)
    with pytest.raises(MissingWeightsError) as err:
        resolve_all(InvSR, {})
    msg = str(err.value)
    assert "\n" not in msg and "sd-turbo" in msg and PREDICTOR_FILE in msg


def test_random_weights_and_conf_file():
    cfg = OmegaConf.to_container(OmegaConf.load("conf/method/invsr.yaml"))
    assert (
        cfg["steps"] == 1 and cfg["color_fix"] == "wavelet" and cfg["chopping"] == {"size": 128, "batch": 8}
    )
    cfg.update(weights="random", predictor=SMALL_PREDICTOR, chopping={"size": 16, "batch": 4})
    m = InvSR.from_config(cfg, "cpu", torch.float32)
    assert isinstance(m.pipe.predictor, NoisePredictor)
    out = m.upscale(torch.rand(1, 3, 16, 16), 4, seeds=[0])
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_registered():
    assert get_method("invsr") is InvSR


def test_unknown_dtype_is_one_line():
    from srbench.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown dtype 'fp8'"):
        InvSR.from_config({"weights": "random", "dtype": "fp8"}, "cpu", torch.float32)
