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

from methods.ecdp.checkpoint import CheckpointError, load_ecdp_weights, load_regressor_weights
from methods.ecdp.method import ECDP
from methods.ecdp.model import ECDPNet
from methods.ecdp.rrdb import RRDBEncoder, RRDBRegressor
from srbench.errors import is_user_error
from srbench.training import CHECKPOINT_FORMAT
from srbench.weights import MissingWeightsError, sha256_file

FIXTURE = Path(__file__).parent / "fixtures" / "ecdp_authors_state_dict_shapes.json"
ENCODERS = {"df2k": (23, (1, 8, 15, 22)), "imagenet": (16, (1, 5, 10, 15)), "celeba": (8, (1, 3, 5, 7))}
SR_FACTOR = {"df2k": 4, "imagenet": 4, "celeba": 8}
# parameter counts stated in the spec (/work/shared/design/methods/ecdp.md §1.3; DF2K = paper's 42.6M)
SPEC_TOTALS = {"df2k": 42_587_846, "imagenet": 37_551_878, "celeba": 31_796_486}
SPEC_REGRESSORS = {"df2k": 16_661_059, "imagenet": 11_625_091, "celeba": 5_906_627}
SPEC_UNET = 26_039_302


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


#: the method config that builds ``_tiny_net``'s architecture
TINY_CFG = {
    "variant": "tiny",
    "encoder": {"num_blocks": 3, "block_selection": [0, 2]},
    "unet": {"channels": [16, 32], "num_blocks": [1, 1], "time_channels": 32},
    "channels_last": False,
}


def _save_authors_layout(path, model: dict, model_avg: dict | None = None, prefix: str = "") -> None:
    """A file laid out as the authors' trainer saves it: ``model``/``model_avg`` with their ``model.`` wrapper."""
    obj = {"model": {prefix + "model." + k: v for k, v in model.items()}, "epoch": 3}
    if model_avg is not None:
        obj["model_avg"] = {prefix + "model." + k: v for k, v in model_avg.items()}
    torch.save(obj, path)


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_authors_trainer_checkpoint_loads_ema_first(tmp_path):
    """A checkpoint laid out like theirs (``model``/``model_avg``, wrapper + DDP/compile prefixes)."""
    raw, ema = _tiny_net(0), _tiny_net(1)
    path = tmp_path / "checkpoint.pt"
    wrap = lambda sd, p: {p + "model." + k: v for k, v in sd.items()}
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
    assert info["weights"] == "model_avg" and info["sha256"] == sha256_file(path)
    assert _equal(net, ema)
    load_ecdp_weights(net, path, prefer_ema=False)
    assert _equal(net, raw)


def test_from_config_finds_the_checkpoint_where_weights_resolve_looks(tmp_path, monkeypatch):
    """weights=null → $SRBENCH_WEIGHTS/ecdp/ecdp-<variant>.pt; weights=<folder> → <folder>/ecdp-<variant>.pt."""
    src = _tiny_net(0)
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "weights"))
    default = tmp_path / "weights" / "ecdp" / "ecdp-tiny.pt"
    default.parent.mkdir(parents=True)
    _save_authors_layout(default, src.state_dict(), src.state_dict())
    method = ECDP.from_config({**TINY_CFG, "weights": None}, "cpu")
    assert _equal(method.net, src)
    d = method.describe()
    assert d["weights_path"] == str(default) and d["weights_sha256"] == sha256_file(default)
    assert d["weights"] == "model_avg"

    folder = tmp_path / "mine"
    folder.mkdir()
    other = _tiny_net(7)
    _save_authors_layout(folder / "ecdp-tiny.pt", other.state_dict())
    method = ECDP.from_config({**TINY_CFG, "weights": str(folder)}, "cpu")
    assert _equal(method.net, other)
    assert method.describe()["weights_sha256"] == sha256_file(folder / "ecdp-tiny.pt") != d["weights_sha256"]


def test_missing_checkpoint_is_a_one_line_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "weights"))
    for weights, hint in ((None, "make train METHOD=ecdp"), (str(tmp_path / "nope.pt"), "fix the path"),
                          (str(tmp_path), "fix the path")):
        with pytest.raises(MissingWeightsError) as err:
            ECDP.from_config({**TINY_CFG, "weights": weights}, "cpu")
        msg = str(err.value)
        assert is_user_error(err.value) and "\n" not in msg and "ecdp-tiny.pt" in msg and hint in msg, msg


def test_srbench_train_checkpoint_loads_with_its_ema(tmp_path):
    """A srbench-train file (RNG states and config besides tensors) as method.weights: EMA laid over."""
    import numpy as np

    live, ema = _tiny_net(0), _tiny_net(1)
    path = tmp_path / "step_00000010.pt"
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "step": 10,
            "modules": {"model": live.state_dict()},
            "ema": {"shadow": {"model." + k: v for k, v in ema.state_dict().items()}},
            "rng": [{"numpy": np.random.get_state()}],
            "config": {"method": {"name": "ecdp"}},
        },
        path,
    )
    method = ECDP.from_config({**TINY_CFG, "weights": str(path)}, "cpu")
    assert _equal(method.net, ema) and method.describe()["weights"] == "srbench-train:model (ema)"
    with pytest.raises(CheckpointError, match="wrong training stage") as err:
        load_regressor_weights(RRDBRegressor(3, 4), path, encoder_only=False)
    assert is_user_error(err.value) and "method.train.regressor_weights" in str(err.value)


def test_extracted_pretrained_rrdbnet_initialises_encoder(tmp_path):
    """Their README's ``pretrained-rrdbnet-*.pt`` (bare RRDBNet dict) → ECDP's ``lr_feats``."""
    torch.manual_seed(0)
    reg = RRDBRegressor(3, 4)
    torch.save(reg.state_dict(), tmp_path / "pretrained-rrdbnet-df2k.pt")
    enc = RRDBEncoder(3, (0, 2))
    load_regressor_weights(enc, tmp_path / "pretrained-rrdbnet-df2k.pt", encoder_only=True)
    assert torch.equal(enc.blocks[2].block3.conv5.weight, reg.rrdb.blocks[2].block3.conv5.weight)


def test_missing_regressor_weights_name_their_setting(tmp_path):
    for path in (tmp_path / "nope.pt", tmp_path):
        with pytest.raises(MissingWeightsError) as err:
            load_regressor_weights(RRDBEncoder(3, (0, 2)), path, encoder_only=True)
        msg = str(err.value)
        assert "method.train.regressor_weights" in msg and "method.weights" not in msg and "\n" not in msg


def test_mismatched_variant_is_one_line_user_error(tmp_path):
    _save_authors_layout(tmp_path / "c.pt", _tiny_net(0).state_dict())
    cfg = {**TINY_CFG, "weights": str(tmp_path / "c.pt"), "encoder": {"num_blocks": 4, "block_selection": [0, 3]}}
    with pytest.raises(CheckpointError) as err:
        ECDP.from_config(cfg, "cpu")
    msg = str(err.value)
    assert is_user_error(err.value) and "\n" not in msg and "missing" in msg and "c.pt" in msg and "variant" in msg


def test_file_without_weights_is_one_line_user_error(tmp_path):
    torch.save({"epoch": 3, "optim_model": {}}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="no weights") as err:
        ECDP.from_config({**TINY_CFG, "weights": str(tmp_path / "c.pt")}, "cpu")
    assert is_user_error(err.value)
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError) as err:
        ECDP.from_config({**TINY_CFG, "weights": str(tmp_path / "junk.pt")}, "cpu")
    assert is_user_error(err.value) and "method.weights" in str(err.value) and "\n" not in str(err.value)
