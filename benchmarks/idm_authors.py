"""Build the authors' IDM model (Ree1s/IDM @ d224c0e) on CPU from a git-ignored checkout.

What we change to run their code on CPU (nothing in their files is edited):
- `model.ops.fused_act.fused_act.fused_leaky_relu` / `FusedLeakyReLU.forward` and
  `model.ops.upfirdn2d.upfirdn2d.upfirdn2d` call prebuilt CUDA .so files (absent here); we
  replace them, after import, by the same math in plain torch
  (leaky_relu(x + b, 0.2) * sqrt(2); pad + depthwise conv with the flipped kernel, up=down=1).
- `unet.dist.get_rank()` (used as the device of make_coord) returns "cpu".
- define_G's DDP wrapper / CUDA assert are skipped: we build UNet, EDSR, MLP and
  GaussianDiffusion directly with the face config's arguments.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

AUTHORS = Path(__file__).resolve().parents[1] / ".authors"

FACE_UNET = dict(in_channel=6, out_channel=3, norm_groups=32, inner_channel=64,
                 channel_mults=[1, 2, 4, 8, 8], attn_res=[16], res_blocks=2, dropout=0.2,
                 image_size=128)
SCHEDULE = dict(schedule="linear", n_timestep=2000, linear_start=1e-6, linear_end=1e-2)


def available() -> bool:
    return (AUTHORS / "model" / "sr3_modules" / "unet.py").is_file()


def _leaky(x, bias, negative_slope=0.2, scale=2 ** 0.5):
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


def _upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    assert up == 1 and down == 1
    c = x.shape[1]
    p0, p1 = pad
    x = F.pad(x, (p0, p1, p0, p1))
    w = torch.flip(kernel, [0, 1]).view(1, 1, *kernel.shape).repeat(c, 1, 1, 1)
    return F.conv2d(x, w.to(x.dtype), groups=c)


def modules():
    """Import their modules with the CPU replacements installed; returns (unet, edsr, mlp, diffusion)."""
    if str(AUTHORS) not in sys.path:
        sys.path.insert(0, str(AUTHORS))
    from model.ops.fused_act import fused_act
    from model.ops.upfirdn2d import upfirdn2d as ufd
    fused_act.fused_leaky_relu = _leaky
    fused_act.FusedLeakyReLU.forward = lambda self, x: _leaky(x, self.bias, self.negative_slope, self.scale)
    ufd.upfirdn2d = _upfirdn2d
    from model.sr3_modules import diffusion, edsr, mlp, style, unet
    style.fused_leaky_relu = _leaky
    style.upfirdn2d = _upfirdn2d
    unet.dist.get_rank = lambda: "cpu"
    return unet, edsr, mlp, diffusion


def build_face_model(seed: int = 0, unet_kwargs: dict | None = None):
    """Their GaussianDiffusion(encoder, imnet, UNet) at random init (their default init)."""
    unet, edsr, mlp, diffusion = modules()
    torch.manual_seed(seed)
    den = unet.UNet(**(unet_kwargs or FACE_UNET))
    enc = edsr.EDSR(n_resblocks=16, n_feats=64, res_scale=1, scale=8, no_upsampling=False, rgb_range=1)
    imnet = mlp.MLP(in_dim=64 + 2, out_dim=3, hidden_list=[256, 256, 256, 256])
    g = diffusion.GaussianDiffusion(enc, imnet, den, image_size=128, channels=3, loss_type="l1",
                                    conditional=True, schedule_opt=SCHEDULE)
    g.set_new_noise_schedule(SCHEDULE, "cpu")
    return g


if __name__ == "__main__":
    import json
    g = build_face_model()
    sd = g.state_dict()
    out = {k: list(v.shape) for k, v in sd.items()}
    print(len(out), sum(p.numel() for p in g.parameters()))
    dest = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "idm_face_state_dict_shapes.json"
    dest.write_text(json.dumps({"source": "Ree1s/IDM@d224c0e, benchmarks/idm_authors.py",
                                "n_params": sum(p.numel() for p in g.parameters()),
                                "shapes": out}, indent=0))
    print("wrote", dest)
