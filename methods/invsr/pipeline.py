"""One InvSR pipeline call on a batch of LR patches (spec §3.3; the authors' ``PIPE:1039-1148``).

    y ∈ [0,1]^{B×3×h×w}  →  y↑ = 2·bicubic×4(y) − 1            (fp, no antialias, no clamp: pitfall 5)
    ε̂  = μ_φ(y, t₁) + σ_φ(y, t₁)·n₁                              noise predictor on the LR patch
    z₀ = s_f·(μ_E(y↑) + σ_E(y↑)·n₂)                              VAE posterior draw, s_f = 0.18215
    x  = z₀ + σ(t₁)·ε̂ ;  S deterministic steps (:mod:`.sampler`) ;  out = (D(x/s_f) + 1)/2 clamped

The two standard-normal draws ``n₁`` (predictor) and ``n₂`` (VAE posterior) are passed in, so the
caller decides where they come from (per-image generators in the adapter, injected tensors in the
parity benchmark); ``None`` takes the posterior means (the ``mode`` option).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .predictor import NoisePredictor
from .sampler import InvSRSampler

__all__ = ["InvSRPipeline", "posterior_draw"]


def posterior_draw(moments: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """``μ + exp(½·clamp(logvar, −30, 20))·n`` from 2C-channel moments (diffusers' DiagonalGaussian)."""
    mean, logvar = moments.chunk(2, dim=1)
    if noise is None:
        return mean
    std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
    return mean + std * noise.to(device=mean.device, dtype=mean.dtype)


class InvSRPipeline:
    """Noise predictor + SD-Turbo VAE/UNet + the fixed prompt embedding, for LR patches."""

    def __init__(
        self,
        predictor: NoisePredictor,
        unet: torch.nn.Module,
        vae: torch.nn.Module,
        text: torch.Tensor,
        sampler: InvSRSampler,
        *,
        sf: int = 4,
        eps_fn: Callable | None = None,
    ) -> None:
        self.predictor, self.unet, self.vae, self.sampler, self.sf = predictor, unet, vae, sampler, sf
        self.text = text  # 1×77×D, the encoded fixed prompt (computed once, not per call)
        self.eps_fn = eps_fn
        self.scaling = float(vae.config.scaling_factor)

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def noise_shapes(self, h: int, w: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Shapes (C, h', w') of n₁ (predictor latent) and n₂ (VAE latent) for an h×w LR patch."""
        down = 2 ** (len(self.predictor.config.block_out_channels) - 1)
        vae_sf = 2 ** (len(self.vae.config.block_out_channels) - 1)
        c = int(self.vae.config.latent_channels)
        return (self.predictor.config.latent_channels, h // down, w // down), (
            c,
            h * self.sf // vae_sf,
            w * self.sf // vae_sf,
        )

    def predictor_moments(self, y: torch.Tensor) -> torch.Tensor:
        """(μ, logvar) of ε̂ at t₁. fp32 weights; under autocast at fp16/bf16 as the authors (PIPE:1051)."""
        dtype, dev = self.dtype, y.device.type
        with torch.autocast(dev, dtype=dtype, enabled=dtype != torch.float32 and dev in ("cuda", "cpu")):
            return self.predictor.encoder(2.0 * y - 1.0, self.sampler.timesteps[0])  # center_input_sample

    def start_noise(self, y: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """ε̂ = μ + σ·n₁ (or μ when ``noise`` is None)."""
        return posterior_draw(self.predictor_moments(y), noise)

    @torch.inference_mode()
    def __call__(
        self, y: torch.Tensor, pred_noise: torch.Tensor | None, vae_noise: torch.Tensor | None
    ) -> torch.Tensor:
        """SR patches B×3×(sf·h)×(sf·w) in [0, 1] (float32) from LR patches ``y`` B×3×h×w in [0, 1]."""
        b, _, h, w = y.shape
        dtype = self.dtype
        y = y.to(device=self.device, dtype=dtype)
        y_up = 2.0 * F.interpolate(y, size=(self.sf * h, self.sf * w), mode="bicubic") - 1.0
        eps_hat = self.start_noise(y, pred_noise)
        z0 = self.scaling * posterior_draw(self.vae.encode(y_up).latent_dist.parameters, vae_noise)
        x = self.sampler.start(z0.to(dtype), eps_hat)
        text = self.text.to(device=self.device, dtype=dtype).expand(b, -1, -1)
        x = self.sampler(x, text, self.unet, eps_fn=self.eps_fn)
        img = self.vae.decode((x / self.scaling).to(dtype)).sample
        return (img.float() / 2 + 0.5).clamp(0, 1)
