"""ECDP's training losses, one per stage (authors' ``lib/model/*.py`` and ``lib/trainer.py``).

1. Regressor (stage a): L1 summed over C×H×W, mean over the batch (``RRDBNet._calculate_loss``).
2. Diffusion (stage b): Σ(ε̂ − ε)² + Σ(x̂₀ − x₀)² per image, mean over the batch
   (``Diffusion.normalize``). The two heads are supervised separately and unweighted; the
   hybrid ε/x₀ blend is only used when sampling.
3. Image-quality fine-tuning (stage c): w·mean|φ(x̂) − φ(HR)| with φ = torchvision VGG19
   ``features[:35]`` (ends at conv5_4, *before* its ReLU) on ImageNet-normalised input
   (``lib/model/percep.py``); x̂ is the PF-ODE output, not clamped. w = 0.5 (DF2K, ImageNet),
   1 (CelebA).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from srbench.weights import MissingWeightsError, WeightFile, resolve

from .errors import ECDPConfigError

#: torchvision's ImageNet VGG19 file (what ``vgg19(pretrained=True)`` downloads)
VGG19_WEIGHTS = WeightFile(
    method="torchvision",
    filename="vgg19-dcbb9e9d.pth",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    sha256_prefix="dcbb9e9d",
    licence="BSD-3-Clause (torchvision)",
    description="VGG19 ImageNet weights for ECDP's image-quality fine-tuning loss",
)
#: index one past conv5_4 in torchvision's ``vgg19().features``
VGG19_CONV5_4_END = 35
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def regressor_l1_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Stage (a): mean over the batch of Σ_{C,H,W} |SR − HR|; inputs B×3×H×W."""
    return (sr - hr).abs().sum(dim=(1, 2, 3)).mean()


def score_matching_loss(
    eps_hat: torch.Tensor, x0_hat: torch.Tensor, eps: torch.Tensor, x0: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Stage (b): both heads' squared errors summed over C×H×W, each averaged over the batch.

    Returns ``{"loss": eps + x0 terms, "loss_eps": …, "loss_x0": …}`` (scalars).
    """
    loss_eps = (eps_hat - eps).square().sum(dim=(1, 2, 3)).mean()
    loss_x0 = (x0_hat - x0).square().sum(dim=(1, 2, 3)).mean()
    return {"loss": loss_eps + loss_x0, "loss_eps": loss_eps.detach(), "loss_x0": loss_x0.detach()}


class VGG19Features(nn.Module):
    """VGG19 ``features[:35]`` (conv1_1 … conv5_4, pre-ReLU) on ImageNet-normalised [0, 1] RGB.

    ``backbone="imagenet"`` loads torchvision's file (``vgg19-dcbb9e9d.pth``) from the torch hub
    cache or ``$SRBENCH_WEIGHTS/torchvision/`` and raises a one-line
    :class:`~srbench.weights.MissingWeightsError` when it is absent. ``backbone="random"`` is a
    seeded random network for tests only — its loss values mean nothing perceptually.
    """

    def __init__(
        self, backbone: str = "imagenet", weights_path: str | os.PathLike | None = None, seed: int = 0
    ):
        super().__init__()
        from torchvision.models import vgg19

        if backbone == "imagenet":
            try:
                path = resolve(VGG19_WEIGHTS, weights_path)  # also looks in the torch hub cache
            except MissingWeightsError as err:
                raise MissingWeightsError(f"ECDP perceptual loss (VGG19 conv5_4): {err}") from None
            net = vgg19()
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        elif backbone == "random":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = vgg19()
        else:
            raise ECDPConfigError(
                f"ECDP: method.train.percep_backbone must be 'imagenet' or 'random', got {backbone!r}"
            )
        self.backbone = backbone
        self.features = net.features[:VGG19_CONV5_4_END]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:  # no dropout/BN inside; stay in eval
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


class PerceptualLoss(nn.Module):
    """Stage (c): per-image mean |φ(x) − φ(y)| over C×H×W of VGG19 conv5_4 features; returns (B,)."""

    def __init__(self, backbone: str = "imagenet", weights_path: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.features = VGG19Features(backbone, weights_path)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self.features(x) - self.features(y)).abs().flatten(1).mean(dim=1)
