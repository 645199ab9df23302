"""ECDP's Hydra configs compose with the bench/train roots and build the published models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from methods.ecdp.method import ECDP, ECDPConfig

CONF = Path(__file__).resolve().parents[1] / "conf"
# spec /work/shared/design/methods/ecdp.md §1.3 (measured on the authors' modules; DF2K = paper's 42.6M)
SPEC_TOTALS = {"ecdp": 42_587_846, "ecdp_imagenet": 37_551_878, "ecdp_celeba": 31_796_486}
# encoder depth and selected blocks from the authors' conf/ecdp-{df2k,imagenet,celeba}-train.yaml
SPEC_ENCODERS = {"ecdp": (23, [1, 8, 15, 22]), "ecdp_imagenet": (16, [1, 5, 10, 15]), "ecdp_celeba": (8, [1, 3, 5, 7])}


def _compose(root: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(root, overrides=overrides)


@pytest.mark.parametrize("name", sorted(SPEC_TOTALS))
def test_method_configs_build_the_published_models(name):
    cfg = _compose("bench", [f"method={name}"]).method
    ecfg = ECDPConfig.from_mapping(cfg)
    net = ecfg.build_net()
    assert sum(p.numel() for p in net.parameters()) == SPEC_TOTALS[name]
    assert (cfg.encoder.num_blocks, list(cfg.encoder.block_selection)) == SPEC_ENCODERS[name]
    assert net.lr_feats.block_selection == SPEC_ENCODERS[name][1]
    # torchvision < 0.17 resize (no antialias), which the published code was written against
    assert cfg.antialias is False and net.antialias is False and net.unet.antialias is False
    assert cfg.sampler.method == "dopri5" and cfg.sampler.rtol == cfg.sampler.atol == 1e-3
    assert (cfg.sampler.tau_start, cfg.sampler.tau_end) == (300.0, 0.1)
    assert cfg.dtype == "fp32" and cfg.residual_scale == 5.0 and cfg.temperature == 1.0


@pytest.mark.parametrize(
    "experiment,method,dataset,scale,batch",
    [
        ("ecdp_div2k_x4", "df2k", "div2k", 4, 1),
        ("ecdp_imagenet_64_256", "imagenet", "imagenet", 4, 6),
        ("ecdp_celeba_x8", "celeba", "celeba", 8, 24),
    ],
)
def test_paper_table_presets(experiment, method, dataset, scale, batch):
    cfg = _compose("bench", [f"experiment={experiment}"])
    assert (cfg.method.variant, cfg.dataset.name, cfg.method.scale, cfg.batch_size) == (
        method,
        dataset,
        scale,
        batch,
    )
    assert cfg.dataset.scale == scale and cfg.metrics.profile == "piq-rgb"


@pytest.mark.parametrize("experiment", ["ecdp_div2k_x4", "ecdp_imagenet_64_256", "ecdp_celeba_x8"])
def test_paper_presets_run_in_fp32_on_a_gpu(experiment):
    """The bench resolves method.dtype (auto would be bf16 on CUDA); the papers' numbers are fp32."""
    from srbench.devices import resolve_dtype

    method_cfg = _compose("bench", [f"experiment={experiment}", "method.weights=random"]).method
    dtype = resolve_dtype(method_cfg.get("dtype"), torch.device("cuda"))  # what the bench does on a GPU
    assert dtype == torch.float32
    # the same config with dtype=auto would run in bf16 on a GPU: the preset must not rely on auto
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16


@pytest.mark.parametrize("dataset", ["df2k", "imagenet", "celeba"])
def test_training_presets_follow_the_authors_configs(dataset):
    # (batch, lr, EMA N) per stage from the authors' conf/{rrdbnet,ecdp}-<dataset>-*.yaml
    published = {
        "df2k": {"regressor": (32, 2e-4, None), "diffusion": (16, 1e-4, 1000), "finetune": (12, 1e-5, 10)},
        "imagenet": {"regressor": (32, 2e-4, None), "diffusion": (6, 2e-4, 1000), "finetune": (6, 1e-5, 10)},
        "celeba": {"regressor": (64, 2e-4, None), "diffusion": (12, 1e-4, 1000), "finetune": (12, 1e-5, 10)},
    }[dataset]
    for stage, (batch, lr, ema_n) in published.items():
        cfg = _compose("train", [f"experiment=ecdp_train_{dataset}_{stage}"])
        assert cfg.method.train.stage == stage and cfg.batch_size == batch and cfg.optimizer.lr == lr
        assert (cfg.ema.n if cfg.ema.enabled else None) == ema_n
        assert cfg.clip.mode == "value" and cfg.clip.value == 10.0
        assert cfg.schedule.warmup_steps == (1 if stage == "finetune" else 500)
        assert (
            cfg.dataset.scale == (8 if dataset == "celeba" else 4) and cfg.dataset.hflip and cfg.dataset.rot90
        )
    assert cfg.method.train.percep_weight == (1.0 if dataset == "celeba" else 0.5)


def test_tiny_config_runs():
    cfg = _compose(
        "bench", ["method=ecdp_tiny", "method.sampler.method=euler", "method.sampler.steps=2"]
    ).method
    out = ECDP.from_config(cfg, "cpu").upscale(torch.rand(1, 3, 4, 4), 4, seeds=[0])
    assert out.shape == (1, 3, 16, 16)
