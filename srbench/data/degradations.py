"""Seeded Real-ESRGAN second-order degradation (blur → resize → noise → JPEG, twice; final sinc).

Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic
Data", ICCVW 2021, Sec. 3 and Fig. 2. The pipeline follows XPixelGroup/BasicSR
``basicsr/models/realesrgan_model.py`` (``feed_data``), ``basicsr/data/realesrgan_dataset.py``
and ``basicsr/data/degradations.py``; StableSR (``ldm/models/diffusion/ddpm.py``) and InvSR
(``basicsr/data/realesrgan_dataset.py`` ``degrade_fun``) run the same pipeline with other
parameters, which are the YAML files under ``conf/degradation/`` (srbench protocols §6).

What srbench does differently from upstream, on purpose:

* **Seeded per image, no global RNG.** ``sample_params(seed)`` draws every random choice for one
  image from a ``numpy.random.Generator`` (continuous values, Bernoulli draws) and a
  ``random.Random`` (categorical choices), both seeded with the per-image seed
  (:func:`degradation_seed`); the noise tensors come from a CPU ``torch.Generator`` seeded from
  the same seed inside :meth:`RealESRGANDegradation.apply`. An image's LR therefore depends only
  on (HR, config, dataset id, image name, base seed) — not on batch size, order or device.
  Upstream draws from the global ``random``, ``np.random`` and ``torch`` RNGs in three places,
  so its sets cannot be regenerated bit-exactly.
* **JPEG is a real codec round trip** (libjpeg-turbo through Pillow on CPU; nvJPEG through
  ``torchvision.io`` for CUDA tensors, falling back to the CPU codec). Upstream uses
  ``DiffJPEG`` (``basicsr/utils/diffjpeg.py``): a float re-implementation with unclamped,
  unrounded quantisation tables, no 8-bit rounding of its input and float quality. Here the
  input is rounded to 8 bits and the drawn quality ``q`` is rounded to the nearest integer.
  Numbers therefore differ slightly from the released StableSR/InvSR sets — which is why
  released sets are used as released and a regenerated set is a new dataset id (protocols §5).
* **USM sharpening** uses a separable Gaussian (the 51×51 kernel of BasicSR's ``USMSharp`` is an
  outer product, so this is the same filter up to float rounding, ~25× cheaper).
* **Reflect padding** (``filter2D``'s ``mode='reflect'``) is done by index arithmetic, so it also
  works when the pad is larger than a (tiny) image; for pads smaller than the image it equals
  ``F.pad(mode='reflect')``.

Everything else — kernel families and ranges, F.interpolate modes (``align_corners=False``, no
antialias) and output sizes, Gaussian/Poisson noise including the "count unique values" Poisson
rate, the clamps, the random order of the last two steps, the final 8-bit rounding — is as
upstream.

Determinism: on CPU in float32 the output is a pure function of its inputs and
``torch.use_deterministic_algorithms(True)``-safe; same seed → identical bytes (tested). On
CUDA the convolutions, interpolation and nvJPEG differ from CPU by float rounding, so LR bytes
differ slightly (``tests/test_degradations.py::test_cuda_matches_cpu`` states the tolerance);
benchmark LR sets are generated on CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import io
import json
import math
import os
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from srbench.data.kernels import (
    KERNEL_PAD_TO,
    KERNEL_TYPES,
    build_kernel,
    sample_blur_kernel,
    sample_final_sinc,
)
from srbench.errors import ConfigError

#: Bump when a change alters the LR bytes for the same config and seed (it is part of config_hash).
CODE_VERSION = "srbench.realesrgan/1"

RESIZE_MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")
RESIZE_DIRECTIONS: tuple[str, ...] = ("up", "down", "keep")
FINAL_ORDERS: tuple[str, ...] = ("resize_sinc_jpeg", "jpeg_resize_sinc")


class DegradationConfigError(ConfigError):
    """A degradation config is invalid; ``str(err)`` is one line naming the key and the fix."""


# ----------------------------------------------------------------------------- per-image seed


def degradation_seed(dataset_id: str, name: str, base_seed: int) -> int:
    """Per-image seed ``SHA-256(dataset_id ∥ file_stem ∥ base_seed)`` truncated to 64 bits (protocols §6).

    ``name`` is the image's name as the dataset lists it; its extension is dropped (so
    ``0801.png`` and ``0801`` agree) but folders are kept. Parts are joined with NUL bytes so that
    ("ab", "c") and ("a", "bc") differ. Returns an unsigned 64-bit integer (first 8 digest
    bytes, big-endian).
    """
    stem = os.path.splitext(name)[0]
    digest = hashlib.sha256(f"{dataset_id}\0{stem}\0{int(base_seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _torch_seed(seed: int) -> int:
    """Fold a 64-bit seed into the 32 bits a CPU ``torch.Generator`` actually uses.

    The CPU generator (mt19937) keeps only the low 32 bits of ``manual_seed``; xor-folding lets
    both halves of the per-image seed matter.
    """
    return (seed ^ (seed >> 32)) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- config schema


@dataclass
class RealESRGANConfig:
    """Every parameter of the pipeline (protocols §6); defaults are Real-ESRGAN x4plus.

    Key names follow the upstream YAML files (``train_realesrgan_x4plus.yml``) so the files can be
    compared side by side. Ranges are ``[low, high]`` for U(low, high); ``*_prob`` are
    probabilities; ``resize_prob`` is (up, down, keep). Noise σ is in grey levels (0–255).
    """

    name: str = "realesrgan"
    #: id of this parameter set (realesrgan_x4plus, stablesr, invsr_test, …), part of the LR id
    profile: str = "realesrgan_x4plus"
    #: base seed of the per-image seeds (degradation_seed)
    seed: int = 0

    # USM sharpening of the HR before the first blur (BasicSR USMSharp; Real-ESRGAN, StableSR).
    use_usm: bool = True
    usm_weight: float = 0.5
    usm_radius: int = 50
    usm_threshold: float = 10.0

    # First degradation: blur kernel.
    kernel_sizes: list[int] = field(default_factory=lambda: [7, 9, 11, 13, 15, 17, 19, 21])
    kernel_list: list[str] = field(default_factory=lambda: list(KERNEL_TYPES))
    kernel_prob: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_prob: float = 0.1
    blur_sigma: list[float] = field(default_factory=lambda: [0.2, 3.0])
    betag_range: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap_range: list[float] = field(default_factory=lambda: [1.0, 2.0])
    # First degradation: resize, noise, JPEG.
    resize_prob: list[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])
    resize_range: list[float] = field(default_factory=lambda: [0.15, 1.5])
    gaussian_noise_prob: float = 0.5
    noise_range: list[float] = field(default_factory=lambda: [1.0, 30.0])
    poisson_scale_range: list[float] = field(default_factory=lambda: [0.05, 3.0])
    gray_noise_prob: float = 0.4
    jpeg_range: list[float] = field(default_factory=lambda: [30.0, 95.0])

    # Second degradation (blur2 → resize2 → noise2), applied with second_order_prob (InvSR: 0).
    second_order_prob: float = 1.0
    second_blur_prob: float = 0.8
    kernel_sizes2: list[int] = field(default_factory=lambda: [7, 9, 11, 13, 15, 17, 19, 21])
    kernel_list2: list[str] = field(default_factory=lambda: list(KERNEL_TYPES))
    kernel_prob2: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_prob2: float = 0.1
    blur_sigma2: list[float] = field(default_factory=lambda: [0.2, 1.5])
    betag_range2: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap_range2: list[float] = field(default_factory=lambda: [1.0, 2.0])
    resize_prob2: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.3])
    resize_range2: list[float] = field(default_factory=lambda: [0.3, 1.2])
    gaussian_noise_prob2: float = 0.5
    noise_range2: list[float] = field(default_factory=lambda: [1.0, 25.0])
    poisson_scale_range2: list[float] = field(default_factory=lambda: [0.05, 2.5])
    gray_noise_prob2: float = 0.4

    # Final step, always applied: [resize to H/s + final sinc] and JPEG2 in random order.
    final_sinc_prob: float = 0.8
    final_sinc_kernel_sizes: list[int] = field(default_factory=lambda: [7, 9, 11, 13, 15, 17, 19, 21])
    jpeg_range2: list[float] = field(default_factory=lambda: [30.0, 95.0])

    def validate(self) -> None:
        """Raise :class:`DegradationConfigError` (one line) on an impossible parameter."""
        where = f"degradation config {self.profile!r}"

        def fail(msg: str) -> None:
            raise DegradationConfigError(f"{where}: {msg}")

        probs = (
            "sinc_prob",
            "sinc_prob2",
            "gaussian_noise_prob",
            "gaussian_noise_prob2",
            "gray_noise_prob",
            "gray_noise_prob2",
            "second_order_prob",
            "second_blur_prob",
            "final_sinc_prob",
        )
        for key in probs:
            if not 0.0 <= getattr(self, key) <= 1.0:
                fail(f"{key} must be in [0, 1], got {getattr(self, key)}")
        for key in (
            "blur_sigma",
            "blur_sigma2",
            "noise_range",
            "noise_range2",
            "poisson_scale_range",
            "poisson_scale_range2",
            "jpeg_range",
            "jpeg_range2",
            "resize_range",
            "resize_range2",
            "betag_range",
            "betag_range2",
            "betap_range",
            "betap_range2",
        ):
            r = getattr(self, key)
            if len(r) != 2 or r[0] > r[1] or r[0] < 0:
                fail(f"{key} must be [low, high] with 0 <= low <= high, got {list(r)}")
        for key in ("blur_sigma", "blur_sigma2"):
            if getattr(self, key)[0] <= 0:
                fail(f"{key} must be positive, got {getattr(self, key)}")
        for key in ("jpeg_range", "jpeg_range2"):
            if not 1 <= getattr(self, key)[0] <= getattr(self, key)[1] <= 100:
                fail(f"{key} must lie in [1, 100] (JPEG quality), got {getattr(self, key)}")
        for key in ("resize_range", "resize_range2"):
            low, high = getattr(self, key)
            if not 0 < low <= 1 <= high:
                fail(f"{key} must be [low, high] with 0 < low <= 1 <= high (down: U(low,1), up: U(1,high))")
        for key in ("resize_prob", "resize_prob2"):
            p = getattr(self, key)
            if len(p) != 3 or min(p) < 0 or abs(sum(p) - 1) > 1e-6:
                fail(f"{key} must be three probabilities (up, down, keep) summing to 1, got {list(p)}")
        for suffix in ("", "2"):
            names, p = getattr(self, "kernel_list" + suffix), getattr(self, "kernel_prob" + suffix)
            unknown = sorted(set(names) - set(KERNEL_TYPES))
            if unknown:
                fail(f"kernel_list{suffix} has unknown kernel types {unknown}; known: {list(KERNEL_TYPES)}")
            if len(names) != len(p) or min(p) < 0 or abs(sum(p) - 1) > 1e-6:
                fail(
                    f"kernel_prob{suffix} must have one probability per kernel_list{suffix} entry, summing to 1"
                )
            # β ~ U(low, 1) or U(1, high): the range must straddle 1 where that family can be drawn.
            for family, key in (("generalized", "betag_range"), ("plateau", "betap_range")):
                used = any(pi > 0 for n, pi in zip(names, p) if n.startswith(family))
                low, high = getattr(self, key + suffix)
                if used and not low <= 1 <= high:
                    fail(f"{key}{suffix} must contain 1 (β ~ U(low,1) or U(1,high)), got {[low, high]}")
        for key in ("kernel_sizes", "kernel_sizes2", "final_sinc_kernel_sizes"):
            sizes = getattr(self, key)
            if not sizes or any(s < 1 or s % 2 == 0 or s > KERNEL_PAD_TO for s in sizes):
                fail(f"{key} must be odd sizes in [1, {KERNEL_PAD_TO}], got {list(sizes)}")
        if self.usm_radius < 1 or self.usm_weight < 0:
            fail("usm_radius must be >= 1 and usm_weight >= 0")


def load_config(cfg: RealESRGANConfig | Mapping[str, Any] | str | os.PathLike) -> RealESRGANConfig:
    """Validate a config (dataclass, mapping/DictConfig, or a YAML path) against the schema.

    Unknown keys, wrong types and impossible values raise :class:`DegradationConfigError`.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(cfg, RealESRGANConfig):
        config = copy.deepcopy(cfg)
    else:
        source = "degradation config"
        if isinstance(cfg, (str, os.PathLike)):
            source = str(cfg)
            if not os.path.isfile(cfg):
                raise DegradationConfigError(f"{source}: no such degradation config file")
            cfg = OmegaConf.load(cfg)
        data = OmegaConf.to_container(
            OmegaConf.create(dict(cfg) if not OmegaConf.is_config(cfg) else cfg), resolve=True
        )
        known = {f.name for f in dataclasses.fields(RealESRGANConfig)}
        for key in data:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                raise DegradationConfigError(
                    f"{source}: unknown key {key!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f"; valid keys are the fields of {RealESRGANConfig.__module__}.RealESRGANConfig"
                )
        try:
            config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RealESRGANConfig), data))
        except OmegaConfBaseException as err:
            first = str(err).splitlines()[0]
            key = getattr(err, "full_key", None)
            raise DegradationConfigError(
                f"{source}: {key}: {first}" if key else f"{source}: {first}"
            ) from None
    if config.name != "realesrgan":
        raise DegradationConfigError(
            f"degradation config {config.profile!r}: name must be 'realesrgan', got {config.name!r}"
        )
    config.validate()
    return config


