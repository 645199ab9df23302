"""Solve ECDP's probability-flow ODE with torchdiffeq, counting network evaluations (NFE).

The paper's sampler (authors' ``Diffusion.generate`` with ``use_ode``): ``odeint_adjoint`` with
dopri5, rtol = atol = 1e-3, from network time τ = 300 down to τ = 0.1 (not 0: there is no final
denoising step), ``options={"jump_t": [0.1]}``. The end-point option matters: it clips the last
step to land exactly on τ = 0.1; without it dopri5 may step past the end (to τ < 0, where
1 − ᾱ < 0) and interpolate back. ``jump_t`` also re-evaluates f after that last step, one NFE
that changes nothing for a final point; we use ``step_t`` by default, which clips the same way
without that evaluation (identical output, NFE one lower); ``authors_jump_t=True`` restores it.

dopri5 NFE = 2 (initial f and step-size heuristic) + 6 × (accepted + rejected steps) [+ 1 with
``authors_jump_t``]. Fixed-step solvers (euler, heun, midpoint, rk4) use ``steps`` uniform steps
in τ and NFE = steps × stages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from .errors import ECDPConfigError

#: adaptive torchdiffeq solvers accepted by name
ADAPTIVE_SOLVERS = frozenset({"dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2"})
#: fixed-step solvers: our name → (torchdiffeq name, network evaluations per step)
FIXED_SOLVERS = {"euler": ("euler", 1), "heun": ("heun2", 2), "midpoint": ("midpoint", 2), "rk4": ("rk4", 4)}


class SolverError(ECDPConfigError):
    """Bad ``method.sampler.*`` settings; the message is one line for the user."""


@dataclass(frozen=True)
class SolverSettings:
    """How to integrate the PF-ODE. Defaults are the published ones."""

    method: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-3
    #: number of steps for fixed-step solvers (required for them, ignored by adaptive ones)
    steps: int | None = None
    tau_start: float = 300.0
    tau_end: float = 0.1
    #: also re-evaluate f after landing on tau_end, as the authors' ``jump_t`` does (+1 NFE)
    authors_jump_t: bool = False

    def __post_init__(self) -> None:
        if self.method not in ADAPTIVE_SOLVERS and self.method not in FIXED_SOLVERS:
            known = ", ".join(sorted(ADAPTIVE_SOLVERS | set(FIXED_SOLVERS)))
            raise SolverError(f"ECDP: unknown method.sampler.method={self.method!r}; choose one of: {known}")
        if self.method in FIXED_SOLVERS and (self.steps is None or int(self.steps) < 1):
            raise SolverError(
                f"ECDP: solver {self.method!r} needs method.sampler.steps ≥ 1 (got {self.steps})"
            )
        if not self.tau_start > self.tau_end > 0:
            raise SolverError(
                f"ECDP: need method.sampler.tau_start > tau_end > 0 (got {self.tau_start}, {self.tau_end}); "
                "ᾱ(τ ≤ 0) = 1 makes the score singular"
            )

    @property
    def adaptive(self) -> bool:
        return self.method in ADAPTIVE_SOLVERS

    def describe(self) -> dict:
        d = {"solver": self.method, "tau_start": self.tau_start, "tau_end": self.tau_end}
        d.update({"rtol": self.rtol, "atol": self.atol} if self.adaptive else {"steps": self.steps})
        return d


class CountedODEFunc(nn.Module):
    """Wraps f(τ, x); counts calls (forward solve and, with the adjoint, backward solve).

    Also records the smallest τ at which f was evaluated (the solve must never go below
    ``tau_end``); :class:`AdaptiveCountedODEFunc` adds accepted/rejected step counts.
    """

    def __init__(self, func: nn.Module) -> None:
        super().__init__()
        self.func = func
        self.nfe = 0
        self.accepted = 0
        self.rejected = 0
        self.min_tau = math.inf

    def forward(self, tau: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        self.min_tau = min(self.min_tau, float(tau.detach()))
        return self.func(tau, x)


class AdaptiveCountedODEFunc(CountedODEFunc):
    """:class:`CountedODEFunc` that also hears torchdiffeq's accept/reject step callbacks."""

    def callback_accept_step(self, t0, y0, dt) -> None:
        self.accepted += 1

    def callback_reject_step(self, t0, y0, dt) -> None:
        self.rejected += 1


def _solver_kwargs(settings: SolverSettings, device: torch.device) -> dict:
    if settings.adaptive:
        end = torch.tensor([settings.tau_end], dtype=torch.float64, device=device)
        return {
            "method": settings.method,
            "rtol": settings.rtol,
            "atol": settings.atol,
            "options": {"jump_t" if settings.authors_jump_t else "step_t": end},
        }
    name, _ = FIXED_SOLVERS[settings.method]
    n = int(settings.steps)

    def uniform_grid(func, y0, t):  # torchdiffeq passes t already flipped to increasing order
        return torch.linspace(float(t[0]), float(t[-1]), n + 1, dtype=t.dtype, device=t.device)

    return {"method": name, "options": {"grid_constructor": uniform_grid}}


def solve_pf_ode(
    func: nn.Module,
    x_start: torch.Tensor,
    settings: SolverSettings = SolverSettings(),
    *,
    adjoint: bool = False,
    adjoint_params: Iterable[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, CountedODEFunc]:
    """Integrate dx/dτ = func(τ, x) from ``settings.tau_start`` to ``settings.tau_end``.

    Args:
        func: the ODE right-hand side (e.g. :class:`methods.ecdp.sde.ProbabilityFlowODE`).
        x_start: B×C×H×W state at τ_start (z ~ N(0, I) times the temperature).
        adjoint: solve with ``odeint_adjoint`` (memory O(1) in the number of steps; gradients
            reach only ``adjoint_params``, e.g. the U-Net's parameters, as in the paper).
    Returns:
        (x at τ_end, the call counter — ``.nfe`` keeps counting during an adjoint backward).
    """
    counted = (AdaptiveCountedODEFunc if settings.adaptive else CountedODEFunc)(func)
    t = torch.tensor([settings.tau_start, settings.tau_end], dtype=torch.float64, device=x_start.device)
    kwargs = _solver_kwargs(settings, x_start.device)
    if adjoint:
        params = tuple(adjoint_params) if adjoint_params is not None else tuple(func.parameters())
        path = odeint_adjoint(counted, x_start, t, adjoint_params=params, **kwargs)
    else:
        path = odeint(counted, x_start, t, **kwargs)
    return path[-1], counted
