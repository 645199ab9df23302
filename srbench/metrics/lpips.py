"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, offline and without surprises.

The ``lpips`` wheel ships only the linear heads (``lpips/weights/v0.1/<net>.pth``); the
backbone comes from torchvision's hub cache, which ``lpips`` would fetch over the network.
Here the backbone file is found first (``torch.hub.get_dir()/checkpoints/<file>`` or a
configured path), its sha256 checked against the prefix in its name, and loaded by hand
into a backbone built without weights, so nothing ever touches the network
(protocols.md §2).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from srbench.metrics.planes import check_pair
from srbench.metrics.profiles import UnknownProfile
from srbench.weights import MissingWeightsError, WeightFile, resolve


@dataclass(frozen=True)
class Backbone:
    """The torchvision ImageNet weights an LPIPS trunk needs."""

    net: str
    filename: str
    sha256_prefix: str  # torchvision puts the first 8 hex digits of the sha256 in the name

    @property
    def url(self) -> str:
        return f"https://download.pytorch.org/models/{self.filename}"


BACKBONES: dict[str, Backbone] = {
    "alex": Backbone("alex", "alexnet-owt-7be5be79.pth", "7be5be79"),
    "vgg": Backbone("vgg", "vgg16-397923af.pth", "397923af"),
}
LPIPS_VERSION = "0.1"


def backbone_weight_file(net: str = "alex") -> WeightFile:
    """The torchvision backbone file of LPIPS(``net``) as a :class:`srbench.weights.WeightFile`.

    Looked up like every weight file (explicit path → ``$SRBENCH_WEIGHTS/torchvision/`` → HF cache
    → ``torch.hub.get_dir()/checkpoints``), verified by the sha256 prefix in its name.
    """
    bb = _backbone(net)
    return WeightFile(method="torchvision", filename=bb.filename, url=bb.url, sha256_prefix=bb.sha256_prefix,
                      licence="torchvision model weights (BSD-3-Clause code; ImageNet-trained)",
                      description=f"LPIPS({net}) backbone")


def backbone_path(net: str = "alex", weights: str | os.PathLike | None = None) -> Path:
    """Find and verify the backbone file of LPIPS(``net``).

    Args:
        net: ``"alex"`` or ``"vgg"``.
        weights: a file, a directory holding the torchvision file name, or ``None`` for the
            default locations (``torch.hub.get_dir()/checkpoints`` among them).

    Raises:
        MissingWeightsError: one line naming the file, where it looked (and TORCH_HOME), the URL.
    """
    try:
        return resolve(backbone_weight_file(net), weights)
    except MissingWeightsError as err:
        raise MissingWeightsError(
            f"LPIPS({net}): {err} (TORCH_HOME={os.environ.get('TORCH_HOME', 'unset')}; "
            f"or set metrics.lpips_weights)"
        ) from None


def _backbone(net: str) -> Backbone:
    if net not in BACKBONES:
        raise UnknownProfile(f"unknown LPIPS network {net!r}; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[net]


def _trunk_state_dict(trunk: nn.Module, torchvision_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename torchvision's ``features.<i>.*`` keys to lpips' ``slice<k>.<i>.*`` keys.

    lpips splits ``features`` into slices but keeps each layer's index as its module name.
    """
    mapped = {}
    for key in trunk.state_dict():
        _slice, index, param = key.split(".", 2)
        mapped[key] = torchvision_state[f"features.{index}.{param}"]
    return mapped


class LPIPS(nn.Module):
    """LPIPS v0.1 distance per image: float32, eval mode, no grad, batched on the inputs' device.

    Args:
        net: ``"alex"`` (srbench-standard) or ``"vgg"`` (InvSR's second column).
        backbone_weights: ``None`` (torch hub cache), a path (file or directory), or
            ``"random"`` — randomly initialised backbone, for tests and perf runs only.

    Call with ``sr, hr``: B×3×H×W in [0, 1] (B×1 grey images are replicated to 3 channels).
    Returns a B float64 tensor; values outside [0, 1] raise ``ValueError`` (the [0,1] → [−1,1]
    mapping belongs here, never to the caller: ``lpips`` silently accepts the wrong range).
    """

    def __init__(self, net: str = "alex", backbone_weights: str | os.PathLike | None = None):
        super().__init__()
        import lpips  # lazy: pulls in torchvision

        self.net_name = net
        bb = _backbone(net)
        trunk_file = None if backbone_weights == "random" else backbone_path(net, backbone_weights)
        with warnings.catch_warnings():
            # pnet_rand=True builds the trunk with torchvision's legacy `pretrained=False`
            # (= weights=None): no download; the deprecation warning is not the user's business.
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(pretrained=False, net=net, version=LPIPS_VERSION, pnet_rand=True, verbose=False)
        heads = Path(lpips.__file__).parent / "weights" / f"v{LPIPS_VERSION}" / f"{net}.pth"
        head_state = torch.load(heads, map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(head_state, strict=False)
        wanted = {k for k in model.state_dict() if k.startswith("lin") and not k.startswith("lins.")}
        if unexpected or wanted & set(missing):
            raise MissingWeightsError(f"LPIPS({net}): {heads} does not hold the lin0..lin4 heads; reinstall lpips==0.1.4")
        if trunk_file is not None:
            tv_state = torch.load(trunk_file, map_location="cpu", weights_only=True)
            try:
                model.net.load_state_dict(_trunk_state_dict(model.net, tv_state), strict=True)
            except (KeyError, RuntimeError) as err:
                raise MissingWeightsError(
                    f"LPIPS({net}): {trunk_file} is not a torchvision {bb.filename} state dict ({err.__class__.__name__})"
                ) from None
        self.model = model.eval().requires_grad_(False)
        self.random_backbone = trunk_file is None

    @property
    def metric_id(self) -> str:
        return f"lpips@{self.net_name}-v{LPIPS_VERSION}" + ("-randombackbone" if self.random_backbone else "")

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        check_pair(sr, hr)
        if sr.shape[1] == 1:
            sr, hr = sr.expand(-1, 3, -1, -1), hr.expand(-1, 3, -1, -1)
        for name, x in (("SR", sr), ("HR", hr)):
            if bool(((x < 0) | (x > 1)).any()):
                raise ValueError(
                    f"LPIPS expects {name} in [0, 1], got values in [{x.min().item():.4g}, {x.max().item():.4g}]"
                )
        if next(self.model.parameters()).device != sr.device:
            self.model.to(sr.device)  # once per device, outside inference mode
        with torch.inference_mode():
            # lpips v0.1 takes [-1, 1] inputs: x ↦ 2x − 1 (its normalize=True).
            d = self.model(2 * sr.float() - 1, 2 * hr.float() - 1, normalize=False)
        return d.flatten().to(torch.float64)


def lpips_distance(sr: Tensor, hr: Tensor, *, net: str = "alex", backbone_weights=None) -> Tensor:
    """One-shot functional form (builds the network every call; use :class:`LPIPS` in loops)."""
    return LPIPS(net, backbone_weights).to(sr.device)(sr, hr)
