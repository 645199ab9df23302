"""IDM diffusion (spec §2): SR3 linear schedule, continuous γ = √ᾱ conditioning, the authors'
DDPM sampler (x̂0 clamp) and their DDIM path (η = 0, stride 10) — batched, one generator per image.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from srbench.nn.noise import randn_per_image

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, gamma[B]) -> eps


class Schedule:
    """β_k = linspace(1e-6, 1e-2, 2000) in float64; coefficients cast to float32 like the authors' buffers."""

    def __init__(self, n_steps: int = 2000, beta_start: float = 1e-6, beta_end: float = 1e-2):
        b = torch.linspace(beta_start, beta_end, n_steps, dtype=torch.float64)
        ac = torch.cumprod(1 - b, 0)
        ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        self.n = n_steps
        self.betas = b
        self.alphas_cumprod = ac
        # γ grid with γ_0 = 1 (the authors' sqrt_alphas_cumprod_prev, length n+1)
        self.gamma_grid = torch.sqrt(torch.cat([torch.ones(1, dtype=torch.float64), ac]))
        f = lambda t: t.float()
        self.sqrt_recip_ac = f(torch.sqrt(1 / ac))
        self.sqrt_recipm1_ac = f(torch.sqrt(1 / ac - 1))
        var = b * (1 - ac_prev) / (1 - ac)
        self.post_log_var = f(torch.log(torch.clamp(var, min=1e-20)))
        self.post_c1 = f(b * torch.sqrt(ac_prev) / (1 - ac))  # Ho et al. eq. 7
        self.post_c2 = f((1 - ac_prev) * torch.sqrt(1 - b) / (1 - ac))
        # DDIM path: the authors' compute_alpha = cumprod of the float32 betas (ᾱ_{-1} = 1)
        b32 = torch.cat([torch.zeros(1), b.float()])
        self.ddim_ac = torch.cumprod(1 - b32, 0)  # index i+1 ↔ ᾱ_i

    def gamma(self, i: int, batch: int, device=None) -> torch.Tensor:
        return torch.full((batch,), float(self.gamma_grid[i + 1]), device=device)

    def sample_train_gamma(self, batch: int, generator=None) -> torch.Tensor:
        """One t ~ U{1..n} per batch, per-sample γ ~ U[γ_t, γ_{t−1}] (spec §2)."""
        t = int(torch.randint(1, self.n + 1, (1,), generator=generator))
        lo, hi = float(self.gamma_grid[t]), float(self.gamma_grid[t - 1])
        return (lo + (hi - lo) * torch.rand(batch, generator=generator, dtype=torch.float64)).float()


def _randn(shape, generators, device, dtype):
    if generators is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return randn_per_image(generators, shape[1:], device=device, dtype=dtype)


def ddpm_step(s: Schedule, x: torch.Tensor, i: int, eps: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """x_{i−1} = c1·clip(x̂0) + c2·x + σ̃·z, x̂0 = x/√ᾱ_i − √(1/ᾱ_i − 1)·ε̂ (Ho et al. eqs. 6–7, 15)."""
    x0 = (s.sqrt_recip_ac[i] * x - s.sqrt_recipm1_ac[i] * eps).clamp(-1, 1)
    mean = s.post_c1[i] * x0 + s.post_c2[i] * x
    if i == 0 or noise is None:
        return mean
    return mean + noise * torch.exp(0.5 * s.post_log_var[i])


@torch.no_grad()
def ddpm_sample(eps_fn: EpsFn, s: Schedule, shape, generators=None, device="cpu", dtype=torch.float32,
                steps: Sequence[int] | None = None, x_T: torch.Tensor | None = None,
                noises: Callable[[int], torch.Tensor] | None = None) -> torch.Tensor:
    """The authors' p_sample_loop (default all 2000 steps, i = n−1 … 0). `steps` runs a prefix only
    (parity checks); `noises(i)` injects the per-step z."""
    b = shape[0]
    x = x_T if x_T is not None else _randn(shape, generators, device, dtype)
    for i in (steps if steps is not None else range(s.n - 1, -1, -1)):
        eps = eps_fn(x, s.gamma(i, b, x.device).to(dtype))
        z = None if i == 0 else (noises(i) if noises is not None else _randn(shape, generators, device, dtype))
        x = ddpm_step(s, x, i, eps, z)
    return x


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, s: Schedule, shape, generators=None, device="cpu", dtype=torch.float32,
                stride: int = 10, x_T: torch.Tensor | None = None) -> torch.Tensor:
    """The authors' generalized_steps: i = n−stride … stride, j = i − stride (last j = 0), η = 0,
    no clamp; 199 NFE for n=2000 (Song et al. eq. 12 with σ = 0)."""
    b = shape[0]
    x = x_T if x_T is not None else _randn(shape, generators, device, dtype)
    seq = list(range(0, s.n, stride))
    nxt = [-1] + seq[:-1]
    for i, j in zip(reversed(seq), reversed(nxt)):
        if i == 0:
            break
        a_t, a_n = s.ddim_ac[i + 1].to(x.device, dtype), s.ddim_ac[j + 1].to(x.device, dtype)
        eps = eps_fn(x, s.gamma(i, b, x.device).to(dtype))
        x0 = (x - eps * (1 - a_t).sqrt()) / a_t.sqrt()
        x = a_n.sqrt() * x0 + (1 - a_n).sqrt() * eps
    return x


def ddim_nfe(n: int = 2000, stride: int = 10) -> int:
    return len(range(stride, n, stride))


def eps_l1_loss(eps_pred: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return (eps_pred - eps).abs().mean()
