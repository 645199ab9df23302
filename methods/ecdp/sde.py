"""ECDP's VP-SDE, hybrid ε/x₀ parametrization and probability-flow ODE right-hand side.

Notation (see README.md for the equation table):

* s ∈ [0, 1] continuous diffusion time; the network sees τ = 300·s ("network time", authors'
  ``len(alpha_bars)`` = 300). Sampling integrates τ from 300 down to 0.1 (s = 1/3000).
* Data x₀ = 5·(HR − B(LR)) — the residual over the bicubic upsample, divided by the residual
  std σ_data = 0.2 the paper assumes (the forward SDE's mean μ(y) = B(LR), variance σ²(y)).
* VP-SDE (Song et al. 2021, eq. 11): dx = −½β(s)x ds + √β(s) dw, β(s) = β_min + (β_max−β_min)s,
  β_min = 0.1, β_max = 20. Its perturbation kernel (Song et al. 2021, App. B):
  x_s = √ᾱ(s)·x₀ + √(1−ᾱ(s))·ε, ᾱ(s) = exp(−β_min·s − ½(β_max−β_min)s²).
* Hybrid parametrization (ECDP paper, "hybrid parametrization"; λ(s) = ᾱ(s), read from the
  authors' ``Diffusion.ode_func``): ε_final = ᾱ·ε̂ + (1−ᾱ)·(x − √ᾱ·x̂₀)/√(1−ᾱ).
* Probability flow (Song et al. 2021, eq. 13) with score ∇log p = −ε_final/√(1−ᾱ), in τ units:
  dx/dτ = (1/300)·[−½β(s)·x + ½β(s)·ε_final/√(1−ᾱ(s))].

The schedule is evaluated in float64 (the state stays in its own dtype): near the end of the
solve 1−ᾱ ≈ 3.3·10⁻⁵, which float32 ``1 − exp(·)`` only gets to ~0.4 % (we use ``expm1``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

#: (x_τ, τ) → (ε̂, x̂₀): the two heads of the score network, or an analytic stand-in.
HeadsFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class VPSchedule:
    """Linear-β VP schedule of ECDP (``lib/model/diffusion.py``: b_min 0.1, b_max 20, t_max 300)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    #: network time of s = 1 (the authors' discrete table length)
    tau_max: float = 300.0

    def s_of_tau(self, tau: torch.Tensor | float) -> torch.Tensor:
        return torch.as_tensor(tau, dtype=torch.float64) / self.tau_max

    def beta(self, s: torch.Tensor) -> torch.Tensor:
        """β(s) = β_min + (β_max − β_min)·s (Song et al. 2021, eq. 11 / App. B)."""
        return self.beta_min + (self.beta_max - self.beta_min) * s

    def log_alpha_bar(self, s: torch.Tensor) -> torch.Tensor:
        """log ᾱ(s) = −∫₀ˢ β = −(β_min·s + ½(β_max − β_min)·s²)."""
        return -(self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s * s)

    def alpha_bar(self, s: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_alpha_bar(s))

    def one_minus_alpha_bar(self, s: torch.Tensor) -> torch.Tensor:
        """1 − ᾱ(s) without cancellation (−expm1(log ᾱ))."""
        return -torch.expm1(self.log_alpha_bar(s))

    def discrete_tables(self) -> dict[str, torch.Tensor]:
        """The authors' ``betas``/``alphas``/``alpha_bars`` buffers (float32, length 300).

        Computed exactly as ``Diffusion.__init__`` does (in float32), because these buffers are
        part of their state dict; the continuous-time sampler never reads them.
        """
        n = int(self.tau_max)
        ts = torch.arange(0, n + 1) / n
        ab = torch.exp(-ts * (ts * (self.beta_max - self.beta_min) / 2 + self.beta_min))
        alphas = ab[1:] / ab[:-1]
        return {"betas": 1 - alphas, "alphas": alphas, "alpha_bars": ab[1:]}


def hybrid_epsilon(
    x_t: torch.Tensor,
    eps_hat: torch.Tensor,
    x0_hat: torch.Tensor,
    alpha_bar: torch.Tensor,
    one_minus_alpha_bar: torch.Tensor,
) -> torch.Tensor:
    """ECDP's hybrid ε prediction, λ(s) = ᾱ(s):  ε_final = ᾱ·ε̂ + (1−ᾱ)·(x_t − √ᾱ·x̂₀)/√(1−ᾱ).

    Written as ᾱ·ε̂ + √(1−ᾱ)·(x_t − √ᾱ·x̂₀) (same expression; the authors compute it through
    v = √ᾱ·ε̂ − √(1−ᾱ)·x̂₀, ε_final = √(1−ᾱ)·x_t + √ᾱ·v). At low noise (ᾱ → 1) the ε-head
    dominates, at high noise (ᾱ → 0) the x₀-head. When both heads are exact (ε̂ = ε, x̂₀ = x₀ of
    the same x_t) the result is ε for every ᾱ. ``alpha_bar``/``one_minus_alpha_bar``: scalars or
    tensors broadcastable to x_t.
    """
    return alpha_bar * eps_hat + one_minus_alpha_bar.sqrt() * (x_t - alpha_bar.sqrt() * x0_hat)


def pf_ode_rhs(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    beta: torch.Tensor,
    one_minus_alpha_bar: torch.Tensor,
    tau_max: float,
) -> torch.Tensor:
    """dx/dτ of the VP probability flow (Song et al. 2021, eq. 13) with score −ε/√(1−ᾱ).

    dx/ds = −½β(s)·x − ½β(s)·∇log p = −½β·x + ½β·ε/√(1−ᾱ);  dτ = τ_max·ds.
    """
    return (-0.5 * beta * x_t + 0.5 * beta * eps / one_minus_alpha_bar.sqrt()) / tau_max


class ProbabilityFlowODE(nn.Module):
    """f(τ, x) = dx/dτ for torchdiffeq, from the two heads of a score network.

    ``heads(x, τ)`` returns (ε̂, x̂₀); τ is passed as a 1-element tensor (broadcast over the
    batch, as in the authors' ``ode_func``). Schedule coefficients are computed in float64 and
    cast to the state's dtype.
    """

    def __init__(self, heads: HeadsFn, schedule: VPSchedule = VPSchedule()) -> None:
        super().__init__()
        self.heads = heads
        self.schedule = schedule

    def forward(self, tau: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        sch = self.schedule
        s = tau.detach().to(torch.float64) / sch.tau_max
        alpha_bar = sch.alpha_bar(s).to(x.dtype)
        one_minus = sch.one_minus_alpha_bar(s).to(x.dtype)
        beta = sch.beta(s).to(x.dtype)
        eps_hat, x0_hat = self.heads(x, tau.reshape(1).to(x.dtype))
        eps = hybrid_epsilon(x, eps_hat.to(x.dtype), x0_hat.to(x.dtype), alpha_bar, one_minus)
        return pf_ode_rhs(x, eps, beta, one_minus, sch.tau_max)


def perturb(x0: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Forward marginal sample x_s = √ᾱ·x₀ + √(1−ᾱ)·ε (Song et al. 2021, App. B); ᾱ: (B,) or scalar."""
    ab = alpha_bar.reshape(-1, *([1] * (x0.dim() - 1))) if alpha_bar.dim() else alpha_bar
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps
