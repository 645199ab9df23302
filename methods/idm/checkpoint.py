"""Key map for the authors' `<name>_gen.pth` (GaussianDiffusion.state_dict(), 537 entries).

Used keys map by identity onto `IDMNet`. Keys the forward never uses are dropped BY NAME:
"""
from __future__ import annotations

import re

import torch

IGNORED_KEY_PATTERNS = (
    r"^(betas|alphas_cumprod|alphas_cumprod_prev|sqrt_alphas_cumprod|sqrt_one_minus_alphas_cumprod|"
    r"log_one_minus_alphas_cumprod|sqrt_recip_alphas_cumprod|sqrt_recipm1_alphas_cumprod|posterior_variance|"
    r"posterior_log_variance_clipped|posterior_mean_coef1|posterior_mean_coef2|ddim_c1)$",  # schedule (recomputed)
    r"^imnet\.",                                   # GaussianDiffusion.imnet MLP, never called
    r"^encoder\.(sub_mean|add_mean)\.",            # MeanShift, not applied
    r"^denoise_fn\.final_(down1|down2|linear|styleconv)\.",  # never called
    r"^denoise_fn\.ups\.\d+\.style\.modulated_conv\.",       # commented out in their forward
    r"^denoise_fn\.ups\.\d+\.style\.weight$",                # noise-injection weight, unused
)


def is_ignored(key: str) -> bool:
    return any(re.search(p, key) for p in IGNORED_KEY_PATTERNS)


def map_authors_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in sd.items() if not is_ignored(k)}


def load_authors_state_dict(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
    """Strict load after dropping the listed unused keys (no blanket strict=False)."""
    model.load_state_dict(map_authors_state_dict(sd), strict=True)
