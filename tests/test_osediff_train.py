"""OSEDiff training: gradient routing of the two phases, the VSD gradient, srbench-train with two
optimizers and exact resume, the missing LPIPS-VGG line. Tiny SD, 64² patches, CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from methods.osediff.method import OSEDiff
from methods.osediff.train import resize_bak
from srbench.nn.sd import save_tiny_sd
from srbench.weights import MissingWeightsError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sd(tmp_path_factory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("osediff_train") / "sd")


def _trainer(sd, **train):
    from methods.osediff.checkpoint import fill_trained_random

    m = OSEDiff.from_config({"sd": str(sd), "weights": "random", "merge_lora": False, "prompt": "a photo"}, "cpu",
                            torch.float32)  # fmt: skip
    fill_trained_random(m.gen.unet, m.gen.vae, seed=2, scale=0.02)  # non-zero B: every LoRA path carries gradient
    return m.trainer({"method": {"train": {"lpips_weights": "random", **train}}})


def _batch(seed=0, n=1):
    g = torch.Generator().manual_seed(seed)
    return {"hr": torch.rand(n, 3, 64, 64, generator=g), "lr": torch.rand(n, 3, 16, 16, generator=g),
            "keys": [(0, i) for i in range(n)]}  # fmt: skip


def _grads(module):
    return {n: p.grad for n, p in module.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_gradients_reach_only_the_phase_parameters(sd):
    """Generator phase (MSE + LPIPS + VSD): the generator's LoRA + conv_in only — the frozen real
    UNet and the fake UNet get none. Regulariser phase: only the fake UNet's LoRA."""
    tr = _trainer(sd)
    batch = _batch()
    torch.manual_seed(0)
    out = tr.training_step(batch, "generator")
    assert {"loss", "loss_l2", "loss_lpips", "loss_vsd"} <= set(out) and all(torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    g_unet, g_vae = _grads(tr.gen.unet), _grads(tr.gen.vae)
    assert g_unet and all("lora" in n or n.startswith("conv_in.") for n in g_unet)
    assert "conv_in.base_layer.weight" in g_unet and any("lora_B.default_decoder" in n for n in g_unet)
    assert g_vae and all("lora" in n and n.startswith(("encoder.", "quant_conv.")) for n in g_vae)
    assert not _grads(tr.real_unet) and not _grads(tr.fake_unet)
    assert not any(p.requires_grad for p in tr.real_unet.parameters())
    for m in (tr.gen.unet, tr.gen.vae):
        m.zero_grad(set_to_none=True)
    out = tr.training_step(batch, "regulariser")
    out["loss"].backward()
    g_fake = _grads(tr.fake_unet)
    assert g_fake and all("lora" in n for n in g_fake) and not any("conv_in.base_layer" in n for n in g_fake)
    assert not _grads(tr.gen.unet) and not _grads(tr.gen.vae) and not _grads(tr.real_unet)
    with pytest.raises(RuntimeError, match="without the generator phase"):
        tr.training_step(batch, "regulariser")


def test_vsd_gradient_is_the_score_difference(sd):
    """∂L_VSD/∂ẑ = 2·(x0_fake − x0_real) / (w·N), w = mean|ẑ − x0_real| per sample (MSE against a stop-grad target)."""
    tr = _trainer(sd)
    text, neg = tr._text(2, torch.device("cpu"))
    z0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    torch.manual_seed(5)
    x0_fake, x0_real = tr.vsd_targets(z0, text, neg)
    torch.manual_seed(5)
    tr.vsd_loss(z0, text, neg).backward()
    w = (z0.detach() - x0_real).abs().mean(dim=(1, 2, 3), keepdim=True)
    expected = 2 * (x0_fake - x0_real) / w / z0.numel()
    assert expected.abs().max() > 0
    torch.testing.assert_close(z0.grad, expected, rtol=1e-5, atol=1e-9)
    # classifier-free guidance is applied: with cfg 1 (no guidance) x0_real changes
    tr.opts.cfg_vsd = 1.0
    torch.manual_seed(5)
    assert (tr.vsd_targets(z0, text, neg)[1] - x0_real).abs().max() > 1e-4


def test_resize_bak_is_gt_size_and_8_bit():
    out = resize_bak(torch.rand(2, 3, 16, 20), (64, 80))
    assert out.shape == (2, 3, 64, 80) and torch.equal(out, (out * 255).round() / 255)


def test_missing_lpips_vgg_is_one_line(sd, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    m = OSEDiff.from_config({"sd": str(sd), "weights": "random", "merge_lora": False}, "cpu", torch.float32)
    with pytest.raises(MissingWeightsError) as err:
        m.trainer({"method": {"train": {}}})
    assert "\n" not in str(err.value) and "vgg16-397923af.pth" in str(err.value)


def test_srbench_train_two_optimizers_resume_exactly(sd, tmp_path):
    """srbench-train, VSD on, Real-ESRGAN LQ from real photos: 2 steps straight == 1 step, stop,
    resume, 1 step — bit for bit, for the generator, the fake UNet and both AdamW states."""
    import skimage.data
    from PIL import Image

    from srbench.runners.train import compose_config, train
    from srbench.training import load_checkpoint

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "coffee"):  # real photographs shipped with scikit-image
        Image.fromarray(getattr(skimage.data, name)()).save(photos / f"{name}.png")

    opt = "{_target_:torch.optim.AdamW,_partial_:true,lr:1e-3,weight_decay:0.01,clip:{mode:norm,value:1.0}}"

    def over(run, steps):
        return ["method=osediff", f"method.sd={sd}", "method.weights=random", "method.merge_lora=false",
                "method.train.lpips_weights=random", f"dataset.hr_dir={photos}",
                "dataset.patch_size=64", "dataset.degradation=realesrgan", "dataset.cache_hr=true", "batch_size=1",
                "num_workers=0", "log_every=1", "validate_every=0", "logger=none", f"results_dir={tmp_path / 'r'}",
                f"run_name={run}", "checkpoint_every=1", f"max_steps={steps}",
                f"optimizers={{generator:{opt},regulariser:{opt}}}"]  # fmt: skip

    straight = train(compose_config(over("straight", 2)))
    assert {"loss/generator", "loss_l2/generator", "loss_lpips/generator", "loss_vsd/generator",
            "loss/regulariser", "grad_norm/generator", "grad_norm/regulariser"} <= set(straight.history[0])  # fmt: skip
    assert all(torch.isfinite(torch.tensor(float(v))) for r in straight.history for v in r.values())
    train(compose_config(over("resumed", 1)))
    second = train(compose_config(over("resumed", 2)))
    assert second.resumed_from is not None
    a = load_checkpoint(tmp_path / "r" / "train" / "osediff" / "straight")
    b = load_checkpoint(tmp_path / "r" / "train" / "osediff" / "resumed")
    assert set(a["optimizers"]) == {"generator", "regulariser"}
    for name in a["modules"]:
        assert a["modules"][name].keys() == b["modules"][name].keys()
        for k, v in a["modules"][name].items():
            assert torch.equal(v, b["modules"][name][k]), f"{name}.{k}"
    for name in a["optimizers"]:
        for sa, sb in zip(a["optimizers"][name]["state"].values(), b["optimizers"][name]["state"].values(), strict=True):
            for k in sa:
                assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), f"{name} AdamW {k}"
    trained = a["modules"]["fake_unet"]
    assert trained and all("lora" in k for k in trained)  # only the fake UNet's LoRA is checkpointed there
