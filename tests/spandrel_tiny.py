"""Tiny spandrel architectures at random init (CPU-fast), saved as checkpoints spandrel re-detects."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_models() -> dict:
    from spandrel.architectures.Compact import Compact as SRVGGNetCompact
    from spandrel.architectures.ESRGAN import ESRGAN as RRDBNet
    from spandrel.architectures.HAT import HAT
    from spandrel.architectures.RCAN import RCAN
    from spandrel.architectures.SwinIR import SwinIR

    return {
        "ESRGAN": lambda: RRDBNet(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4),
        "SwinIR": lambda: SwinIR(img_size=16, in_chans=3, embed_dim=12, depths=[1], num_heads=[2], window_size=4,
                                 mlp_ratio=2.0, upscale=4, upsampler="pixelshuffle", resi_connection="1conv"),
        "HAT": lambda: HAT(img_size=16, in_chans=3, embed_dim=12, depths=(1,), num_heads=(2,), window_size=4,
                           compress_ratio=3, squeeze_factor=3, mlp_ratio=2.0, upscale=4, num_feat=8),
        "RCAN": lambda: RCAN(scale=4, n_resgroups=1, n_resblocks=1, n_feats=16, reduction=4),
        "Compact": lambda: SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4),
    }


def save_tiny(arch: str, folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    net = tiny_models()[arch]()
    path = Path(folder) / f"tiny_{arch.lower()}_x4.pth"
    torch.save(net.state_dict(), path)
    return path
