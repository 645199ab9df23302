"""Mistakes a user can make with ECDP end in one line naming the setting, never a stack trace.

The runners print exceptions for which ``srbench.errors.is_user_error`` holds as one
line and exit 2; the first tests go through the bench's own entry point (``execute``), the others
check the exceptions in-process.
"""

from __future__ import annotations

import pytest
import torch
from helpers import bench_config, ecdp_tiny_config

from methods.ecdp.method import ECDP
from methods.ecdp.model import ECDPNet
from methods.ecdp.rrdb import RRDBRegressor
from srbench.errors import is_user_error
from srbench.runners.bench import execute

TINY = ecdp_tiny_config("euler", 2, channels_last=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _bench_error(overrides: list[str], tmp_path, capsys) -> str:
    base = ["dataset.images=[coins]", "metrics.lpips_nets=[]", "num_workers=0", f"results_dir={tmp_path / 'r'}"]
    with bench_config(base + overrides) as cfg, pytest.raises(SystemExit) as err:
        execute(cfg)
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    print(lines[0])
    return lines[0]


def test_bench_unknown_solver_is_one_line(tmp_path, capsys):
    msg = _bench_error(["method=ecdp_tiny", "method.sampler.method=dopri6"], tmp_path, capsys)
    assert "method.sampler.method='dopri6'" in msg and "dopri5" in msg


def test_bench_unknown_dtype_is_one_line(tmp_path, capsys):
    msg = _bench_error(["method=ecdp_tiny", "method.dtype=fp8"], tmp_path, capsys)
    assert "fp8" in msg


def test_bench_wrong_variant_checkpoint_is_one_line(tmp_path, capsys, monkeypatch):
    # a checkpoint of another architecture (3-block encoder) where ecdp_tiny (4 blocks) is configured
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    other = ECDPNet(3, (0, 2), unet_channels=(16, 32, 64), unet_blocks=(1, 1, 1), time_channels=32,
                    encoder_features=32, encoder_growth=16)
    path = tmp_path / "w" / "ecdp" / "ecdp-tiny.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model": {"model." + k: v for k, v in other.state_dict().items()}}, path)
    msg = _bench_error(["method=ecdp_tiny", "method.weights=null"], tmp_path, capsys)
    assert str(path) in msg and "does not fit" in msg and "variant" in msg


def test_bench_missing_checkpoint_says_how_to_make_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "w"))
    msg = _bench_error(["method=ecdp_tiny", "method.weights=null"], tmp_path, capsys)
    assert "ecdp-tiny.pt" in msg and "make train METHOD=ecdp" in msg


# ----------------------------------------------------------------------------- in-process
def _user_error(fn, *needles: str) -> str:
    with pytest.raises(Exception) as err:
        fn()
    msg = str(err.value)
    assert is_user_error(err.value), type(err.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg
    return msg


@pytest.mark.parametrize(
    "change,needles",
    [
        ({"precision": "bf16"}, ["method.precision", "method.dtype"]),
        ({"dtype": "fp8"}, ["method.dtype", "fp8"]),
        ({"encoder": {"num_blocks": 2, "block_selection": [0, 5]}}, ["method.encoder.block_selection"]),
        ({"unet": {"channels": [16, 32], "num_blocks": [1]}}, ["method.unet.channels", "method.unet.num_blocks"]),
        ({"sampler": {"batch_mode": "together"}}, ["method.sampler.batch_mode"]),
        ({"sampler": {"method": "rk4"}}, ["method.sampler.steps"]),
        # typed config (srbench.config): unknown keys and ranges name the full key
        ({"sampler": {"stepz": 10}}, ["unknown key method.sampler.stepz", "steps"]),
        ({"temperature": -1.0}, ["method.temperature=-1.0", "≥ 0"]),
        ({"encoder": {"num_blocks": "many"}}, ["method.encoder.num_blocks", "'many'"]),
        ({"scale": 3}, ["method.scale=3", "one of 4, 8"]),
    ],
)
def test_bad_method_settings_are_user_errors(change, needles):
    _user_error(lambda: ECDP.from_config({**TINY, **change}, "cpu"), *needles)


def test_unsupported_dtype_argument_is_a_user_error():
    _user_error(lambda: ECDP.from_config(TINY, "cpu", torch.float64), "method.dtype")


def test_unknown_training_stage_is_a_user_error():
    method = ECDP.from_config(TINY, "cpu")
    _user_error(lambda: method.trainer({"method": {**TINY, "train": {"stage": "gan"}}}),
                "method.train.stage", "'gan'")


def test_finetune_without_a_trained_start_is_a_user_error():
    method = ECDP.from_config(TINY, "cpu")
    cfg = {"method": {**TINY, "train": {"stage": "finetune", "percep_backbone": "random"}}, "init": {}}
    _user_error(lambda: method.trainer(cfg), "init.checkpoint")


def test_stage_b_needs_the_regressor_unless_random_init_is_asked_for(tmp_path):
    method = ECDP.from_config(TINY, "cpu")
    msg = _user_error(lambda: method.trainer({"method": {**TINY, "train": {"stage": "diffusion"}}}),
                      "method.train.regressor_weights", "allow_random_init")
    assert "method.weights" not in msg
    method.trainer({"method": {**TINY, "train": {"stage": "diffusion", "allow_random_init": True}}})
    # a missing regressor file names its setting, not method.weights
    missing = {"stage": "diffusion", "regressor_weights": str(tmp_path / "nope.pt")}
    msg = _user_error(lambda: method.trainer({"method": {**TINY, "train": missing}}),
                      "method.train.regressor_weights", "nope.pt")
    assert "method.weights" not in msg


def test_stage_b_starts_the_encoder_from_the_regressor(tmp_path):
    torch.manual_seed(3)
    reg = RRDBRegressor(2, 4, num_features=16, growth=8)
    torch.save(reg.state_dict(), tmp_path / "pretrained-rrdbnet-tiny.pt")
    method = ECDP.from_config(TINY, "cpu")
    train = {"stage": "diffusion", "regressor_weights": str(tmp_path / "pretrained-rrdbnet-tiny.pt")}
    method.trainer({"method": {**TINY, "train": train}})
    for k, v in method.net.lr_feats.state_dict().items():
        assert torch.equal(v, reg.rrdb.state_dict()[k]), k

