"""Any SR checkpoint spandrel can read (Real-ESRGAN, SwinIR, HAT, RCAN, Compact, …) as an srbench method.

spandrel (the loader of chaiNNer / ComfyUI) detects the architecture, scale and channel counts
from the state dict and builds the network; this adapter only

* finds the file (``method.weights=PATH``, or a preset's ``file`` under ``$SRBENCH_WEIGHTS/spandrel/``),
* refuses what is not a 3-channel super-resolution model, or a scale the dataset does not ask for,
* runs the batch on the device in a dtype the descriptor allows (fp16 / bf16 only where
  ``supports_half`` / ``supports_bfloat16`` say so; fp32 otherwise), and
* tiles large images through :func:`srbench.nn.tiling.tiled_apply` (tile side from a memory budget).

The descriptor's own ``__call__`` pads to the architecture's size requirements (window multiples
for SwinIR/HAT), calls the network and clamps to [0, 1]; we call it as is, so the numbers are
exactly what calling spandrel directly gives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from srbench.errors import CheckpointError, ConfigError
from srbench.method import SRMethod, UnsupportedInput
from srbench.nn.tiling import tiled_apply
from srbench.weights import WeightFile, explicit_path, resolve, sha256_file

#: fp32 activation bytes per LR pixel and feature channel a tile may hold at once (forward only,
#: a few live feature maps of the widest stage); deliberately generous so the budget is an upper bound.
_BYTES_PER_PIXEL_CHANNEL = 4 * 8


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    value = cfg.get(key, default) if isinstance(cfg, Mapping) else getattr(cfg, key, default)
    return default if value is None else value


@dataclass(frozen=True)
class PresetWeightFile(WeightFile):
    """A preset's file: kept under ``$SRBENCH_WEIGHTS/spandrel/``, fetched with ``srbench weights download <preset>``."""

    preset: str = ""

    def how_to_get(self) -> str:
        text = super().how_to_get()
        return text.replace(f"srbench weights download {self.method}", f"srbench weights download {self.preset}")


def weight_file(cfg: Mapping[str, Any]) -> WeightFile:
    """The file ``cfg`` names: a preset's official file (with URL / sha256), or a user's path."""
    preset = _get(cfg, "file")
    if preset:
        return PresetWeightFile(
            preset=str(_get(cfg, "preset", "spandrel")), method="spandrel", filename=str(preset), url=_get(cfg, "url"), sha256=_get(cfg, "sha256"),
            licence=str(_get(cfg, "licence", "")), description=str(_get(cfg, "description", "")),
            obtain=str(_get(cfg, "obtain", "")),
        )
    weights = _get(cfg, "weights")
    name = Path(str(weights)).name if weights else "model.pth"
    return WeightFile(
        method="spandrel", filename=name,
        obtain="pass method.weights=PATH (any .pth/.safetensors spandrel reads) or use a preset, e.g. "
               "method=realesrgan_x4plus",
    )


