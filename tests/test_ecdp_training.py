"""ECDP's three training stages on real photographs (tiny models, a few Adam steps each).

Real HR crops from ../shared/data (RealSR/DRealSR HR), LR made with srbench's MATLAB-exact
bicubic as ECDP's data pipeline does. Each stage's loss must fall clearly on its own batch.
The full-length runs that beat bicubic on held-out images are reported in the lead report.
"""

from __future__ import annotations

import pytest
import torch
from helpers import ecdp_tiny_config

from methods.ecdp.method import ECDP

TINY = ecdp_tiny_config("euler", 4, channels_last=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def batch(shared_data):
    from srbench.data.io import read_image
    from srbench.data.resize import imresize

    files = sorted((shared_data / "RealSR_subset" / "HR").glob("*.png"))[:4]
    hr = torch.stack([read_image(f).tensor[:, 200:232, 200:232] for f in files])
    lr = imresize(hr, 0.25, quantize=True)
    return {"hr": hr, "lr": lr, "scale": 4.0, "names": [f.stem for f in files]}


def _train(stage: str, batch, steps: int, lr: float, **train) -> list[float]:
    torch.manual_seed(0)
    cfg = {**TINY, "train": {"stage": stage, "allow_random_init": True, **train}}
    trainer = ECDP.from_config(cfg, "cpu").trainer({"method": cfg})
    opt = torch.optim.Adam(trainer.parameter_groups(lr))
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        out = trainer.training_step(batch)
        out["loss"].backward()
        torch.nn.utils.clip_grad_value_([p for g in opt.param_groups for p in g["params"]], 10.0)
        opt.step()
        losses.append(out["loss"].item())
    return losses


def test_regressor_loss_falls(batch):
    losses = _train("regressor", batch, 40, 2e-3)
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5]), losses


def test_diffusion_loss_falls(batch):
    losses = _train("diffusion", batch, 40, 2e-3)
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10]), losses


def test_finetune_perceptual_loss_falls(batch):
    torch.manual_seed(0)
    losses = []
    cfg = {**TINY, "train": {"stage": "finetune", "percep_backbone": "random", "allow_random_init": True}}
    trainer = ECDP.from_config(cfg, "cpu").trainer({"method": cfg})
    opt = torch.optim.Adam(trainer.parameter_groups(1e-3))
    for _ in range(8):
        torch.manual_seed(1)  # the same z ~ N(0, I) every step, so the losses compare like with like
        opt.zero_grad(set_to_none=True)
        out = trainer.training_step(batch)
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.9 * losses[0], losses
