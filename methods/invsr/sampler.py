"""InvSR's sampler: the start-timestep table, the VE-form start latent and the deterministic steps.

Paper (Yue et al., CVPR 2025, Sec. 3): the diffusion is run in SD-Turbo's Euler/VE parameterisation,
``z_t = z_0 + σ(t)·ε`` with ``σ(t) = sqrt((1 − ᾱ_t) / ᾱ_t)`` (spec §3.2). Inversion replaces the
random ε of the forward process by the learned ``ε̂ ~ N(μ(y, t₁), σ²(y, t₁))`` (:mod:`.predictor`):

    x_{t₁} = z_0 + σ(t₁)·ε̂                              start latent (spec §3.3 step 6)

and then takes S deterministic steps with SD-Turbo's ε-prediction UNet (spec §3.3 step 7):

    ε     = UNet(x / sqrt(σ_i² + 1), t_i, c)             (scale_model_input)
    x̂_0   = x − σ_i·ε                                    (ε-prediction)
    x    ← x + (x − x̂_0)/σ_i · (σ_{i+1} − σ_i) = x̂_0 + σ_{i+1}·ε     (Euler = DDIM η=0 in VE form)

with ``σ_{S+1} = 0``, so S=1 returns ``x̂_0``. The UNet steps are diffusers' ``EulerDiscreteScheduler``
(the scheduler SD-Turbo ships, as the authors use it: ``scale_model_input`` + ``step`` with churn 0),
given the timesteps explicitly. Its ``set_timesteps(timesteps=…)`` gives σ(t) at the integer t, the
same float32 values as the authors' ``sigmas_cache`` (their init sigmas indexed by t), and the
final σ = 0 ("zero" final_sigmas_type, SD-Turbo's default).

Timesteps: ``inference_invsr.py:51-69`` publishes 1:[200], 2:[200,100], 3:[200,100,50],
4:[200,150,100,50], 5:[250,200,150,100,50] (custom lists sorted descending), and the pipeline
subtracts one before using them (``PIPE:142-143``): the UNet, the noise predictor and the σ lookup
all see ``t − 1`` (spec pitfall 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = [
    "PUBLISHED_TIMESTEPS",
    "SD_TURBO_SCHEDULER_CONFIG",
    "InvSRSampler",
    "make_scheduler",
    "model_timesteps",
    "published_timesteps",
    "start_latent",
]

#: ``inference_invsr.py:51-69``: timesteps per step count as the CLI sets them (before the −1 shift).
PUBLISHED_TIMESTEPS: dict[int, tuple[int, ...]] = {
    1: (200,),
    2: (200, 100),
    3: (200, 100, 50),
    4: (200, 150, 100, 50),
    5: (250, 200, 150, 100, 50),
}

#: ``stabilityai/sd-turbo`` ``scheduler/scheduler_config.json`` (the fields that matter here):
#: scaled-linear β 0.00085..0.012 over 1000 steps, ε-prediction, final σ = 0.
SD_TURBO_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "interpolation_type": "linear",
    "timestep_spacing": "trailing",
    "steps_offset": 1,
    "use_karras_sigmas": False,
    "final_sigmas_type": "zero",
}


def published_timesteps(steps: int | None = None, timesteps: Sequence[int] | None = None) -> tuple[int, ...]:
    """The timesteps as the authors' CLI writes them: the table for ``steps``, or ``timesteps`` sorted down.

    ``steps`` > 5 without explicit timesteps crashes the authors' CLI (spec pitfall 7); here it is an error.
    """
    if timesteps is not None and len(timesteps) > 0:
        ts = sorted((int(t) for t in timesteps), reverse=True)
        if steps is not None and int(steps) != len(ts):
            raise ValueError(f"steps={steps} but {len(ts)} timesteps given ({ts})")
        if len(set(ts)) != len(ts) or not all(1 <= t <= 1000 for t in ts):
            raise ValueError(f"InvSR timesteps must be distinct integers in 1..1000, got {ts}")
        return tuple(ts)
    if steps is None or int(steps) not in PUBLISHED_TIMESTEPS:
        raise ValueError(
            f"InvSR steps must be one of {sorted(PUBLISHED_TIMESTEPS)} (or give explicit timesteps), got {steps}"
        )
    return PUBLISHED_TIMESTEPS[int(steps)]


def model_timesteps(steps: int | None = None, timesteps: Sequence[int] | None = None) -> tuple[int, ...]:
    """The timesteps the networks actually see: published ones minus one (``PIPE:142-143``)."""
    return tuple(t - 1 for t in published_timesteps(steps, timesteps))


def make_scheduler(config: Any | None = None):
    """A diffusers ``EulerDiscreteScheduler`` from a scheduler config (any SD scheduler's config works:
    only the β schedule and prediction type are used), defaults = SD-Turbo's."""
    from diffusers import EulerDiscreteScheduler

    cfg = dict(SD_TURBO_SCHEDULER_CONFIG if config is None else config)
    cfg.pop("_class_name", None)
    cfg.pop("_diffusers_version", None)
    return EulerDiscreteScheduler.from_config(cfg)