class Spandrel(SRMethod):
    """A spandrel ImageModelDescriptor behind the SRMethod contract (deterministic, one scale)."""

    name: ClassVar[str] = "spandrel"

    def __init__(self, descriptor: Any, device: torch.device, dtype: torch.dtype, *, path: Path,
                 sha256: str, tile: int | str | None = "auto", tile_overlap: int = 16,
                 memory_budget_mb: float = 2048.0, preset: str | None = None):
        self.descriptor = descriptor
        self.device = torch.device(device)
        self.dtype = dtype
        self.path, self.sha256 = path, sha256
        self.tile, self.tile_overlap, self.memory_budget_mb = tile, int(tile_overlap), float(memory_budget_mb)
        self.preset = preset
        self.scale = int(descriptor.scale)
        # widest conv output: the activation size that sets a tile's memory (computed once, not per call)
        self._widest_conv = max((p.shape[0] for p in descriptor.model.parameters() if p.ndim == 4), default=64)

    @property
    def label(self) -> str:
        """A preset runs under its own name (results/<dataset>/realesrgan_x4plus/, its leaderboard row)."""
        return self.preset or self.name

    # ------------------------------------------------------------------ construction
    @classmethod
    def required_weights(cls, cfg: Mapping[str, Any]) -> list[WeightFile]:
        return [weight_file(cfg)]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], device: torch.device, dtype: torch.dtype) -> Spandrel:
        import spandrel

        if _get(cfg, "weights") == "random":
            raise ConfigError("method=spandrel has no random init: spandrel builds the network from a checkpoint; "
                              "pass method.weights=PATH")
        wf = weight_file(cfg)
        path = resolve(wf, explicit_path(wf, _get(cfg, "weights")))
        try:
            desc = spandrel.ModelLoader(device="cpu").load_from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - spandrel raises plain errors for unknown state dicts
            raise CheckpointError(f"spandrel cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        arch = desc.architecture.name
        if not isinstance(desc, spandrel.ImageModelDescriptor) or desc.purpose != "SR" or desc.scale < 2:
            raise UnsupportedInput(
                f"{path.name} is a {arch} {desc.purpose} model (scale x{desc.scale}), not a super-resolution model")
        if desc.input_channels != 3 or desc.output_channels != 3:
            raise UnsupportedInput(f"{path.name} ({arch}) maps {desc.input_channels} to {desc.output_channels} "
                                   "channels; srbench runs RGB (3 → 3) models")
        want = _get(cfg, "scale")
        if want is not None and int(want) != int(desc.scale):
            raise UnsupportedInput(f"{path.name} ({arch}) is a x{desc.scale} model, the config says scale: {want}")
        dtype = cls._supported_dtype(desc, dtype, arch)
        desc.to(device).eval()
        if dtype != torch.float32:
            desc.model.to(dtype)
        return cls(desc, device, dtype, path=path, sha256=sha256_file(path), tile=_get(cfg, "tile", "auto"),
                   tile_overlap=int(_get(cfg, "tile_overlap", 16)),
                   memory_budget_mb=float(_get(cfg, "memory_budget_mb", 2048)), preset=_get(cfg, "preset"))

    @staticmethod
    def _supported_dtype(desc: Any, dtype: torch.dtype, arch: str) -> torch.dtype:
        if dtype == torch.float16 and not desc.supports_half:
            raise UnsupportedInput(f"{arch} does not support fp16 (spandrel: supports_half=False); use dtype=fp32")
        if dtype == torch.bfloat16 and not desc.supports_bfloat16:
            raise UnsupportedInput(f"{arch} does not support bf16 (spandrel: supports_bfloat16=False); use dtype=fp32")
        return dtype

    # ------------------------------------------------------------------ inference
    def tile_size(self, height: int, width: int) -> int | None:
        """LR tile side for a memory budget, or None when the whole image fits (``tile: null`` never tiles)."""
        if self.tile in (None, "none", 0):
            return None
        if self.tile != "auto":
            side = int(self.tile)
            return side if max(height, width) > side else None
        # largest square tile whose activations (≈ pixels · s² · channels · bytes) fit the budget
        feats = self._widest_conv
        bytes_per_lr_pixel = _BYTES_PER_PIXEL_CHANNEL * feats * (1 + self.scale**2 / 4)
        side = int(math.sqrt(self.memory_budget_mb * 2**20 / bytes_per_lr_pixel))
        multiple = max(int(self.descriptor.size_requirements.multiple_of), 8)
        side = max(multiple * 4, side // multiple * multiple)
        return side if height * width > side * side else None

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # a copy: some spandrel networks scale their input in place (RCAN: ``x *= rgb_range``), which
        # would corrupt the runner's LR batch (LR-PSNR is scored from it after SR)
        return self.descriptor(x.to(self.dtype, copy=True)).float()

    @torch.inference_mode()
    def upscale(self, lr: torch.Tensor, scale: float, *, seeds: Sequence[int]) -> torch.Tensor:
        if float(scale) != float(self.scale):
            raise UnsupportedInput(
                f"{self.path.name} ({self.descriptor.architecture.name}) is a x{self.scale} model; the dataset "
                f"asks for x{scale:g}")
        side = self.tile_size(lr.shape[-2], lr.shape[-1])
        if side is None:
            return self._forward(lr)
        overlap = min(self.tile_overlap, side // 2)
        return tiled_apply(self._forward, lr, tile=side, overlap=overlap, scale=self.scale, blend="linear")

    def describe(self) -> dict[str, Any]:
        d = self.descriptor
        return {
            "name": self.name, "preset": self.preset, "architecture": d.architecture.name,
            "architecture_id": d.architecture.id, "scale": self.scale, "tags": list(d.tags),
            "params_total": sum(p.numel() for p in d.model.parameters()), "params_trainable": 0,
            "dtype": str(self.dtype).removeprefix("torch."), "supports_half": bool(d.supports_half),
            "supports_bfloat16": bool(d.supports_bfloat16), "tile": self.tile, "tile_overlap": self.tile_overlap,
            "memory_budget_mb": self.memory_budget_mb, "weights": str(self.path), "weights_path": str(self.path),
            "weights_sha256": self.sha256,
        }

    def nfe_per_image(self) -> int:
        return 1  # one forward pass (tiles of one image count as one evaluation of the model)
