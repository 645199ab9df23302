"""IDM model vs the authors' state-dict layout (fixture from benchmarks/idm_authors.py)."""
import json
from pathlib import Path

import pytest
import torch

from methods.idm.checkpoint import is_ignored, load_authors_state_dict
from methods.idm.model import IDMNet, UNetConfig

FIXTURE = Path(__file__).parent / "fixtures" / "idm_face_state_dict_shapes.json"


def test_fixture_is_the_published_manifest():
    fx = json.loads(FIXTURE.read_text())
    assert len(fx["shapes"]) == 537
    assert fx["n_params"] == 116_590_885


def test_every_authors_key_is_ours_or_ignored_by_name():
    shapes = json.loads(FIXTURE.read_text())["shapes"]
    ours = {k: list(v.shape) for k, v in IDMNet().state_dict().items()}
    used = {k: s for k, s in shapes.items() if not is_ignored(k)}
    assert used == ours  # same keys, same shapes
    assert not any(is_ignored(k) for k in ours)


def test_synthetic_authors_checkpoint_loads_strictly():
    shapes = json.loads(FIXTURE.read_text())["shapes"]
    sd = {k: torch.randn(s) if s else torch.randn(()) for k, s in shapes.items()}
    m = IDMNet()
    load_authors_state_dict(m, sd)
    k = "denoise_fn.ups.3.imnet.0.weight"
    assert torch.equal(m.state_dict()[k], sd[k])
    sd["denoise_fn.bogus.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError):
        load_authors_state_dict(m, sd)


@pytest.mark.parametrize("size", [(32, 32), (28, 28), (64, 64), (24, 40)])
def test_output_size_any_scale_and_non_square(size):
    cfg = UNetConfig(inner_channel=8, channel_mults=(1, 2, 2), attn_res=(), res_blocks=1, norm_groups=4,
                     dropout=0.0, image_size=32)
    from methods.idm.model import EncoderConfig
    m = IDMNet(cfg, EncoderConfig(n_resblocks=1, n_feats=8)).eval()
    lr = torch.rand(2, 3, 8, 10 if size[0] != size[1] else 8)
    x_con = m.condition(lr, size)
    out = m.eps(torch.randn(2, 3, *size), x_con, torch.rand(2, 1), torch.rand(2))
    assert out.shape == (2, 3, *size)


def test_live_key_list_against_authors_code():
    ia = pytest.importorskip("benchmarks.idm_authors")
    if not ia.available():
        pytest.skip(".authors/ checkout absent")
    g = ia.build_face_model()
    theirs = {k: list(v.shape) for k, v in g.state_dict().items()}
    assert theirs == json.loads(FIXTURE.read_text())["shapes"]
