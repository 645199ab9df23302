"""OSEDiff: our generator vs the authors' ``OSEDiff_test`` (cswry/OSEDiff @ fcc4f09) at identical weights.

Usage:  python benchmarks/osediff_vs_authors.py --authors .authors [--fixture tests/fixtures/osediff_authors_forward.pt]

How their code runs here (their pins are diffusers 0.25 / peft 0.9; we run diffusers 0.42 / peft 0.21):
* import shim only: their ``models/autoencoder_kl.py`` / ``models/unet_2d_condition.py`` (copies of
  diffusers 0.25 classes) import names that diffusers 0.42 removed, so ``models.autoencoder_kl`` and
  ``models.unet_2d_condition`` are replaced by modules exposing diffusers' own classes;
* ``OSEDiff_test.__init__`` hard-codes CUDA, so the object is made with ``__new__`` and given the
  same attributes its ``__init__`` sets (tokenizer, text encoder, scheduler with ``set_timesteps(1)``,
  VAE, UNet, fp32, t=999) on CPU; then THEIR ``load_ckpt`` and THEIR ``forward`` run unchanged.
  Their tiled VAE hook is not installed (it is a no-op below 1088 px / 246 latent px).
* ``DDPMScheduler.previous_timestep`` given its diffusers-0.25 rule (``t − 1000 // steps`` → −1),
  which 0.42 replaced by a table look-up that fails for their t = 999 after ``set_timesteps(1)``;
* posterior mean in both: ``DiagonalGaussianDistribution.sample`` patched to ``mode`` for their run.

Checks: target lists from THEIR ``initialize_unet``/``initialize_vae`` on the full SD-2.1 architecture
(random weights) equal ours; forward max|Δ| at 128² (untiled) and at a 256²-latent input (their
Gaussian latent tiling, 96 / 32) on a tiny SD folder with a synthetic osediff.pkl written by THEIR
``save_model`` logic.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path

import torch


def _shim_authors(authors: Path) -> types.ModuleType:
    import diffusers

    for name, cls in (("autoencoder_kl", diffusers.AutoencoderKL), ("unet_2d_condition", diffusers.UNet2DConditionModel)):
        mod = types.ModuleType(f"models.{name}")
        setattr(mod, cls.__name__, cls)
        sys.modules[f"models.{name}"] = mod
    sys.modules.setdefault("models", types.ModuleType("models"))
    sys.path.insert(0, str(authors))
    import osediff as theirs

    return theirs


def target_lists(theirs: types.ModuleType) -> dict[str, tuple[int, bool]]:
    """Their list builders on the full SD-2.1 architecture (meta tensors: names only) vs ours."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from methods.osediff.lora import unet_lora_targets, vae_lora_targets
    from srbench.nn.sd import SD2_UNET_CONFIG, SD2_VAE_CONFIG

    def build(cfg, cls):
        with torch.device("meta"):
            return cls(**cfg)

    args = types.SimpleNamespace(pretrained_model_name_or_path="unused", lora_rank=4)
    orig_u, orig_v = UNet2DConditionModel.from_pretrained, AutoencoderKL.from_pretrained
    UNet2DConditionModel.from_pretrained = classmethod(lambda cls, *a, **k: build(SD2_UNET_CONFIG, UNet2DConditionModel))
    AutoencoderKL.from_pretrained = classmethod(lambda cls, *a, **k: build(SD2_VAE_CONFIG, AutoencoderKL))
    try:
        _, enc, dec, oth = theirs.initialize_unet(args)
        _, venc = theirs.initialize_vae(args)
    finally:
        UNet2DConditionModel.from_pretrained, AutoencoderKL.from_pretrained = orig_u, orig_v
    ours_u = unet_lora_targets(build(SD2_UNET_CONFIG, UNet2DConditionModel))
    ours_v = vae_lora_targets(build(SD2_VAE_CONFIG, AutoencoderKL))
    return {
        "unet_encoder": (len(enc), enc == ours_u["default_encoder"]),
        "unet_decoder": (len(dec), dec == ours_u["default_decoder"]),
        "unet_others": (len(oth), oth == ours_u["default_others"]),
        "vae_encoder(dedup)": (len(dict.fromkeys(venc)), list(dict.fromkeys(venc)) == ours_v),
        "vae_encoder(raw, with repeats)": (len(venc), True),
    }


