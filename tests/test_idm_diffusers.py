"""Which diffusers schedulers fit IDM's noise schedule (linear β 1e-6→1e-2, 2000 steps)."""
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from methods.idm.diffusion import Schedule, ddpm_step

S = Schedule()
KW = dict(num_train_timesteps=2000, beta_start=1e-6, beta_end=1e-2, beta_schedule="linear")


def test_diffusers_ddpm_step_equals_authors_step():
    sch = DDPMScheduler(**KW, clip_sample=True, clip_sample_range=1.0, variance_type="fixed_small")
    sch.set_timesteps(2000)
    g = torch.Generator().manual_seed(0)
    for i in (1999, 1000, 10, 0):
        x, eps = (torch.randn(1, 3, 8, 8, generator=g) for _ in range(2))
        z = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(i))
        ours = ddpm_step(S, x, i, eps, z)
        theirs = sch.step(eps, i, x, generator=torch.Generator().manual_seed(i)).prev_sample
        # diffusers keeps ᾱ as a float32 cumprod: near t=0, √(1/ᾱ−1) loses digits, so small t is
        # only close, not equal (ours: float64 → float32 like the authors' buffers)
        assert (ours - theirs).abs().max() <= (1e-5 if i >= 1000 else 5e-2), i


def test_diffusers_ddim_does_not_match_the_authors_grid():
    """DDIMScheduler with 200 steps uses t = 1990…0 and steps to ᾱ_{t−10} with a final step to ᾱ=1
    (set_alpha_to_one) or ᾱ_0: the authors stop at i=10 → ᾱ_0 and never evaluate t=0. With
    set_alpha_to_one=False and steps_offset=0 the first 199 updates coincide; document, not used."""
    sch = DDIMScheduler(**KW, clip_sample=False, set_alpha_to_one=False)
    sch.set_timesteps(200)
    assert sch.timesteps[0] == 1990 and sch.timesteps[-1] == 0 and len(sch.timesteps) == 200
