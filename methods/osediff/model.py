"""The OSEDiff generator: LoRA VAE encoder → LoRA UNet at t = 999 → one DDPM x0 step → frozen decoder.

Paper eq. (3)-(4) / ``osediff.py:117-129,319-407``:

    z_L = 0.18215 · E_θ(x_L),   ε = ε_θ(z_L; 999, c_y),
    ẑ_H = (z_L − √(1 − ᾱ_999) · ε) / √ᾱ_999,   x̂_H = D(ẑ_H / 0.18215).clamp(−1, 1)

With the SD schedule (scaled-linear 0.00085..0.012, 1000 steps) ᾱ_999 ≈ 0.0046601. This is
exactly diffusers' ``DDPMScheduler.step`` after ``set_timesteps(1)`` (prev t = −1 → ᾱ_prev = 1)
without its 1e-10-scaled variance noise, which we drop (it only consumes RNG).
"""

from __future__ import annotations

import torch

__all__ = ["OSEDIFF_TIMESTEP", "OSEDiffGenerator", "one_step_x0"]

OSEDIFF_TIMESTEP = 999


def one_step_x0(z: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor | float) -> torch.Tensor:
    """ε-prediction → x0 at one timestep, in fp32 as the authors' scheduler (fp32 ᾱ)."""
    a = torch.as_tensor(alpha_bar, dtype=torch.float32, device=z.device)
    return (z.float() - (1 - a).sqrt() * eps.float()) / a.sqrt()


class OSEDiffGenerator(torch.nn.Module):
    """Generator on diffusers parts that already carry the OSEDiff adapters (see :mod:`.checkpoint`).

    ``forward`` takes images in [-1, 1] and prompt embeddings, returns images in [-1, 1]
    and the predicted latent ``ẑ_H`` (needed by the VSD loss in training).
    ``eps_fn`` lets the caller swap the UNet call (latent tiling) without touching the math.
    """

    def __init__(self, unet: torch.nn.Module, vae: torch.nn.Module, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.unet, self.vae = unet, vae
        self.register_buffer("alpha_bar", alphas_cumprod[OSEDIFF_TIMESTEP].float().clone(), persistent=False)

    @property
    def scaling(self) -> float:
        return float(self.vae.config.scaling_factor)

    def encode(
        self, x: torch.Tensor, *, sample: bool = True, generator: torch.Generator | list[torch.Generator] | None = None
    ) -> torch.Tensor:
        posterior = self.vae.encode(x.to(self.vae.dtype)).latent_dist
        z = posterior.sample(generator=generator) if sample else posterior.mode()
        return z * self.scaling

    def eps(self, z: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        t = torch.full((z.shape[0],), OSEDIFF_TIMESTEP, device=z.device, dtype=torch.long)
        return self.unet(z.to(self.unet.dtype), t, encoder_hidden_states=text.to(self.unet.dtype)).sample

    def decode(self, z0: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z0.to(self.vae.dtype) / self.scaling).sample.clamp(-1, 1)

    def forward(
        self,
        x: torch.Tensor,
        text: torch.Tensor,
        *,
        sample: bool = True,
        generator: torch.Generator | list[torch.Generator] | None = None,
        eps_fn=None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x, sample=sample, generator=generator)
        if text.shape[0] == 1 and z.shape[0] > 1:
            text = text.expand(z.shape[0], -1, -1)
        eps = (eps_fn or self.eps)(z, text)
        z0 = one_step_x0(z, eps, self.alpha_bar)
        return self.decode(z0), z0
