"""IDM training losses for ``srbench-train`` (spec §2–§3; the runner owns the loop).

One training step, as the authors' ``model/model.py::feed_data`` + ``diffusion.py::p_losses``:

1. p ~ U[0, 1) once per batch (python RNG, which the runner seeds and restores on resume);
   target size ``round(h_lr + (h_hr − h_lr)·p)`` per axis (theirs: the width, then a square
   ``Resize(int)`` — the same for the square patches they train on);
2. GT = the HR batch resized to that size. ``gt_resize=matlab`` (default): srbench's MATLAB
   bicubic (antialiased, float, the operator the benchmark's LR comes from);
   ``gt_resize=torchvision``: the authors' tensor ``Resize(BICUBIC)`` with ``antialias=False``
   (what torchvision 0.12, pinned by their README, did — spec pitfall 6);
3. one t ~ U{1..2000} per batch, per-image γ ~ U[γ_t, γ_{t−1}]; x_t = γ·x0 + √(1−γ²)·ε;
4. ε̂ = UNet(cat[x_con, x_t], x_con, p, γ) with x_con = EDSR(LR) at the target size;
   loss = mean |ε − ε̂| (L1 on ε).

The scale code fed to the network is p itself (theirs), so evaluation uses
p = (r − 1)/(r_max − 1) with r_max = HR/LR of the training pairs = ``method.max_scale``;
a mismatch is refused. Published optimizer: Adam lr 1e-4, no schedule, no EMA, no clipping
(``conf/experiment/idm_train_*.yaml``). Init: orthogonal weights and zero biases for every
conv/linear layer (their ``init_weights(netG, init_type='orthogonal')``).
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from srbench.data.resize import imresize
from srbench.errors import UserError
from srbench.training import Trainer

from .diffusion import Schedule, eps_l1_loss
from .ops import EqualConv2d, EqualLinear

GT_RESIZE = ("matlab", "torchvision")


def orthogonal_init_(net: nn.Module) -> nn.Module:
    """Orthogonal weights (gain 1) and zero biases for every conv and linear layer, as the authors'
    ``weights_init_orthogonal`` (it also zeroes the EqualLinear biases meant to start at 1)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, EqualConv2d, EqualLinear)):
            nn.init.orthogonal_(m.weight.data, gain=1)
            if m.bias is not None:
                m.bias.data.zero_()
    return net


def target_size(lr_hw: tuple[int, int], hr_hw: tuple[int, int], p: float) -> tuple[int, int]:
    """``round(n_lr + (n_hr − n_lr)·p)`` per axis (authors' ``feed_data``; Python round)."""
    return tuple(round(a + (b - a) * p) for a, b in zip(lr_hw, hr_hw))  # type: ignore[return-value]


def resize_gt(hr: torch.Tensor, size: tuple[int, int], how: str) -> torch.Tensor:
    if tuple(hr.shape[-2:]) == tuple(size):
        return hr
    if how == "matlab":
        return imresize(hr, size=size)
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    return TF.resize(hr, list(size), interpolation=InterpolationMode.BICUBIC, antialias=False)


class IDMTrainer(Trainer):
    def __init__(self, method: Any, gt_resize: str = "matlab", orthogonal_init: bool = True) -> None:
        if gt_resize not in GT_RESIZE:
            raise UserError(f"idm: method.train.gt_resize must be one of {', '.join(GT_RESIZE)} (got {gt_resize!r})")
        self.method, self.net, self.gt_resize = method, method.net, gt_resize
        self.schedule = Schedule()
        if orthogonal_init:
            orthogonal_init_(self.net)
        self.net.train()

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.net}

    def training_step(self, batch: Mapping[str, Any], phase: str = "main") -> dict[str, torch.Tensor]:
        lr, hr = batch["lr"], batch["hr"]
        r_max = hr.shape[-1] / lr.shape[-1]
        if abs(r_max - self.method.max_scale) > 1e-6 or abs(hr.shape[-2] / lr.shape[-2] - r_max) > 1e-6:
            raise UserError(f"idm: training pairs are ×{r_max:g} (HR {tuple(hr.shape[-2:])}, LR {tuple(lr.shape[-2:])}) "
                            f"but method.max_scale={self.method.max_scale:g}; the scale code p = (r−1)/(r_max−1) "
                            "needs them equal (set method.max_scale to the dataset scale)")
        b = hr.shape[0]
        p = random.random()  # one per batch (authors' feed_data)
        size = target_size(tuple(lr.shape[-2:]), tuple(hr.shape[-2:]), p)
        x0 = resize_gt(hr, size, self.gt_resize) * 2 - 1
        gamma = self.schedule.sample_train_gamma(b).to(hr.device)
        eps = torch.randn_like(x0)
        g = gamma.view(b, 1, 1, 1)
        x_t = g * x0 + (1 - g**2).sqrt() * eps
        x_con = self.net.condition(lr * 2 - 1, size)
        scaler = torch.full((b, 1), p, device=hr.device)
        eps_hat = self.net.eps(x_t, x_con, scaler, gamma)
        return {"loss": eps_l1_loss(eps_hat, eps), "out_scale": torch.tensor(size[-1] / lr.shape[-1])}

    def eval_method(self) -> Any:
        return self.method
