"""InvSR's start-noise predictor, built from stock diffusers blocks.

The released ``noise_predictor_sd_turbo_v5.pth`` is the state dict of the authors' ``NoisePredictor``
(their vendored diffusers, ``autoencoder_kl.py:512-597``), which wraps a ``TimeAwareEncoder``
(``vae.py:185-358``): the SD VAE encoder with a timestep embedding fed into every ResNet. Module names
here mirror theirs attribute for attribute so the file loads key-for-key (spec §1-2).

Forward (paper Sec. 3.2, Eq. 6; ``autoencoder_kl.py:799-827``): ``x = 2·y − 1``; ``h = E(x, t)`` with
8 channels = (mean, logvar) of a diagonal Gaussian over the start noise ε̂ at the SD latent size
(one /2 downsample: a 128² LR patch gives 64², the latent of the 512² ×4 output).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, get_down_block
from torch import nn

__all__ = ["NoisePredictor", "NoisePredictorConfig", "TimeAwareEncoder"]


@dataclass(frozen=True)
class NoisePredictorConfig:
    """``configs/sample-sd-turbo.yaml:38-65`` (the released model) as defaults."""

    in_channels: int = 3
    down_block_types: tuple[str, ...] = ("AttnDownBlock2D", "AttnDownBlock2D")
    block_out_channels: tuple[int, ...] = (256, 512)
    layers_per_block: tuple[int, ...] = (3, 3)
    latent_channels: int = 4
    norm_num_groups: int = 32
    mid_block_add_attention: bool = True
    resnet_time_scale_shift: str = "default"
    temb_channels: int = 512
    attention_head_dim: int = 64
    freq_shift: int = 0
    flip_sin_to_cos: bool = True
    double_z: bool = True
    act_fn: str = "silu"


class TimeAwareEncoder(nn.Module):
    """VAE encoder whose ResNets see a timestep embedding (attribute names = the authors')."""

    def __init__(self, cfg: NoisePredictorConfig) -> None:
        super().__init__()
        ch = cfg.block_out_channels
        layers = cfg.layers_per_block
        if isinstance(layers, int):
            layers = (layers,) * len(cfg.down_block_types)
        # sinusoid width max(128, C0) (vae.py:232); no parameters in time_proj
        t_dim = max(128, ch[0])
        self.time_proj = Timesteps(t_dim, cfg.flip_sin_to_cos, cfg.freq_shift)
        self.time_embedding = TimestepEmbedding(t_dim, cfg.temb_channels)
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], kernel_size=3, padding=1)
        self.down_blocks = nn.ModuleList()
        out_c = ch[0]
        for i, block_type in enumerate(cfg.down_block_types):
            in_c, out_c = out_c, ch[i]
            self.down_blocks.append(
                get_down_block(
                    block_type,
                    num_layers=layers[i],
                    in_channels=in_c,
                    out_channels=out_c,
                    add_downsample=i < len(ch) - 1,
                    resnet_eps=1e-6,
                    downsample_padding=0,  # VAE-style asymmetric (0,1,0,1) pad before the stride-2 conv
                    resnet_act_fn=cfg.act_fn,
                    resnet_groups=cfg.norm_num_groups,
                    attention_head_dim=cfg.attention_head_dim,
                    resnet_time_scale_shift=cfg.resnet_time_scale_shift,
                    temb_channels=cfg.temb_channels,
                )
            )
        self.mid_block = UNetMidBlock2D(
            in_channels=ch[-1],
            resnet_eps=1e-6,
            resnet_act_fn=cfg.act_fn,
            output_scale_factor=1,
            attention_head_dim=cfg.attention_head_dim,
            resnet_groups=cfg.norm_num_groups,
            add_attention=cfg.mid_block_add_attention,
            resnet_time_scale_shift=cfg.resnet_time_scale_shift,
            temb_channels=cfg.temb_channels,
        )
        self.conv_norm_out = nn.GroupNorm(num_channels=ch[-1], num_groups=cfg.norm_num_groups, eps=1e-6)
        self.conv_act = nn.SiLU()
        out = 2 * cfg.latent_channels if cfg.double_z else cfg.latent_channels
        self.conv_out = nn.Conv2d(ch[-1], out, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t[None]
        t = t.expand(x.shape[0]) if t.shape[0] == 1 else t
        # the sinusoid is fp32; run the MLP in its own dtype (vae.py:312) so fp16 weights work
        emb = self.time_embedding(self.time_proj(t).to(self.time_embedding.linear_1.weight.dtype))
        h = self.conv_in(x)
        for block in self.down_blocks:
            h, _ = block(h, emb)
        h = self.mid_block(h, emb)
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))


class NoisePredictor(nn.Module):
    """ε̂ ~ N(μ(y,t), σ²(y,t)) at latent size from an LR image ``y`` in [0,1] (paper Eq. 6)."""

    def __init__(self, cfg: NoisePredictorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg or NoisePredictorConfig()
        self.encoder = TimeAwareEncoder(self.config)

    def distribution(self, y: torch.Tensor, t: torch.Tensor | int, center_input: bool = True):
        """The posterior; ``logvar`` clamped to [−30, 20] by diffusers (vae.py:947)."""
        x = 2.0 * y - 1.0 if center_input else y
        return DiagonalGaussianDistribution(self.encoder(x, t))

    def forward(
        self,
        y: torch.Tensor,
        t: torch.Tensor | int,
        generator: torch.Generator | list[torch.Generator] | None = None,
        mode: bool = False,
        center_input: bool = True,
    ) -> torch.Tensor:
        """A draw ``μ + σ·n`` (``n`` from ``generator``, per image if a list), or ``μ`` when ``mode``."""
        dist = self.distribution(y, t, center_input)
        return dist.mode() if mode else dist.sample(generator)
