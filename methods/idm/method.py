"""IDM SRMethod adapter: any scale (scales = None), batched DDPM-2000 or DDIM-199 sampling.

Scale code at evaluation (fixed rule, spec §5.1): p = (r − 1)/(r_max − 1), clamped to [0, 1], with
r = the requested scale and r_max = `method.max_scale` (8 for the face model); the output size is
round(h·r) × round(w·r), i.e. what the dataset asks for.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from srbench import training
from srbench.errors import CheckpointError
from srbench.method import SRMethod
from srbench.nn.noise import generators
from srbench.weights import WeightFile, explicit_path, resolve
from srbench.weights import load_checkpoint as read_weights

from .checkpoint import load_authors_state_dict
from .diffusion import Schedule, ddim_nfe, ddim_sample, ddpm_sample
from .model import EncoderConfig, IDMNet, UNetConfig

FACE_WEIGHTS = WeightFile(
    method="idm", filename="face_gen.pth",
    description="IDM 8x face model (16->128), README 'Pre-trained checkpoints' Google Drive link of Ree1s/IDM",
    obtain="download it from the Google Drive link under 'Pre-trained checkpoints' in https://github.com/Ree1s/IDM "
    "(no direct URL is published)")


def _trained_run_dir(weights: Any) -> Path | None:
    """``weights`` as a srbench-train run folder (or its checkpoints/) holding a step_*.pt, else None."""
    explicit = explicit_path(FACE_WEIGHTS, weights) if weights != "random" else None
    p = Path(explicit).expanduser() if explicit else None
    return p if p is not None and p.is_dir() and training.newest_checkpoint(p) is not None else None


def load_weights(net: IDMNet, weights: Any) -> dict[str, Any]:
    """Load the authors' ``*_gen.pth`` (key map, strict) or a srbench-train checkpoint (file or run
    folder; its EMA weights when it kept them), strictly. Returns provenance for ``describe()``."""
    run_dir = _trained_run_dir(weights)
    if run_dir is not None:
        ckpt = training.load_checkpoint(run_dir)
        obj, digest, path = ckpt, None, Path(ckpt["path"])
    else:
        path = resolve(FACE_WEIGHTS, explicit_path(FACE_WEIGHTS, weights))  # one-line MissingWeightsError
        obj, digest = read_weights(path)
    if isinstance(obj, dict) and obj.get("format") in training.CHECKPOINT_FORMATS:
        trained_by = ((obj.get("config") or {}).get("method") or {}).get("name")
        if trained_by not in (None, "idm"):
            raise CheckpointError(f"{path} was trained with method {trained_by!r}, not idm")
        net.load_state_dict(training.checkpoint_weights(obj, "model", use_ema=bool(obj.get("ema"))), strict=True)
        return {"weights": str(path), "format": "srbench-train", "step": obj.get("step"), "sha256": digest}
    load_authors_state_dict(net, obj)
    return {"weights": str(path), "format": "authors *_gen.pth", "sha256": digest}


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
        self.provenance: dict[str, Any] = {"weights": "random"}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sampler": self.sampler, "nfe": self.nfe_per_image(), "max_scale": self.max_scale,
                "params": sum(p.numel() for p in self.net.parameters()), **self.provenance}

    @classmethod
    def required_weights(cls, cfg: Mapping[str, Any]) -> list[WeightFile]:
        # `random` (tests, perf) and a srbench-train run folder need nothing; null, `face` or a file
        # path needs the checkpoint file (the 8x face model, or a step_*.pt of srbench-train).
        w = (cfg or {}).get("weights")
        return [] if w == "random" or _trained_run_dir(w) is not None else [FACE_WEIGHTS]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], device, dtype) -> IDM:
        cfg = dict(cfg or {})
        unet = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in dict(cfg.get("unet") or {}).items()}
        net = IDMNet(UNetConfig(**unet), EncoderConfig(**dict(cfg.get("encoder") or {})))
        w = cfg.get("weights")
        provenance = {"weights": "random"} if w == "random" else load_weights(net, None if w == "face" else w)
        m = cls(net, device, dtype, cfg.get("sampler", "ddim"), float(cfg.get("max_scale", 8.0)),
                int(cfg.get("ddim_stride", 10)))
        m.provenance = provenance
        return m

    def trainer(self, cfg: Mapping[str, Any]) -> Any:
        """Losses for ``srbench-train`` (:mod:`methods.idm.training`); ``cfg``: the training config."""
        from .training import IDMTrainer

        tcfg = dict((dict(cfg.get("method") or {})).get("train") or {})
        # the authors' orthogonal init only for a model that starts from random weights
        fresh = self.provenance.get("weights") == "random" and not (cfg.get("init") or {}).get("checkpoint")
        return IDMTrainer(self, gt_resize=tcfg.get("gt_resize", "matlab"), orthogonal_init=fresh)

    def nfe_per_image(self) -> float:
        return float(self.schedule.n if self.sampler == "ddpm" else ddim_nfe(self.schedule.n, self.ddim_stride))

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor, scale: float, *, seeds: Sequence[int]) -> torch.Tensor:
        b, _, h, w = lr.shape
        size = (round(h * scale), round(w * scale))
        p = torch.full((b, 1), scale_code(float(scale), self.max_scale), device=lr.device)
        x_con = self.net.condition(lr * 2 - 1, size)
        fn = lambda x, g: self.net.eps(x, x_con, p, g)
        gens = generators(seeds)
        if self.sampler == "ddpm":
            x = ddpm_sample(fn, self.schedule, (b, 3, *size), gens, device=lr.device)
        else:
            x = ddim_sample(fn, self.schedule, (b, 3, *size), gens, device=lr.device, stride=self.ddim_stride)
        return ((x.clamp(-1, 1) + 1) / 2).float()
