"""IDM networks (spec §1): EDSR-baseline condition encoder and the U-Net with implicit upsamplers.

Module names follow Ree1s/IDM so the released `*_gen.pth` loads through `checkpoint.py`'s key
map (identity for every used key; unused modules are listed there and dropped by name).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from methods.idm.ops import EqualLinear, FusedLeakyReLU, StyleConv


@dataclass
class UNetConfig:
    in_channel: int = 6
    out_channel: int = 3
    inner_channel: int = 64
    channel_mults: tuple = (1, 2, 4, 8, 8)
    attn_res: tuple = (16,)
    res_blocks: int = 2
    dropout: float = 0.2
    norm_groups: int = 32
    image_size: int = 128


@dataclass
class EncoderConfig:
    n_resblocks: int = 16
    n_feats: int = 64


# ---------------------------------------------------------------- EDSR (spec §1.1)
class _EDSRResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(True), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return self.body(x) + x


class EDSREncoder(nn.Module):
    """EDSR-baseline; features resized to the target size with legacy 'nearest' (floor index)."""

    def __init__(self, cfg: EncoderConfig = EncoderConfig()):
        super().__init__()
        f = cfg.n_feats
        self.head = nn.Sequential(nn.Conv2d(3, f, 3, padding=1))
        self.body = nn.Sequential(*[_EDSRResBlock(f) for _ in range(cfg.n_resblocks)], nn.Conv2d(f, f, 3, padding=1))
        self.tail = nn.Sequential(nn.Conv2d(f, 3, 3, padding=1))

    def forward(self, lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.head(lr)
        res = self.body(x) + x
        return self.tail(F.interpolate(res, size=tuple(size), mode="nearest"))


# ---------------------------------------------------------------- U-Net blocks (SR3)
class PositionalEncoding(nn.Module):
    """enc = γ·exp(−ln(1e4)·k/(d/2)), [sin, cos]; γ = √ᾱ itself (no ×1000)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, gamma):
        half = self.dim // 2
        step = torch.arange(half, dtype=gamma.dtype, device=gamma.device) / half
        enc = gamma.view(-1, 1) * torch.exp(-math.log(1e4) * step.view(1, -1))
        return torch.cat([enc.sin(), enc.cos()], dim=-1)


class _NoiseAdd(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.noise_func = nn.Sequential(nn.Linear(cin, cout))

    def forward(self, x, emb):
        return x + self.noise_func(emb).view(x.shape[0], -1, 1, 1)


class _Block(nn.Module):
    def __init__(self, cin, cout, groups, dropout=0.0):
        super().__init__()
        self.block = nn.Sequential(nn.GroupNorm(groups, cin), nn.SiLU(),
                                   nn.Dropout(dropout) if dropout else nn.Identity(),
                                   nn.Conv2d(cin, cout, 3, padding=1))

    def forward(self, x):
        return self.block(x)


class _ResBlock(nn.Module):
    def __init__(self, cin, cout, emb, groups, dropout):
        super().__init__()
        self.noise_func = _NoiseAdd(emb, cout)
        self.block1 = _Block(cin, cout, groups)
        self.block2 = _Block(cout, cout, groups, dropout)
        self.res_conv = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        return self.block2(self.noise_func(self.block1(x), emb)) + self.res_conv(x)


class _SelfAttention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1, bias=False)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, 3 * c, h * w).chunk(3, dim=1)
        attn = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(c), dim=-1)
        out = torch.einsum("bij,bcj->bci", attn, v).reshape(b, c, h, w)
        return self.out(out) + x


class _ResAttn(nn.Module):
    def __init__(self, cin, cout, emb, groups, dropout, with_attn):
        super().__init__()
        self.res_block = _ResBlock(cin, cout, emb, groups, dropout)
        self.attn = _SelfAttention(cout, groups) if with_attn else None

    def forward(self, x, emb):
        x = self.res_block(x, emb)
        return self.attn(x) if self.attn is not None else x


class _Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 1)

    def forward(self, x):
        return self.conv(x)


