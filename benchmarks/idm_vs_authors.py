"""IDM parity with the authors' code (Ree1s/IDM @ d224c0e) at identical random weights, on CPU.

Their model is built by benchmarks/idm_authors.py (CPU replacements for their fused ops, listed
there); its state dict is loaded into ours through methods/idm/checkpoint.py. Checks:
  1. EDSR features and one U-Net ε̂ at a mid-range t (full face config, 16→128),
  2. 20 DDPM steps with the same injected per-step noise (tiny config, their p_mean_variance),
  3. their DDIM path end to end (199 NFE, tiny config, same x_T),
  4. CPU throughput: ours batched vs theirs one image at a time (same DDPM steps).
Writes JSON (--out) whose numbers the fixture test pins.

    .venv/bin/python benchmarks/idm_vs_authors.py --out tests/fixtures/idm_authors_forward.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import idm_authors as ia
from methods.idm.checkpoint import load_authors_state_dict
from methods.idm.diffusion import Schedule, ddim_sample, ddpm_step
from methods.idm.model import EncoderConfig, IDMNet, UNetConfig

TINY_UNET = dict(in_channel=6, out_channel=3, norm_groups=8, inner_channel=16, channel_mults=[1, 2, 2],
                 attn_res=[8], res_blocks=1, dropout=0.0, image_size=32)


def synthetic_state_dict(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random weights for every key of our model (sorted), independent of their code,
    so the fixture test rebuilds them without the checkout: ≥2-D ~ N(0,1)/√fan_in, 1-D ~ 0.5 + 0.1·N."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in sorted(model.state_dict().items()):
        if v.ndim >= 2:
            out[k] = torch.randn(v.shape, generator=g) / float(v[0].numel()) ** 0.5
        else:
            out[k] = 0.5 + 0.1 * torch.randn(v.shape, generator=g)
    return out


def ours_model(unet_kwargs, seed=0):
    cfg = UNetConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in unet_kwargs.items()})
    ours = IDMNet(cfg, EncoderConfig()).eval()
    ours.load_state_dict(synthetic_state_dict(ours, seed), strict=True)
    return ours


def pair(unet_kwargs, seed=0):
    ours = ours_model(unet_kwargs, seed)
    theirs = ia.build_face_model(seed, unet_kwargs).eval()
    sd = theirs.state_dict()
    sd.update(ours.state_dict())  # the used keys; their unused modules keep their init
    theirs.load_state_dict(sd, strict=True)
    load_authors_state_dict(ours, theirs.state_dict())
    return ours, theirs


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@torch.no_grad()
def check_forward(res):
    ours, theirs = pair(ia.FACE_UNET)
    g = torch.Generator().manual_seed(3)
    lr = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    xt = torch.randn(1, 3, 128, 128, generator=g)
    p = torch.ones(1, 1)
    S = Schedule()
    i = 1000
    gam = S.gamma(i, 1)
    c_t = theirs.gen_feat(lr, (128, 128))
    c_o = ours.condition(lr, (128, 128))
    e_t = theirs.denoise_fn(torch.cat([c_t, xt], 1), c_t, p, gam.view(1, 1))
    e_o = ours.eps(xt, c_o, p, gam)
    res["edsr_max_abs"] = float((c_t - c_o).abs().max())
    res["unet_max_abs"] = float((e_t - e_o).abs().max())
    res["unet_rel"] = rel(e_o, e_t)
    res["fixture_eps_sum"], res["fixture_eps_abs_sum"] = float(e_t.sum()), float(e_t.abs().sum())
    res["fixture_eps_first"] = e_t.flatten()[:8].tolist()
    res["fixture_xcon_first"] = c_t.flatten()[:8].tolist()


@torch.no_grad()
def check_ddpm_ddim(res):
    ours, theirs = pair(TINY_UNET)
    S = Schedule()
    g = torch.Generator().manual_seed(5)
    lr = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    size = (32, 32)
    p = torch.full((2, 1), 0.5)
    c_t, c_o = theirs.gen_feat(lr, size), ours.condition(lr, size)
    x_t = torch.randn(2, 3, *size, generator=g)
    x_o = x_t.clone()
    for i in range(1999, 1979, -1):
        z = torch.randn(2, 3, *size, generator=g)
        mean, logv = theirs.p_mean_variance(x=x_t, t=i, scaler=p, clip_denoised=True, condition_x=c_t)
        x_t = mean + z * (0.5 * logv).exp()
        x_o = ddpm_step(S, x_o, i, ours.eps(x_o, c_o, p, S.gamma(i, 2)), z)
    d = (x_t - x_o).abs()
    res["ddpm20_max_abs"] = float(d.max())
    res["ddpm20_frac_past_1e-3"] = float((d > 1e-3).float().mean())
    res["fixture_ddpm20_sum"], res["fixture_ddpm20_first"] = float(x_t.sum()), x_t.flatten()[:8].tolist()
    # DDIM end to end, batch 1 (their path only supports B=1)
    lr1, p1 = lr[:1], p[:1]
    torch.manual_seed(11)
    theirs_out = theirs.generalized_steps({"inp": lr1, "scaler": p1, "gt": torch.zeros(1, 3, *size)})
    torch.manual_seed(11)
    xT = torch.randn(1, 3, *size)
    c1 = ours.condition(lr1, size)
    ours_out = ddim_sample(lambda x, gm: ours.eps(x, c1, p1, gm), S, xT.shape, x_T=xT)
    res["ddim_rel_to_max"] = rel(ours_out, theirs_out.view_as(ours_out))
    res["fixture_ddim_sum"] = float(theirs_out.sum())


@torch.no_grad()
def throughput(res, batch=4, steps=3):
    """16→128 face config, `steps` DDPM steps: ours batched vs theirs one image at a time, alternating."""
    ours, theirs = pair(ia.FACE_UNET)
    S = Schedule()
    lr = torch.rand(batch, 3, 16, 16) * 2 - 1
    p = torch.ones(batch, 1)
    t_ours, t_theirs = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        c = ours.condition(lr, (128, 128))
        x = torch.randn(batch, 3, 128, 128)
        for i in range(1999, 1999 - steps, -1):
            x = ddpm_step(S, x, i, ours.eps(x, c, p, S.gamma(i, batch)), torch.randn_like(x))
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for b in range(batch):
            c = theirs.gen_feat(lr[b:b + 1], (128, 128))
            x = torch.randn(1, 3, 128, 128)
            for i in range(1999, 1999 - steps, -1):
                x = theirs.p_sample(x, i, p[b:b + 1], condition_x=c)
        t_theirs.append(time.perf_counter() - t0)
    res["throughput"] = dict(batch=batch, ddpm_steps=steps, ours_s=min(t_ours), theirs_s=min(t_theirs),
                             ratio=min(t_theirs) / min(t_ours), threads=torch.get_num_threads())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--throughput-only", action="store_true", help="skip the parity checks")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3, help="DDPM steps per image in the throughput run")
    a = ap.parse_args()
    if not ia.available():
        print(f"idm_vs_authors: authors' checkout not found at {ia.AUTHORS} (fetch Ree1s/IDM@d224c0e there)")
        return 2
    res = {"source": "Ree1s/IDM@d224c0e via benchmarks/idm_authors.py"}
    if not a.throughput_only:
        check_forward(res)
        check_ddpm_ddim(res)
    if not a.no_throughput:
        throughput(res, batch=a.batch, steps=a.steps)
    txt = json.dumps(res, indent=1)
    print(txt)
    if a.out:
        a.out.write_text(txt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
