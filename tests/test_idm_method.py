from pathlib import Path

import pytest
import torch

from methods.idm import IDM
from methods.idm.method import scale_code

TINY = {"weights": "random", "sampler": "ddim", "unet": {"inner_channel": 8, "channel_mults": [1, 2], "attn_res": [],
        "res_blocks": 1, "dropout": 0.0, "norm_groups": 4, "image_size": 16}, "encoder": {"n_resblocks": 1, "n_feats": 8}}


def test_scale_code_fixed_rule():
    assert scale_code(8, 8) == 1.0 and scale_code(1, 8) == 0.0 and abs(scale_code(4.5, 8) - 0.5) < 1e-12


@pytest.mark.parametrize("scale,lr_hw", [(2, (6, 6)), (3.5, (6, 6)), (4, (6, 6)), (8, (4, 4)), (3.5, (4, 6))])
def test_upscale_shapes(scale, lr_hw):
    m = IDM.from_config({**TINY, "ddim_stride": 500}, torch.device("cpu"), torch.float32)
    assert m.nfe_per_image() == 3
    out = m.upscale(torch.rand(1, 3, *lr_hw), scale, seeds=[0])
    assert out.shape == (1, 3, round(lr_hw[0] * scale), round(lr_hw[1] * scale))
    assert 0 <= out.min() and out.max() <= 1


def test_missing_weights_is_one_line(tmp_path):
    from srbench.errors import UserError
    with pytest.raises(Exception) as e:
        IDM.from_config({**TINY, "weights": str(tmp_path / "face_gen.pth")}, torch.device("cpu"), torch.float32)
    msg = str(e.value)
    assert "face_gen.pth" in msg and "\n" not in msg
    assert isinstance(e.value, UserError) or "MissingWeights" in type(e.value).__name__


def test_default_config_needs_the_face_checkpoint(tmp_path, monkeypatch):
    """The shipped conf must not run IDM at random weights (it did: `srbench list` said
    'none needed' and `method=all` would have benchmarked an untrained model)."""
    from omegaconf import OmegaConf

    from srbench.weights import required_for

    cfg = OmegaConf.to_container(OmegaConf.load(Path(__file__).parents[1] / "conf/method/idm.yaml"))
    assert [w.filename for w in required_for(IDM, cfg)] == ["face_gen.pth"]
    assert required_for(IDM, {**cfg, "weights": "random"}) == []
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    with pytest.raises(Exception) as e:
        IDM.from_config({**TINY, "weights": None}, torch.device("cpu"), torch.float32)
    assert "face_gen.pth" in str(e.value) and "\n" not in str(e.value)