def _synthetic_pkl(folder: Path, out: Path, seed: int = 1) -> None:
    """A checkpoint as their ``save_model`` writes it, with non-zero random LoRA and conv_in values."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from methods.osediff.checkpoint import fill_trained_random, save_osediff_checkpoint
    from methods.osediff.lora import add_osediff_adapters, unet_lora_targets, vae_lora_targets

    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    ut, vt = unet_lora_targets(unet), vae_lora_targets(vae)
    add_osediff_adapters(unet, vae, unet_targets=ut, vae_targets=vt)
    fill_trained_random(unet, vae, seed=seed)
    save_osediff_checkpoint(out, unet, vae, ut, vt)


def _theirs_model(theirs, folder: Path, pkl: Path):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    m = theirs.OSEDiff_test.__new__(theirs.OSEDiff_test)
    torch.nn.Module.__init__(m)
    m.args = types.SimpleNamespace(latent_tiled_size=96, latent_tiled_overlap=32, merge_and_unload_lora=False)
    m.device = torch.device("cpu")
    m.tokenizer = AutoTokenizer.from_pretrained(folder, subfolder="tokenizer")
    m.text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder")
    m.noise_scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    m.noise_scheduler.set_timesteps(1, device="cpu")
    # diffusers 0.25 semantics of DDPMScheduler.previous_timestep (their pin): t − 1000 // steps.
    # 0.42 looks t up in .timesteps ([1] after set_timesteps(1)) and fails for t = 999.
    sch = m.noise_scheduler
    sch.previous_timestep = lambda t: t - sch.config.num_train_timesteps // sch.num_inference_steps
    m.vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    m.unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    m.weight_dtype = torch.float32
    m.load_ckpt(torch.load(pkl, weights_only=False))
    m.timesteps = torch.tensor([999]).long()
    return m


def _ours_model(folder: Path, pkl: Path, merged: bool):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    from methods.osediff.checkpoint import load_osediff_checkpoint
    from methods.osediff.lora import merge_lora
    from methods.osediff.model import OSEDiffGenerator

    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    load_osediff_checkpoint(unet, vae, pkl)
    if merged:
        merge_lora(unet)
        merge_lora(vae)
    sched = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    return OSEDiffGenerator(unet, vae, sched.alphas_cumprod).eval()


def forward_parity(theirs, size_px: dict[str, int], seed: int = 0) -> dict[str, dict]:
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    from methods.osediff.tiles import tiled_eps
    from srbench.nn.sd import save_tiny_sd

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_tiny_sd(Path(tmp) / "sd", seed=seed)
        pkl = Path(tmp) / "osediff.pkl"
        _synthetic_pkl(folder, pkl)
        ref = _theirs_model(theirs, folder, pkl)
        ours = {m: _ours_model(folder, pkl, m) for m in (False, True)}
        prompt = "a photo of the sea"
        orig_sample = DiagonalGaussianDistribution.sample
        for label, px in size_px.items():
            g = torch.Generator().manual_seed(seed + px)
            x = torch.rand(1, 3, px, px, generator=g) * 2 - 1
            DiagonalGaussianDistribution.sample = lambda self, generator=None: self.mode()
            try:
                with torch.no_grad():
                    y_ref = ref(x, prompt)
            finally:
                DiagonalGaussianDistribution.sample = orig_sample
            text = ref.encode_prompt([prompt])  # same prompt embedding in both
            entry = {"shape": list(y_ref.shape), "ref_slice": y_ref[0, :, :4, :4].clone()}
            for merged, gen in ours.items():
                with torch.no_grad():
                    tiled = lambda z, c, gen=gen: tiled_eps(gen.eps, z, c, tile=96, overlap=32)
                    y, _ = gen(x, text, sample=False, eps_fn=tiled)
                entry["max_abs_merged" if merged else "max_abs_unmerged"] = float((y - y_ref).abs().max())
            results[label] = entry
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", type=Path, default=Path(".authors"))
    ap.add_argument("--fixture", type=Path, default=None, help="write their outputs' corner slices here")
    a = ap.parse_args()
    theirs = _shim_authors(a.authors.resolve())
    print("target lists (their count, equal to ours):")
    for k, v in target_lists(theirs).items():
        print(f"  {k}: {v[0]} modules, equal={v[1]}")
    res = forward_parity(theirs, {"128px": 128, "128latent_tiled": 1024})
    for k, v in res.items():
        print(f"{k}: out {v['shape']}  max|Δ| unmerged {v['max_abs_unmerged']:.3e}  merged {v['max_abs_merged']:.3e}")
    if a.fixture:
        torch.save({k: v["ref_slice"] for k, v in res.items()}, a.fixture)
        print("fixture written:", a.fixture)


if __name__ == "__main__":
    main()
