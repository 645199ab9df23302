"""ECDP parameter names/shapes and checkpoint loading against the authors' model definitions.

``fixtures/ecdp_authors_state_dict_shapes.json`` was generated from THEIR code, not ours:
with Yuan-Yutao/ECDP @ 1696fa1 checked out (``lib/`` on sys.path, run with this venv's python),
``torch.manual_seed(0)``; for each of conf/ecdp-{df2k,imagenet,celeba}-train.yaml and
conf/rrdbnet-{df2k,imagenet,celeba}.yaml, build ``lib.model.make_model(options)`` (ECDP's
constructor loads ``pretrained-rrdbnet-<ds>.pt`` from the working directory, so a random
``RRDBNet(options, rrdb_channels=64)`` state dict was saved there first) and dump
``{key: list(t.shape) for key, t in model.state_dict().items()}``. Keys carry their
``ConditionalDensityModel`` wrapper prefix ``model.``, exactly as their trainer saves them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from methods.ecdp.checkpoint import (
    CheckpointError,
    load_ecdp_weights,
    load_regressor_weights,
    save_ecdp_checkpoint,
    strip_wrapper_prefixes,
)
from methods.ecdp.model import ECDPNet
from methods.ecdp.rrdb import RRDBEncoder, RRDBRegressor
from srbench.weights import MissingWeightsError

FIXTURE = Path(__file__).parent / "fixtures" / "ecdp_authors_state_dict_shapes.json"
ENCODERS = {"df2k": (23, (1, 8, 15, 22)), "imagenet": (16, (1, 5, 10, 15)), "celeba": (8, (1, 3, 5, 7))}
SR_FACTOR = {"df2k": 4, "imagenet": 4, "celeba": 8}
# parameter counts stated in the spec (/work/shared/design/methods/ecdp.md §1.3; DF2K = paper's 42.6M)
SPEC_TOTALS = {"df2k": 42_587_846, "imagenet": 37_551_878, "celeba": 31_796_486}
SPEC_REGRESSORS = {"df2k": 16_661_059, "imagenet": 11_625_091, "celeba": 5_906_627}
SPEC_UNET = 26_039_302


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP oversubscription on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def authors_shapes() -> dict:
    return json.loads(FIXTURE.read_text())


def _shapes(module: torch.nn.Module, prefix: str = "model.") -> dict[str, list[int]]:
    return {prefix + k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("dataset", ["df2k", "imagenet", "celeba"])
def test_ecdp_state_dict_matches_authors_key_for_key(dataset, authors_shapes):
    blocks, selection = ENCODERS[dataset]
    net = ECDPNet(blocks, selection)
    ours, theirs = _shapes(net), authors_shapes[f"ecdp-{dataset}"]
    assert sorted(ours) == sorted(theirs), set(ours) ^ set(theirs)
    assert ours == theirs
    assert sum(p.numel() for p in net.parameters()) == SPEC_TOTALS[dataset]
    assert sum(p.numel() for p in net.unet.parameters()) == SPEC_UNET


@pytest.mark.parametrize("dataset", ["df2k", "imagenet", "celeba"])
def test_regressor_state_dict_matches_authors_key_for_key(dataset, authors_shapes):
    blocks, _ = ENCODERS[dataset]
    reg = RRDBRegressor(blocks, SR_FACTOR[dataset])
    assert _shapes(reg) == authors_shapes[f"rrdbnet-{dataset}"]
    assert sum(p.numel() for p in reg.parameters()) == SPEC_REGRESSORS[dataset]


def test_schedule_buffers_are_in_the_state_dict_with_closed_form_values():
    sd = ECDPNet(2, (0, 1), unet_channels=(16, 32), unet_blocks=(1, 1)).state_dict()
    s = torch.arange(1, 301, dtype=torch.float64) / 300
    closed = torch.exp(-(0.1 * s + 0.5 * 19.9 * s * s))
    torch.testing.assert_close(sd["diffusion.alpha_bars"].double(), closed, rtol=1e-5, atol=0)
    torch.testing.assert_close(sd["diffusion.betas"], 1 - sd["diffusion.alphas"])


def _tiny_net(seed: int) -> ECDPNet:
    torch.manual_seed(seed)
    return ECDPNet(3, (0, 2), unet_channels=(16, 32), unet_blocks=(1, 1), time_channels=32)


def test_strip_prefixes_ddp_and_compile():
    t = torch.zeros(1)
    got = strip_wrapper_prefixes(
        {
            "module.model.lr_feats.conv_first.weight": t,
            "module._orig_mod.model.x": t,
            "model.diffusion._orig_mod.network.y": t,
        }
    )
    assert set(got) == {"model.lr_feats.conv_first.weight", "model.x", "model.diffusion.network.y"}


def test_authors_trainer_checkpoint_loads_ema_first(tmp_path):
    """A checkpoint laid out like theirs (``model``/``model_avg``, wrapper + DDP/compile prefixes)."""
    raw, ema = _tiny_net(0), _tiny_net(1)
    wrap = lambda sd, p: {p + "model." + k: v for k, v in sd.items()}
    path = tmp_path / "checkpoint.pt"
    torch.save(
        {
            "model": wrap(raw.state_dict(), "module."),
            "model_avg": wrap(ema.state_dict(), "_orig_mod."),
            "epoch": 3,
            "sched_model": {"milestones": [300, 400]},
        },
        path,
    )
    net = _tiny_net(2)
    info = load_ecdp_weights(net, path)
    assert info["weights"] == "model_avg" and len(info["sha256"]) == 64
    for k, v in ema.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    load_ecdp_weights(net, path, prefer_ema=False)
    assert torch.equal(
        net.state_dict()["lr_feats.conv_first.weight"], raw.state_dict()["lr_feats.conv_first.weight"]
    )


def test_save_load_round_trip(tmp_path):
    src, dst = _tiny_net(0), _tiny_net(5)
    save_ecdp_checkpoint(tmp_path / "c.pt", src.state_dict(), src.state_dict())
    load_ecdp_weights(dst, tmp_path / "c.pt")
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def test_extracted_pretrained_rrdbnet_initialises_encoder(tmp_path):
    """Their README's ``pretrained-rrdbnet-*.pt`` (bare RRDBNet dict) → ECDP's ``lr_feats``."""
    torch.manual_seed(0)
    reg = RRDBRegressor(3, 4)
    torch.save(reg.state_dict(), tmp_path / "pretrained-rrdbnet-df2k.pt")
    enc = RRDBEncoder(3, (0, 2))
    load_regressor_weights(enc, tmp_path / "pretrained-rrdbnet-df2k.pt", encoder_only=True)
    assert torch.equal(enc.blocks[2].block3.conv5.weight, reg.rrdb.blocks[2].block3.conv5.weight)


def test_mismatched_variant_is_one_line_error(tmp_path):
    save_ecdp_checkpoint(tmp_path / "c.pt", _tiny_net(0).state_dict())
    other = ECDPNet(4, (0, 3), unet_channels=(16, 32), unet_blocks=(1, 1), time_channels=32)
    with pytest.raises(CheckpointError) as err:
        load_ecdp_weights(other, tmp_path / "c.pt")
    msg = str(err.value)
    assert "\n" not in msg and "missing" in msg and "c.pt" in msg


def test_missing_checkpoint_is_one_line(tmp_path):
    with pytest.raises(MissingWeightsError) as err:
        load_ecdp_weights(_tiny_net(0), tmp_path / "nope.pt")
    assert "\n" not in str(err.value) and "make train METHOD=ecdp" in str(err.value)