# ----------------------------------------------------------------------------- tensor operations


def _reflect_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of a reflect-101 extension (``dcb|abcd|cba``) of a length-``n`` axis by ``pad``."""
    idx = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - idx, idx)


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad the last two dims of ``x`` by ``pad`` (any pad; = ``F.pad(mode='reflect')`` for small ones)."""
    h, w = x.shape[-2:]
    x = x.index_select(-1, _reflect_index(w, pad, x.device))
    return x.index_select(-2, _reflect_index(h, pad, x.device))


def _support_ring(kernel: torch.Tensor) -> int:
    """Number of all-zero outer rings of a square kernel (kernels are zero-padded to 21)."""
    k = kernel.shape[-1]
    nz = torch.nonzero(kernel)
    if nz.numel() == 0:
        return 0
    return int(min(nz[:, 0].min(), nz[:, 1].min(), k - 1 - nz[:, 0].max(), k - 1 - nz[:, 1].max()))


def filter2d(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate each image with its own kernel, reflect-padded borders (BasicSR ``filter2D``).

    x: B×C×H×W; kernels: B×k×k (k odd) or k×k for all. Each kernel's zero rings are trimmed
    (that changes nothing but the cost), and images whose kernels have the same support run as
    one grouped convolution — so an image's result does not depend on what else is in the batch.
    """
    if kernels.dim() == 2:
        kernels = kernels.expand(x.shape[0], -1, -1)
    rings = [_support_ring(k) for k in kernels]
    out = torch.empty_like(x)
    for ring in sorted(set(rings)):
        idx = [i for i, r in enumerate(rings) if r == ring]
        k = kernels.shape[-1] - 2 * ring
        ker = kernels[idx, ring : ring + k, ring : ring + k].to(x)
        xs = x[idx]
        b, c, h, w = xs.shape
        padded = reflect_pad(xs, k // 2).reshape(1, b * c, h + k - 1, w + k - 1)
        weight = ker.repeat_interleave(c, dim=0).unsqueeze(1)  # (b·c)×1×k×k
        out[idx] = F.conv2d(padded, weight, groups=b * c).view(b, c, h, w)
    return out


def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _separable_blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    r = g.numel() // 2
    y = reflect_pad(x, r).reshape(b * c, 1, h + 2 * r, w + 2 * r)
    g = g.to(x)
    y = F.conv2d(y, g.view(1, 1, 1, -1))
    y = F.conv2d(y, g.view(1, 1, -1, 1))
    return y.view(b, c, h, w)


def usm_sharpen(
    x: torch.Tensor, weight: float = 0.5, radius: int = 50, threshold: float = 10.0
) -> torch.Tensor:
    """Unsharp masking as BasicSR ``USMSharp`` (B×C×H×W in [0, 1] → same).

    sharp = I + w (I − G∗I), clipped; mask = |I − G∗I|·255 > threshold, softened by G; out =
    mask·sharp + (1 − mask)·I. G is OpenCV's ``getGaussianKernel(radius|1, 0)``: size
    ``radius`` rounded up to odd, σ = 0.3((size − 1)/2 − 1) + 0.8.
    """
    size = radius + 1 if radius % 2 == 0 else radius
    g = _gaussian_1d(size, 0.3 * ((size - 1) * 0.5 - 1) + 0.8)
    residual = x - _separable_blur(x, g)
    mask = (residual.abs() * 255 > threshold).to(x.dtype)
    soft_mask = _separable_blur(mask, g)
    sharp = torch.clamp(x + weight * residual, 0, 1)
    return soft_mask * sharp + (1 - soft_mask) * x


def add_noise(x: torch.Tensor, noise: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
    """Add the Gaussian or Poisson noise described by ``noise`` to a 1×3×h×w image and clamp to [0, 1].

    Random tensors come from ``generator`` (CPU) and are moved to ``x``'s device.
    Gaussian (``generate_gaussian_noise_pt``): n ~ N(0, 1)·σ/255, one field for all channels when
    grey. Poisson (``generate_poisson_noise_pt``): on the 8-bit-rounded image (its luma when grey),
    ``v = 2^⌈log₂ #unique values⌉``, noise = (Poisson(v·I)/v − I)·scale.
    """
    _, c, h, w = x.shape
    if noise["kind"] == "gaussian":
        field_ = torch.randn((1, 1 if noise["gray"] else c, h, w), generator=generator)
        n = (field_ * noise["sigma"] / 255.0).to(device=x.device, dtype=x.dtype)
    elif noise["kind"] == "poisson":
        src = _rgb_to_gray(x) if noise["gray"] else x
        src = torch.clamp((src * 255.0).round(), 0, 255) / 255.0
        vals = 2.0 ** math.ceil(math.log2(torch.unique(src).numel()))
        counts = torch.poisson((src * vals).cpu(), generator=generator).to(x.device)
        n = (counts / vals - src) * noise["scale"]
    else:
        raise ValueError(f"unknown noise kind {noise['kind']!r}")
    return torch.clamp(x + n.expand_as(x), 0, 1)


def _rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.functional import rgb_to_grayscale

    return rgb_to_grayscale(x, num_output_channels=1)


def _codec_quality(quality: float) -> int:
    """Nearest integer JPEG quality in [1, 100] (libjpeg takes integers; DiffJPEG took floats)."""
    return int(min(100, max(1, math.floor(quality + 0.5))))


def _jpeg_cpu(x8: torch.Tensor, quality: int) -> torch.Tensor:
    from PIL import Image

    buf = io.BytesIO()
    # Pillow's defaults = libjpeg's: 4:2:0 chroma subsampling, baseline, standard tables scaled by quality.
    Image.fromarray(x8.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as img:
        return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)


_CUDA_JPEG_OK = True


def _jpeg_cuda(x8: torch.Tensor, quality: int) -> torch.Tensor:
    """nvJPEG round trip via torchvision; falls back to the CPU codec when unavailable."""
    global _CUDA_JPEG_OK
    if _CUDA_JPEG_OK:
        try:
            import torchvision.io as tvio

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torchvision ≥0.29 points to torchcodec
                data = tvio.encode_jpeg(x8.contiguous(), quality=quality)
                return tvio.decode_jpeg(data.cpu(), mode=tvio.ImageReadMode.RGB, device=x8.device)
        except (RuntimeError, NotImplementedError) as err:
            _CUDA_JPEG_OK = False
            warnings.warn(
                f"GPU JPEG (nvJPEG) unavailable ({str(err).splitlines()[0]}); using the CPU codec",
                RuntimeWarning,
                stacklevel=2,
            )
    return _jpeg_cpu(x8.cpu(), quality).to(x8.device)


def jpeg_roundtrip(x: torch.Tensor, quality: float) -> torch.Tensor:
    """Encode and decode each image of a B×3×H×W batch in [0, 1] as JPEG at ``quality`` (1–100).

    The input is clamped and rounded to 8 bits first (a codec takes bytes); the output lies on the
    8-bit grid, in ``x``'s dtype and on ``x``'s device.
    """
    q = _codec_quality(quality)
    x8 = torch.clamp((x * 255.0).round(), 0, 255).to(torch.uint8)
    codec = _jpeg_cuda if x.is_cuda else (lambda im, qq: _jpeg_cpu(im.cpu(), qq))
    out = torch.stack([codec(im, q) for im in x8]).to(device=x.device)
    return out.to(x.dtype) / 255.0


def _interpolate(
    x: torch.Tensor, mode: str, *, size: tuple[int, int] | None = None, scale_factor: float | None = None
) -> torch.Tensor:
    """``F.interpolate`` as upstream: align_corners=False for (bi)linear/cubic, no antialias."""
    align = None if mode == "area" else False
    return F.interpolate(x, size=size, scale_factor=scale_factor, mode=mode, align_corners=align)


# ----------------------------------------------------------------------------- parameter sampling


def _uniform(rng: np.random.Generator, r: Sequence[float]) -> float:
    return float(rng.uniform(r[0], r[1]))


def _sample_resize(
    rng: np.random.Generator, py_rng: random.Random, prob: Sequence[float], scale_range: Sequence[float]
) -> dict[str, Any]:
    """Up with U(1, high), down with U(low, 1), or keep (scale 1); mode uniform over area/bilinear/bicubic."""
    direction = py_rng.choices(RESIZE_DIRECTIONS, weights=list(prob))[0]
    if direction == "up":
        scale = _uniform(rng, (1.0, scale_range[1]))
    elif direction == "down":
        scale = _uniform(rng, (scale_range[0], 1.0))
    else:
        scale = 1.0
    return {"direction": direction, "scale": scale, "mode": py_rng.choice(RESIZE_MODES)}


def _sample_noise(
    rng: np.random.Generator,
    gaussian_prob: float,
    sigma_range: Sequence[float],
    poisson_range: Sequence[float],
    gray_prob: float,
) -> dict[str, Any]:
    """Gaussian (σ ~ U(noise_range), grey levels) with ``gaussian_prob``, else Poisson (scale ~ U)."""
    if rng.uniform() < gaussian_prob:
        return {
            "kind": "gaussian",
            "sigma": _uniform(rng, sigma_range),
            "gray": bool(rng.uniform() < gray_prob),
        }
    return {"kind": "poisson", "scale": _uniform(rng, poisson_range), "gray": bool(rng.uniform() < gray_prob)}


# ----------------------------------------------------------------------------- the degradation


class RealESRGANDegradation:
    """Seeded, batched Real-ESRGAN second-order degradation (module docstring for the contract).

    >>> deg = RealESRGANDegradation.from_config("conf/degradation/stablesr.yaml")
    >>> lr, params = deg.degrade(hr, scale=4, seed=deg.seed_for("div2k_val", "0801_pch_00001"))
    """

    def __init__(self, cfg: RealESRGANConfig | Mapping[str, Any] | str | os.PathLike | None = None) -> None:
        self.cfg = load_config(cfg if cfg is not None else RealESRGANConfig())

    @classmethod
    def from_config(
        cls, cfg: RealESRGANConfig | Mapping[str, Any] | str | os.PathLike
    ) -> RealESRGANDegradation:
        """Build from a ``conf/degradation/*.yaml`` node, mapping, dataclass or YAML path."""
        return cls(cfg)

    # ------------------------------------------------------------------ identity
    def seed_for(self, dataset_id: str, name: str) -> int:
        """The per-image seed of ``name`` in ``dataset_id`` with this config's base seed."""
        return degradation_seed(dataset_id, name, self.cfg.seed)

    def config_hash(self, scale: int | None = None) -> str:
        """Stable 16-hex-digit hash of the full parameter set (incl. base seed) and ``CODE_VERSION``.

        Pass ``scale`` when one cache folder must not be shared between scales.
        """
        payload = {"code_version": CODE_VERSION, "config": dataclasses.asdict(self.cfg)}
        if scale is not None:
            payload["scale"] = int(scale)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """Facts for the manifest: parameters, hash, code/library versions, the seed rule."""
        import PIL
        from PIL import features

        return {
            "name": self.cfg.name,
            "profile": self.cfg.profile,
            "config": dataclasses.asdict(self.cfg),
            "config_hash": self.config_hash(),
            "code_version": CODE_VERSION,
            "seed_rule": "sha256(dataset_id \\0 stem \\0 base_seed)[:8], big-endian",
            "jpeg_codec": f"Pillow {PIL.__version__} / libjpeg-turbo {features.version('libjpeg_turbo')} (CPU); "
            "torchvision nvJPEG (CUDA)",
            "torch": torch.__version__,
            "numpy": np.__version__,
            "upstream": "XPixelGroup/BasicSR realesrgan_model.py (DiffJPEG replaced by a real JPEG codec)",
        }

    # ------------------------------------------------------------------ sampling
    def sample_params(self, seed: int) -> dict[str, Any]:
        """Draw every random choice for one image (JSON-able dict) from RNGs seeded with ``seed``.

        Keys: seed; kernel1; resize1 {direction, scale, mode}; noise1 {kind, sigma|scale, gray};
        jpeg1 (quality); second_order; kernel2 (None: no second blur); resize2; noise2 (None when
        the second order is skipped); final_order; final_resize_mode; final_sinc; jpeg2.
        Kernels are specs (``srbench.data.kernels``).
        """
        c = self.cfg
        seed = int(seed)
        rng, py_rng = np.random.default_rng(seed), random.Random(seed)
        p: dict[str, Any] = {"seed": seed}
        # First degradation.
        p["kernel1"] = sample_blur_kernel(
            rng,
            py_rng,
            sizes=c.kernel_sizes,
            sinc_prob=c.sinc_prob,
            kernel_list=c.kernel_list,
            kernel_prob=c.kernel_prob,
            sigma_range=c.blur_sigma,
            betag_range=c.betag_range,
            betap_range=c.betap_range,
        )
        p["resize1"] = _sample_resize(rng, py_rng, c.resize_prob, c.resize_range)
        p["noise1"] = _sample_noise(
            rng, c.gaussian_noise_prob, c.noise_range, c.poisson_scale_range, c.gray_noise_prob
        )
        p["jpeg1"] = _uniform(rng, c.jpeg_range)
        # Second degradation.
        p["second_order"] = bool(rng.uniform() < c.second_order_prob)
        p["kernel2"] = p["resize2"] = p["noise2"] = None
        if p["second_order"]:
            if rng.uniform() < c.second_blur_prob:
                p["kernel2"] = sample_blur_kernel(
                    rng,
                    py_rng,
                    sizes=c.kernel_sizes2,
                    sinc_prob=c.sinc_prob2,
                    kernel_list=c.kernel_list2,
                    kernel_prob=c.kernel_prob2,
                    sigma_range=c.blur_sigma2,
                    betag_range=c.betag_range2,
                    betap_range=c.betap_range2,
                )
            p["resize2"] = _sample_resize(rng, py_rng, c.resize_prob2, c.resize_range2)
            p["noise2"] = _sample_noise(
                rng, c.gaussian_noise_prob2, c.noise_range2, c.poisson_scale_range2, c.gray_noise_prob2
            )
        # Final step: [resize back + sinc] and JPEG in random order (½ each).
        p["final_order"] = FINAL_ORDERS[0] if rng.uniform() < 0.5 else FINAL_ORDERS[1]
        p["final_resize_mode"] = py_rng.choice(RESIZE_MODES)
        p["final_sinc"] = sample_final_sinc(
            rng, py_rng, sizes=c.final_sinc_kernel_sizes, prob=c.final_sinc_prob
        )
        p["jpeg2"] = _uniform(rng, c.jpeg_range2)
        return p

    # ------------------------------------------------------------------ application
    def apply(
        self, hr: torch.Tensor, params: Sequence[Mapping[str, Any]] | Mapping[str, Any], scale: int
    ) -> torch.Tensor:
        """Degrade a batch: B×3×H×W float in [0, 1] (H, W divisible by ``scale``) → B×3×H/s×W/s.

        ``params``: one dict per image (or one dict for all) from :meth:`sample_params`. Runs on
        ``hr``'s device; the output is float32 on the 8-bit grid (k/255). USM and the first blur
        run batched; the rest runs per image, since image sizes diverge after the first resize.
        """
        plist = self._check(hr, params, scale)
        x = hr.to(torch.float32)
        if self.cfg.use_usm:
            x = usm_sharpen(x, self.cfg.usm_weight, self.cfg.usm_radius, self.cfg.usm_threshold)
        kernels = torch.from_numpy(np.stack([build_kernel(p["kernel1"]) for p in plist])).to(x)
        x = filter2d(x, kernels)
        out = torch.cat([self._rest(x[i : i + 1], p, scale) for i, p in enumerate(plist)])
        # Clamp and round to 8 bits (realesrgan_model.py: "clamp and round").
        return torch.clamp((out * 255.0).round(), 0, 255) / 255.0

    def _rest(self, x: torch.Tensor, p: Mapping[str, Any], scale: int) -> torch.Tensor:
        """Everything after the first blur, for one 1×3×H×W image."""
        ori_h, ori_w = x.shape[-2:]
        generator = torch.Generator("cpu").manual_seed(_torch_seed(int(p["seed"])))
        # First degradation: resize by a factor (scale_factor, as upstream), noise, JPEG.
        x = _interpolate(x, p["resize1"]["mode"], scale_factor=p["resize1"]["scale"])
        x = add_noise(x, p["noise1"], generator)
        x = jpeg_roundtrip(x, p["jpeg1"])
        # Second degradation: blur2, resize to (H/s·scale2, W/s·scale2), noise2.
        if p["second_order"]:
            if p["kernel2"] is not None:
                x = filter2d(x, torch.from_numpy(build_kernel(p["kernel2"])).to(x))
            s2 = p["resize2"]["scale"]
            size = (max(1, int(ori_h / scale * s2)), max(1, int(ori_w / scale * s2)))
            x = _interpolate(x, p["resize2"]["mode"], size=size)
            x = add_noise(x, p["noise2"], generator)
        # Final: [resize back to H/s + sinc] then JPEG2, or JPEG2 then [resize back + sinc].
        if p["final_order"] == FINAL_ORDERS[0]:
            x = self._resize_back_and_sinc(x, p, (ori_h // scale, ori_w // scale))
            x = jpeg_roundtrip(x, p["jpeg2"])
        else:
            x = jpeg_roundtrip(x, p["jpeg2"])
            x = self._resize_back_and_sinc(x, p, (ori_h // scale, ori_w // scale))
        return x

    @staticmethod
    def _resize_back_and_sinc(x: torch.Tensor, p: Mapping[str, Any], size: tuple[int, int]) -> torch.Tensor:
        x = _interpolate(x, p["final_resize_mode"], size=size)
        if p["final_sinc"]["type"] == "delta":  # the pulse kernel is the identity
            return x
        return filter2d(x, torch.from_numpy(build_kernel(p["final_sinc"])).to(x))

    def _check(self, hr: torch.Tensor, params: Any, scale: int) -> list[Mapping[str, Any]]:
        if hr.dim() != 4 or hr.shape[1] != 3 or not hr.is_floating_point():
            raise ValueError(
                f"RealESRGANDegradation expects a float B×3×H×W batch, got {tuple(hr.shape)} {hr.dtype}"
            )
        if int(scale) != scale or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}")
        h, w = hr.shape[-2:]
        if h % scale or w % scale:
            raise ValueError(f"HR size {h}×{w} is not divisible by scale {scale}; modcrop the HR first")
        if math.floor(min(h, w) * self.cfg.resize_range[0]) < 1:
            raise ValueError(f"HR size {h}×{w} is too small for resize_range {self.cfg.resize_range}")
        lo, hi = float(hr.min()), float(hr.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"HR values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
        plist = [params] * hr.shape[0] if isinstance(params, Mapping) else list(params)
        if len(plist) != hr.shape[0]:
            raise ValueError(f"got {len(plist)} parameter dicts for a batch of {hr.shape[0]} images")
        return plist

    def degrade(self, hr: torch.Tensor, scale: int, seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Degrade one 3×H×W image in [0, 1]: ``(lr 3×H/s×W/s on the 8-bit grid, params)``."""
        params = self.sample_params(seed)
        return self.apply(hr.unsqueeze(0), [params], scale)[0], params