def start_latent(z0: torch.Tensor, eps_hat: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``x_{t₁} = z_0 + σ(t₁)·ε̂`` — VE form (``EulerDiscreteScheduler.add_noise``), in ``z0``'s dtype."""
    sigma = torch.as_tensor(sigma, dtype=z0.dtype, device=z0.device)
    return z0 + eps_hat.to(z0.dtype) * sigma


class InvSRSampler:
    """The S deterministic steps from ``x_{t₁}`` to ``x̂_0`` with an ε-prediction UNet.

    ``unet(x_in, t, encoder_hidden_states=c)`` is any diffusers ``UNet2DConditionModel``; ``eps_fn``
    can replace the call (e.g. a tiled UNet) with ``eps_fn(x_in, t, c) -> ε``.
    """

    def __init__(self, scheduler: Any, timesteps: Sequence[int]) -> None:
        """``timesteps``: the values the UNet sees (already shifted, see :func:`model_timesteps`)."""
        self.scheduler = scheduler
        self.timesteps = tuple(int(t) for t in timesteps)
        if not self.timesteps or list(self.timesteps) != sorted(self.timesteps, reverse=True):
            raise ValueError(f"sampler timesteps must be a non-empty descending list, got {self.timesteps}")
        scheduler.set_timesteps(timesteps=list(self.timesteps))
        #: σ(t_1), …, σ(t_S), 0 (float32) and the float timesteps fed to the UNet
        self.sigmas = scheduler.sigmas.clone()
        self.unet_timesteps = scheduler.timesteps.clone()

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    @property
    def start_sigma(self) -> torch.Tensor:
        return self.sigmas[0]

    def start(self, z0: torch.Tensor, eps_hat: torch.Tensor) -> torch.Tensor:
        return start_latent(z0, eps_hat, self.start_sigma)

    def __call__(
        self,
        x: torch.Tensor,
        text: torch.Tensor,
        unet: torch.nn.Module | None = None,
        *,
        eps_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Run the steps from the start latent ``x``; returns the final latent (``x̂_0`` of the last step)."""
        if eps_fn is None:
            if unet is None:
                raise ValueError("InvSRSampler needs a unet or an eps_fn")

            def eps_fn(x_in, t, c):
                return unet(x_in, t, encoder_hidden_states=c, return_dict=False)[0]

        sched = self.scheduler
        sched.set_timesteps(timesteps=list(self.timesteps))  # fresh step index for this call
        for t in sched.timesteps:
            x_in = sched.scale_model_input(x, t)  # x / sqrt(σ² + 1)
            eps = eps_fn(x_in, t.to(x.device), text)
            x = sched.step(eps, t, x, return_dict=False)[0]  # x̂_0 + σ_next·ε, computed in fp32
        return x
