"""IDM SRMethod adapter: any scale (scales = None), batched DDPM-2000 or DDIM-199 sampling.

Scale code at evaluation (fixed rule, spec §5.1): p = (r − 1)/(r_max − 1), clamped to [0, 1], with
r = the requested scale and r_max = `method.max_scale` (8 for the face model); the output size is
round(h·r) × round(w·r), i.e. what the dataset asks for.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from srbench.method import SRMethod
from srbench.nn.noise import generators
from srbench.weights import WeightFile, resolve

from .checkpoint import load_authors_state_dict
from .diffusion import Schedule, ddim_nfe, ddim_sample, ddpm_sample
from .model import EncoderConfig, IDMNet, UNetConfig

FACE_WEIGHTS = WeightFile(
    method="idm", filename="face_gen.pth",
    description="IDM 8x face model (16->128), README 'Pre-trained checkpoints' Google Drive link of Ree1s/IDM",
    obtain="download it from the Google Drive link under 'Pre-trained checkpoints' in https://github.com/Ree1s/IDM "
    "(no direct URL is published)")


def scale_code(scale: float, max_scale: float) -> float:
    return min(max((scale - 1.0) / (max_scale - 1.0), 0.0), 1.0)


class IDM(SRMethod):
    name = "idm"
    scales = None
    is_stochastic = True

    def __init__(self, net: IDMNet, device, dtype, sampler: str = "ddim", max_scale: float = 8.0,
                 ddim_stride: int = 10):
        if sampler not in ("ddim", "ddpm"):
            raise ValueError(f"idm: method.sampler must be 'ddim' or 'ddpm' (got {sampler!r})")
        self.net, self.device, self.dtype = net.to(device).eval(), device, dtype
        self.sampler, self.max_scale, self.schedule = sampler, max_scale, Schedule()
        self.ddim_stride = int(ddim_stride)  # 10 = the authors' DDIM (199 NFE); 100 → 19 NFE

    @classmethod
    def required_weights(cls, cfg: Mapping[str, Any]) -> list[WeightFile]:
        # `random` (tests, perf) needs nothing; null, `face` or a path needs the 8x face checkpoint.
        return [] if (cfg or {}).get("weights") == "random" else [FACE_WEIGHTS]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], device, dtype) -> "IDM":
        cfg = dict(cfg or {})
        unet = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in dict(cfg.get("unet") or {}).items()}
        net = IDMNet(UNetConfig(**unet), EncoderConfig(**dict(cfg.get("encoder") or {})))
        w = cfg.get("weights")
        if w != "random":
            path = resolve(FACE_WEIGHTS, None if w in (None, "face") else w)  # one-line MissingWeightsError
            sd = torch.load(path, map_location="cpu", weights_only=True)
            load_authors_state_dict(net, sd)
        return cls(net, device, dtype, cfg.get("sampler", "ddim"), float(cfg.get("max_scale", 8.0)),
                   int(cfg.get("ddim_stride", 10)))

    def nfe_per_image(self) -> float:
        return float(self.schedule.n if self.sampler == "ddpm" else ddim_nfe(self.schedule.n, self.ddim_stride))

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor, scale: float, *, seeds: Sequence[int]) -> torch.Tensor:
        b, _, h, w = lr.shape
        size = (round(h * scale), round(w * scale))
        p = torch.full((b, 1), scale_code(float(scale), self.max_scale), device=lr.device)
        x_con = self.net.condition(lr * 2 - 1, size)
        fn = lambda x, g: self.net.eps(x, x_con, p, g)  # noqa: E731
        gens = generators(seeds)
        if self.sampler == "ddpm":
            x = ddpm_sample(fn, self.schedule, (b, 3, *size), gens, device=lr.device)
        else:
            x = ddim_sample(fn, self.schedule, (b, 3, *size), gens, device=lr.device, stride=self.ddim_stride)
        return ((x.clamp(-1, 1) + 1) / 2).float()