def make_coord(h: int, w: int, device, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates in [−1, 1], shape (h, w, 2), (row, col) order."""
    ys = -1 + (2 * torch.arange(h, device=device, dtype=dtype) + 1) / h
    xs = -1 + (2 * torch.arange(w, device=device, dtype=dtype) + 1) / w
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


class _ScaleShiftAct(nn.Module):
    """Norm2Scale then FusedLeakyReLU(x·ŝ1 + shift·ŝ2); holds the `activate.bias` key."""

    def __init__(self, c):
        super().__init__()
        self.activate = FusedLeakyReLU(c)

    def forward(self, x, s1, s2, shift):
        inv = torch.rsqrt(s1 ** 2 + s2 ** 2 + 1e-8)
        s1, s2 = (s1 * inv).view(-1, x.shape[1], 1, 1), (s2 * inv).view(-1, x.shape[1], 1, 1)
        return self.activate(x * s1 + shift * s2)


class ImplicitUpsampler(nn.Module):
    """The authors' `idm` module: scale/shift modulation then a LIIF nearest-cell query (spec §1.2)."""

    def __init__(self, c):
        super().__init__()
        self.style = _ScaleShiftAct(c)
        self.imnet = nn.Sequential(nn.Linear(c + 2, 256), nn.Linear(256, c))

    def forward(self, x, size, s1, s2, shift):
        feat = self.style(x, s1, s2, shift)
        b, c, hf, wf = feat.shape
        H, W = size
        coord = make_coord(H, W, feat.device, feat.dtype).view(1, H * W, 2).expand(b, -1, -1)
        q = coord.clamp(-1 + 1e-6, 1 - 1e-6)
        grid = q.flip(-1).unsqueeze(1)  # grid_sample wants (x, y)
        q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
        fc = make_coord(hf, wf, feat.device, feat.dtype).permute(2, 0, 1).unsqueeze(0).expand(b, 2, hf, wf)
        q_coord = F.grid_sample(fc, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
        rel = (coord - q_coord) * torch.tensor([hf, wf], dtype=feat.dtype, device=feat.device)
        out = self.imnet(torch.cat([q_feat, rel], dim=-1))
        # (B, H·W, C) → (B, C, H, W) with h = H (the authors use the width here: bug, spec §5.2)
        return out.permute(0, 2, 1).reshape(b, c, H, W)


class IDMUNet(nn.Module):
    def __init__(self, cfg: UNetConfig = UNetConfig()):
        super().__init__()
        ic, g, d = cfg.inner_channel, cfg.norm_groups, cfg.dropout
        self.noise_level_mlp = nn.Sequential(PositionalEncoding(ic), nn.Linear(ic, 4 * ic), nn.SiLU(),
                                             nn.Linear(4 * ic, ic))
        pre = ic
        feat_ch = [pre]
        res = cfg.image_size
        downs: list[nn.Module] = [nn.Conv2d(cfg.in_channel, ic, 3, padding=1)]
        self.conv_body_first = StyleConv(3, ic)
        self.conv_body_down = nn.ModuleList()
        self.condition_scale1 = nn.ModuleList()
        self.condition_scale2 = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        n = len(cfg.channel_mults)
        for i, m in enumerate(cfg.channel_mults):
            ch = ic * m
            self.conv_body_down.append(StyleConv(pre, ch, downsample=True))
            self.condition_scale1.append(EqualLinear(1, ch))
            self.condition_scale2.append(EqualLinear(1, ch))
            self.condition_shift.append(StyleConv(pre, ch, activate=False))
            for _ in range(cfg.res_blocks):
                downs.append(_ResAttn(pre, ch, ic, g, d, res in cfg.attn_res))
                feat_ch.append(ch)
                pre = ch
            if i != n - 1:
                downs.append(_Downsample(pre))
                feat_ch.append(pre)
                res //= 2
        self.downs = nn.ModuleList(downs)
        self.mid = nn.ModuleList([_ResAttn(pre, pre, ic, g, d, True), _ResAttn(pre, pre, ic, g, d, False)])
        ups: list[nn.Module] = []
        for i in reversed(range(n)):
            ch = ic * cfg.channel_mults[i]
            for _ in range(cfg.res_blocks + 1):
                ups.append(_ResAttn(pre + feat_ch.pop(), ch, ic, g, d, res in cfg.attn_res))
                pre = ch
            if i > 0:
                ups.append(ImplicitUpsampler(pre))
                res *= 2
        self.ups = nn.ModuleList(ups)
        self.final_conv = _Block(pre, cfg.out_channel, g)

    def forward(self, x, x_con, p, gamma):
        """x = cat[x_con, x_t]; x_con (B,3,H,W); p (B,1) scale code; gamma (B,) = √ᾱ."""
        emb = self.noise_level_mlp(gamma.view(-1))
        # LR pyramid: level j shift from the level-(j) features (level-0 entries unused, spec §1.2)
        feat = self.conv_body_first(x_con)
        conds = []
        for j in range(1, len(self.conv_body_down)):
            feat = self.conv_body_down[j - 1](feat)
            conds.append((self.condition_scale1[j](p), self.condition_scale2[j](p), self.condition_shift[j](feat)))
        feats = []
        for layer in self.downs:
            x = layer(x, emb) if isinstance(layer, _ResAttn) else layer(x)
            feats.append(x)
        for layer in self.mid:
            x = layer(x, emb)
        for layer in self.ups:
            if isinstance(layer, _ResAttn):
                x = layer(torch.cat([x, feats.pop()], dim=1), emb)
            else:
                s1, s2, sh = conds.pop()
                x = layer(x, feats[-1].shape[-2:], s1, s2, sh)
        return self.final_conv(x)


class IDMNet(nn.Module):
    """encoder + denoise_fn, named as the authors' GaussianDiffusion (used parts only)."""

    def __init__(self, unet: UNetConfig = UNetConfig(), encoder: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.encoder = EDSREncoder(encoder)
        self.denoise_fn = IDMUNet(unet)

    def condition(self, lr, size):
        return self.encoder(lr, size)

    def eps(self, x_t, x_con, p, gamma):
        return self.denoise_fn(torch.cat([x_con, x_t], dim=1), x_con, p, gamma)
