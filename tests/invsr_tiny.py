"""Shared bits of the InvSR tests: a small noise-predictor config and a checkpoint file of it."""

from __future__ import annotations

from pathlib import Path

import torch

from methods.invsr.predictor import NoisePredictor, NoisePredictorConfig

#: same block types and module names as the released predictor, few channels (CPU tests)
SMALL_PREDICTOR = {
    "block_out_channels": [32, 64],
    "layers_per_block": [1, 1],
    "norm_num_groups": 8,
    "attention_head_dim": 16,
    "temb_channels": 64,
}


def small_predictor_file(path: Path, seed: int = 0) -> Path:
    """Random small predictor saved as the authors' training checkpoints are ({'state_dict': {'module.'…}})."""
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in SMALL_PREDICTOR.items()}
    torch.manual_seed(seed)
    model = NoisePredictor(NoisePredictorConfig(**cfg))
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    return path
