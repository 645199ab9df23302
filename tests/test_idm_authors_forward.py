"""Our IDM pinned to numbers from the authors' code (tests/fixtures/idm_authors_forward.json,
written by benchmarks/idm_vs_authors.py at the same synthetic weights)."""
import json
from pathlib import Path

import torch

from benchmarks import idm_authors as ia
from benchmarks.idm_vs_authors import TINY_UNET, ours_model
from methods.idm.diffusion import Schedule, ddpm_step

FX = json.loads((Path(__file__).parent / "fixtures" / "idm_authors_forward.json").read_text())


def test_parity_numbers_within_issue_tolerances():
    assert FX["unet_rel"] < 1e-4 and FX["ddpm20_max_abs"] < 1e-4
    assert FX["ddpm20_frac_past_1e-3"] <= 1e-3 and FX["ddim_rel_to_max"] <= 1e-3


@torch.no_grad()
def test_forward_matches_authors_numbers():
    ours = ours_model(ia.FACE_UNET)
    g = torch.Generator().manual_seed(3)
    lr = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    xt = torch.randn(1, 3, 128, 128, generator=g)
    S = Schedule()
    c = ours.condition(lr, (128, 128))
    e = ours.eps(xt, c, torch.ones(1, 1), S.gamma(1000, 1))
    assert torch.allclose(c.flatten()[:8], torch.tensor(FX["fixture_xcon_first"]), rtol=1e-4, atol=1e-4)
    assert torch.allclose(e.flatten()[:8], torch.tensor(FX["fixture_eps_first"]), atol=1e-4)
    assert abs(float(e.sum()) - FX["fixture_eps_sum"]) <= 1e-4 * FX["fixture_eps_abs_sum"]


@torch.no_grad()
def test_20_ddpm_steps_match_authors_numbers():
    ours = ours_model(TINY_UNET)
    S = Schedule()
    g = torch.Generator().manual_seed(5)
    lr = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    p = torch.full((2, 1), 0.5)
    c = ours.condition(lr, (32, 32))
    x = torch.randn(2, 3, 32, 32, generator=g)
    for i in range(1999, 1979, -1):
        z = torch.randn(2, 3, 32, 32, generator=g)
        x = ddpm_step(S, x, i, ours.eps(x, c, p, S.gamma(i, 2)), z)
    assert torch.allclose(x.flatten()[:8], torch.tensor(FX["fixture_ddpm20_first"]), atol=1e-4)
    assert abs(float(x.sum()) - FX["fixture_ddpm20_sum"]) < 1e-2
