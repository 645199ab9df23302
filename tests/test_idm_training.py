"""IDM training: the loss of methods/idm/training.py and the srbench-train path (tiny model, CPU).

Images are generated (smooth random fields saved as PNG), so nothing here needs ../shared.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from methods.idm import IDM
from methods.idm.ops import EqualConv2d, EqualLinear
from methods.idm.training import IDMTrainer, orthogonal_init_, resize_gt, target_size
from srbench.data.resize import imresize
from srbench.errors import UserError
from srbench.runners.train import compose_config, train
from srbench.training import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"weights": "random", "sampler": "ddim", "ddim_stride": 500, "max_scale": 4,
        "unet": {"inner_channel": 8, "channel_mults": [1, 2], "attn_res": [], "res_blocks": 1, "dropout": 0.0,
                 "norm_groups": 4, "image_size": 16},
        "encoder": {"n_resblocks": 1, "n_feats": 8}}


def smooth_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """n smooth colour images in [0, 1] (bicubic-upsampled noise), a stand-in for photographs."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=g)
    return imresize(coarse, size=(size, size)).clamp(0, 1)


def test_target_size_follows_the_authors_rule():
    assert target_size((16, 16), (64, 64), 0.0) == (16, 16)
    assert target_size((16, 16), (64, 64), 0.5) == (40, 40)
    assert target_size((16, 16), (64, 64), 0.999) == (64, 64)
    assert target_size((16, 12), (64, 48), 0.25) == (28, 21)


def test_gt_resize_modes():
    hr = smooth_images(2, 32)
    assert torch.equal(resize_gt(hr, (32, 32), "matlab"), hr)
    assert torch.equal(resize_gt(hr, (20, 20), "matlab"), imresize(hr, size=(20, 20)))
    tv = resize_gt(hr, (20, 20), "torchvision")
    assert tv.shape == (2, 3, 20, 20) and not torch.allclose(tv, imresize(hr, size=(20, 20)), atol=1e-4)


def test_orthogonal_init_zeroes_biases():
    m = IDM.from_config(TINY, torch.device("cpu"), torch.float32)
    orthogonal_init_(m.net)
    layers = [x for x in m.net.modules() if isinstance(x, (torch.nn.Conv2d, torch.nn.Linear, EqualConv2d, EqualLinear))]
    assert layers
    for x in layers:
        if x.bias is not None:
            assert torch.count_nonzero(x.bias) == 0
        w = x.weight.detach().flatten(1)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        assert torch.allclose(gram, torch.eye(gram.shape[0]), atol=1e-4)


def _batch(scale: int = 4, size: int = 32) -> dict:
    hr = smooth_images(4, size, seed=1)
    return {"hr": hr, "lr": imresize(hr, 1 / scale, quantize=True), "scale": float(scale)}


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    m = IDM.from_config(TINY, torch.device("cpu"), torch.float32)
    trainer = m.trainer({"method": TINY})
    opt = torch.optim.Adam(trainer.parameter_groups(2e-3))
    losses = []
    for _ in range(25):
        # the same t, γ, ε and p every step: the loss must fall when the model fits them
        torch.manual_seed(1)
        __import__("random").seed(1)
        opt.zero_grad(set_to_none=True)
        out = trainer.training_step(_batch())
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert 0.5 < losses[0] < 1.2, losses  # L1 on ε starts near E|ε| ≈ 0.8 (spec §6.7)
    assert losses[-1] < 0.7 * losses[0], losses


def test_scale_mismatch_is_refused():
    m = IDM.from_config(TINY, torch.device("cpu"), torch.float32)
    with pytest.raises(UserError, match="method.max_scale=4"):
        m.trainer({"method": TINY}).training_step(_batch(scale=2))


def test_bad_gt_resize_is_one_line():
    m = IDM.from_config(TINY, torch.device("cpu"), torch.float32)
    with pytest.raises(UserError, match="gt_resize"):
        IDMTrainer(m, gt_resize="pil")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    d = tmp_path / "hr"
    d.mkdir()
    for i, img in enumerate(smooth_images(3, 48, seed=2)):
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(d / f"im{i}.png")
    return d


def _overrides(photos: Path, results: Path, steps: int) -> list[str]:
    kw = {"method": "idm_tiny", "dataset.hr_dir": str(photos), "dataset.patch_size": 32, "dataset.scale": 4,
          "batch_size": 2, "num_workers": 0, "log_every": 1, "validate_every": 0, "logger": "csv",
          "results_dir": str(results), "run_name": "r", "checkpoint_every": 2, "max_steps": steps,
          "optimizer.lr": 1e-3, "method.unet.inner_channel": 8, "method.unet.norm_groups": 4,
          "method.unet.channel_mults": "[1,2]", "method.encoder.n_resblocks": 1, "method.encoder.n_feats": 8}
    return [f"{k}={v}" for k, v in kw.items()]


def test_srbench_train_logs_resumes_and_the_bench_loads_the_run(photos, tmp_path):
    first = train(compose_config(_overrides(photos, tmp_path, 2)))
    assert first.step == 2 and first.resumed_from is None
    second = train(compose_config(_overrides(photos, tmp_path, 4)))
    assert second.step == 4 and second.resumed_from.endswith("step_00000002.pt")
    run = tmp_path / "train" / "idm" / "r"
    with open(run / "log.csv", newline="") as f:
        log = list(csv.DictReader(f))
    assert [int(r["step"]) for r in log] == [1, 2, 3, 4]
    assert all(0.1 < float(r["loss"]) < 2 for r in log) and all(1 <= float(r["out_scale"]) <= 4 for r in log)
    # the trained run loads into the benchmark adapter strictly, with its weights
    cfg = compose_config(_overrides(photos, tmp_path, 4))["method"]
    m = IDM.from_config({**dict(cfg), "weights": str(run)}, torch.device("cpu"), torch.float32)
    ckpt = load_checkpoint(run)
    assert m.provenance["format"] == "srbench-train" and m.provenance["step"] == 4
    for k, v in m.net.state_dict().items():
        assert torch.equal(v, ckpt["modules"]["model"][k]), k
    out = m.upscale(torch.rand(1, 3, 8, 8), 3.5, seeds=[0])
    assert out.shape == (1, 3, 28, 28)
