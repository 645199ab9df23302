"""InvSR sampler: the timestep table (with the −1 shift), the σ table and the Euler steps vs an oracle."""

from __future__ import annotations

import math

import pytest
import torch

from methods.invsr.sampler import (
    InvSRSampler,
    make_scheduler,
    model_timesteps,
    published_timesteps,
    start_latent,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"
)  # diffusers+numpy 2

#: spec §3.1: what the UNet / predictor / σ lookup see for 1..5 steps
SPEC_TABLE = {
    1: (199,),
    2: (199, 99),
    3: (199, 99, 49),
    4: (199, 149, 99, 49),
    5: (249, 199, 149, 99, 49),
}
#: spec §3.2 (approximate values)
SPEC_SIGMAS = {249: 0.6932, 199: 0.5693, 149: 0.4538, 99: 0.3417, 49: 0.2230}


def _sigma64(t: int) -> float:
    """σ(t) = sqrt((1 − ᾱ_t)/ᾱ_t), scaled-linear β 0.00085..0.012 over 1000 steps, in float64."""
    b0, b1 = math.sqrt(0.00085), math.sqrt(0.012)
    abar = 1.0
    for i in range(t + 1):
        abar *= 1.0 - (b0 + (b1 - b0) * i / 999) ** 2
    return math.sqrt((1 - abar) / abar)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5])
def test_schedule_table_equals_spec(steps):
    assert model_timesteps(steps) == SPEC_TABLE[steps]
    sampler = InvSRSampler(make_scheduler(), model_timesteps(steps))
    assert sampler.unet_timesteps.tolist() == [float(t) for t in SPEC_TABLE[steps]]
    assert sampler.sigmas[-1].item() == 0.0 and len(sampler.sigmas) == steps + 1
    for t, s in zip(SPEC_TABLE[steps], sampler.sigmas[:-1].tolist(), strict=True):
        assert s == pytest.approx(SPEC_SIGMAS[t], abs=1e-4)
        assert s == pytest.approx(_sigma64(t), rel=1e-5)


def test_sigmas_equal_authors_cache_rule():
    """The authors index the freshly built scheduler's sigmas: ``sigmas.flip(0)[1:][t]`` (PIPE:146-147)."""
    fresh = make_scheduler()
    cache = fresh.sigmas.flip(0)[1:]
    sampler = InvSRSampler(make_scheduler(), model_timesteps(5))
    assert torch.equal(sampler.sigmas[:-1], cache[list(SPEC_TABLE[5])])


def test_custom_timesteps_sorted_and_shifted():
    assert published_timesteps(timesteps=[50, 300, 120]) == (300, 120, 50)
    assert model_timesteps(3, [50, 300, 120]) == (299, 119, 49)
    with pytest.raises(ValueError, match="steps=2"):
        model_timesteps(2, [50, 300, 120])
    with pytest.raises(ValueError, match="1..1000"):
        model_timesteps(timesteps=[0, 10])
    with pytest.raises(ValueError, match="steps must be one of"):
        model_timesteps(6)  # the authors' CLI crashes here (spec pitfall 7)


def _oracle(z0, eps0, ts, eps_of):
    """Float64 hand-written VE/Euler: x = z0 + σ₁ε̂; x ← x̂0 + σ_next·ε with x̂0 = x − σε."""
    sig = [_sigma64(t) for t in ts] + [0.0]
    x = z0 + sig[0] * eps0
    for i, t in enumerate(ts):
        eps = eps_of(x / math.sqrt(sig[i] ** 2 + 1), t)
        x = (x - sig[i] * eps) + sig[i + 1] * eps
    return x


@pytest.mark.parametrize("steps", [1, 3, 5])
def test_steps_match_float64_oracle(steps):
    g = torch.Generator().manual_seed(steps)
    z0, eps0 = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    ts = model_timesteps(steps)

    def eps_of(x_in, t):  # a stub UNet that depends on its input and on t
        return 0.1 * x_in * (1 + float(t) / 1000) + 0.01 * float(t) / 1000

    sampler = InvSRSampler(make_scheduler(), ts)
    x = sampler(sampler.start(z0, eps0), torch.zeros(2, 77, 8), eps_fn=lambda x_in, t, c: eps_of(x_in, t))
    want = _oracle(z0.double(), eps0.double(), ts, eps_of)
    assert (x.double() - want).abs().max().item() < 2e-6
    # a second call gives the same result (scheduler state reset per call)
    x2 = sampler(sampler.start(z0, eps0), torch.zeros(2, 77, 8), eps_fn=lambda x_in, t, c: eps_of(x_in, t))
    assert torch.equal(x, x2)


def test_one_step_is_x0_hat():
    """S=1: out = z0 + σε̂ − σε (spec §3.3 step 7)."""
    z0, eps0, eps = torch.randn(3, 1, 4, 4, 4).unbind(0)
    sampler = InvSRSampler(make_scheduler(), model_timesteps(1))
    s = sampler.sigmas[0]
    out = sampler(sampler.start(z0, eps0), torch.zeros(1), eps_fn=lambda x_in, t, c: eps)
    torch.testing.assert_close(out, z0 + s * eps0 - s * eps, atol=1e-6, rtol=0)
    assert torch.equal(start_latent(z0, eps0, s), z0 + eps0 * s)


def test_unet_called_with_scaled_input_and_float_timestep():
    seen = []
    sampler = InvSRSampler(make_scheduler(), model_timesteps(2))

    class Stub(torch.nn.Module):
        def forward(self, x_in, t, encoder_hidden_states, return_dict=False):
            seen.append((x_in.clone(), t.clone(), encoder_hidden_states.shape))
            return (torch.zeros_like(x_in),)

    x = torch.ones(1, 4, 2, 2)
    sampler(x, torch.zeros(1, 77, 8), Stub())
    assert [s[1].item() for s in seen] == [199.0, 99.0]
    assert seen[0][1].dtype == torch.float32
    torch.testing.assert_close(seen[0][0], x / math.sqrt(_sigma64(199) ** 2 + 1), rtol=1e-6, atol=0)
