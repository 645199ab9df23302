"""OSEDiff: our code vs the authors' inference (cswry/OSEDiff @ fcc4f09 ``test_osediff.py``) at identical weights.

Usage:  python -u benchmarks/osediff_vs_authors.py --authors .authors [--fixture tests/fixtures/osediff_authors_forward.npz]
        [--skip-lists] [--cases 0,2]

How their code runs here (their pins are diffusers 0.25 / peft 0.9; we run diffusers 0.42 / peft 0.21),
fp32 on CPU, THEIR ``test_osediff.py`` main executed with ``runpy`` and these shims only:
* their ``models/autoencoder_kl.py`` / ``models/unet_2d_condition.py`` (copies of diffusers 0.25
  classes) import names that diffusers 0.42 removed: ``models.*`` are replaced by diffusers' classes;
* ``OSEDiff_test.__init__`` hard-codes CUDA: replaced by the same steps on CPU (tokenizer, text
  encoder, scheduler + ``set_timesteps(1)``, VAE, UNet, THEIR ``_init_tiled_vae`` hook, THEIR
  ``load_ckpt``, optional THEIR ``merge_and_unload``); their ``forward`` runs unchanged;
* ``DDPMScheduler.previous_timestep`` gets its diffusers-0.25 rule (``t − 1000 // steps`` → −1);
  0.42 looks t up in a table and fails for their t = 999 after ``set_timesteps(1)``;
* their script moves tensors to the literal device "cuda": ``Tensor.to("cuda")`` → CPU while it runs;
* no RAM/DAPE weights exist here: ``ram`` is a stand-in whose tagger returns "sea, sky, boat", so
  their script builds the prompt ``"sea, sky, boat, ,"`` itself (DAPE parity is a separate item);
* posterior mean in their run (``DiagonalGaussianDistribution.sample`` → ``mode``); ours ``mode: true``.

Weights: a tiny SD folder (``save_tiny_sd(seed=0)``) and an osediff.pkl made by THEIR
``initialize_unet``/``initialize_vae`` (their full target lists on that folder), every trained tensor
filled by our ``fill_trained_random(seed=1)``, written by THEIR ``OSEDiff_gen.save_model``; ours
loads that file strictly.

Prints one line per case as it finishes: pre-processing max|Δ| (their ``lq`` vs ours), float max|Δ|
of the network output (their ``OSEDiff_test.forward`` vs our generator on their ``lq`` with the same
prompt through our ``encode_prompt``; peft LoRA unmerged and merged), and uint8 max|Δ| of their saved
PNG vs our adapter's ``upscale`` (plus ours with their two ``ToPILImage`` truncations inserted).
Before that, the target lists THEIR builders make on the full SD-2.1 architecture vs ours.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch


def _shim_authors(authors: Path) -> types.ModuleType:
    import diffusers

    for name, cls in (
        ("autoencoder_kl", diffusers.AutoencoderKL),
        ("unet_2d_condition", diffusers.UNet2DConditionModel),
    ):
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
    UNet2DConditionModel.from_pretrained = classmethod(
        lambda cls, *a, **k: build(SD2_UNET_CONFIG, UNet2DConditionModel)
    )
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


def _cpu_init(theirs):
    """``OSEDiff_test.__init__`` as they wrote it, minus the hard-coded CUDA moves (so: on CPU)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    def __init__(self, args):
        torch.nn.Module.__init__(self)
        self.args = args
        self.device = torch.device("cpu")
        src = args.pretrained_model_name_or_path
        self.tokenizer = AutoTokenizer.from_pretrained(src, subfolder="tokenizer")
        self.text_encoder = CLIPTextModel.from_pretrained(src, subfolder="text_encoder")
        self.noise_scheduler = DDPMScheduler.from_pretrained(src, subfolder="scheduler")
        self.noise_scheduler.set_timesteps(1, device="cpu")
        # diffusers 0.25 semantics of DDPMScheduler.previous_timestep (their pin): t − 1000 // steps.
        # 0.42 looks t up in .timesteps ([1] after set_timesteps(1)) and fails for t = 999.
        sch = self.noise_scheduler
        sch.previous_timestep = lambda t: t - sch.config.num_train_timesteps // sch.num_inference_steps
        self.vae = AutoencoderKL.from_pretrained(src, subfolder="vae")
        self.unet = UNet2DConditionModel.from_pretrained(src, subfolder="unet")
        # THEIR tiled-VAE hook (a pass-through below 1088 px encode / 246 latent px decode)
        self._init_tiled_vae(
            encoder_tile_size=args.vae_encoder_tiled_size, decoder_tile_size=args.vae_decoder_tiled_size
        )
        self.weight_dtype = torch.float16 if args.mixed_precision == "fp16" else torch.float32
        self.load_ckpt(torch.load(args.osediff_path, weights_only=False))
        if self.args.merge_and_unload_lora:
            self.vae = self.vae.merge_and_unload()
            self.unet = self.unet.merge_and_unload()
        for m in (self.unet, self.vae, self.text_encoder):
            m.to(dtype=self.weight_dtype)
        self.timesteps = torch.tensor([999]).long()

    theirs.OSEDiff_test.__init__ = __init__


def _stub_ram(tags: str) -> None:
    """Their script imports RAM/DAPE; we give it a stand-in whose tags are ``tags`` (no RAM weights
    here; the SR network is checked with a known prompt, DAPE separately)."""

    class _Tagger(torch.nn.Module):
        def forward(self, x):  # pragma: no cover - never called, inference() is stubbed
            raise AssertionError

    ram_pkg, models_pkg, lora_mod = (
        types.ModuleType(n) for n in ("ram", "ram.models", "ram.models.ram_lora")
    )
    lora_mod.ram = lambda **kw: _Tagger()
    ram_pkg.inference_ram = lambda image, model: [tags]
    ram_pkg.models, models_pkg.ram_lora = models_pkg, lora_mod
    sys.modules.update({"ram": ram_pkg, "ram.models": models_pkg, "ram.models.ram_lora": lora_mod})


class _CudaToCpu:
    """Their script sends tensors to the literal device "cuda"; send them to the CPU instead."""

    def __enter__(self):
        self.orig = orig = torch.Tensor.to

        def to(t, *args, **kw):
            args = tuple("cpu" if a == "cuda" else a for a in args)
            if kw.get("device") == "cuda":
                kw["device"] = "cpu"
            return orig(t, *args, **kw)

        torch.Tensor.to = to

    def __exit__(self, *exc):
        torch.Tensor.to = self.orig


def write_their_checkpoint(theirs, folder: Path, pkl: Path, seed: int = 1) -> None:
    """The synthetic osediff.pkl: THEIR ``initialize_unet``/``initialize_vae`` (target lists and
    adapters on the tiny SD folder), every trained tensor filled by ``fill_trained_random``, written
    by THEIR ``OSEDiff_gen.save_model``."""
    from methods.osediff.checkpoint import fill_trained_random

    args = types.SimpleNamespace(pretrained_model_name_or_path=str(folder), lora_rank=4)
    gen = theirs.OSEDiff_gen.__new__(theirs.OSEDiff_gen)
    torch.nn.Module.__init__(gen)
    gen.vae, gen.lora_vae_modules_encoder = theirs.initialize_vae(args)
    gen.unet, gen.lora_unet_modules_encoder, gen.lora_unet_modules_decoder, gen.lora_unet_others = (
        theirs.initialize_unet(args)
    )
    gen.lora_rank_unet = gen.lora_rank_vae = 4
    fill_trained_random(gen.unet, gen.vae, seed=seed)
    gen.save_model(str(pkl))


def run_their_script(
    authors: Path,
    lr_dir: Path,
    out_dir: Path,
    folder: Path,
    pkl: Path,
    *,
    tags: str,
    process_size: int,
    tile: int = 96,
    overlap: int = 32,
) -> dict[str, dict]:
    """THEIR ``test_osediff.py`` main, fp32, on every PNG of ``lr_dir``; posterior mean (``sample`` → ``mode``).

    Returns per image name: the network input ``lq`` (their pre-processing, [-1, 1]), the prompt
    string their script built, their float output and their saved PNG (uint8, after their colour fix).
    """
    import runpy

    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from PIL import Image

    _stub_ram(tags)
    theirs = sys.modules["osediff"]
    seen: dict[str, dict] = {}
    forward = theirs.OSEDiff_test.forward

    def spy(self, lq, prompt):
        out = forward(self, lq, prompt)
        seen[f"call{len(seen)}"] = {"lq": lq.clone(), "prompt": prompt, "out": out.clone()}
        return out

    argv = [
        "test_osediff.py", "-i", str(lr_dir), "-o", str(out_dir), "--pretrained_model_name_or_path", str(folder),
        "--osediff_path", str(pkl), "--mixed_precision", "fp32", "--process_size", str(process_size),
        "--latent_tiled_size", str(tile), "--latent_tiled_overlap", str(overlap), "--align_method", "adain",
    ]  # fmt: skip
    orig_sample, orig_argv = DiagonalGaussianDistribution.sample, sys.argv
    theirs.OSEDiff_test.forward = spy
    DiagonalGaussianDistribution.sample = lambda self, generator=None: self.mode()
    sys.argv = argv
    try:
        with _CudaToCpu(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(authors / "test_osediff.py"), run_name="__main__")
    finally:
        theirs.OSEDiff_test.forward, DiagonalGaussianDistribution.sample, sys.argv = (
            forward,
            orig_sample,
            orig_argv,
        )
    names = sorted(p.name for p in lr_dir.glob("*.png"))  # their glob order (sorted)
    return {
        n: {**seen[f"call{i}"], "png": np.asarray(Image.open(out_dir / n).convert("RGB")).copy()}
        for i, n in enumerate(names)
    }


def _ours(folder: Path, pkl: Path, *, merged: bool, process_size: int, tile: int, overlap: int, prompt: str):
    from methods.osediff.method import OSEDiff

    cfg = {"sd": str(folder), "weights": str(pkl), "mode": True, "dtype": "fp32", "merge_lora": merged,
           "process_size": process_size, "latent_tiled_size": tile, "latent_tiled_overlap": overlap,
           "prompt": prompt, "color_fix": "adain"}  # fmt: skip
    return OSEDiff.from_config(cfg, "cpu", torch.float32)


CASES = (  # (label, LR h, LR w, process_size, latent tile, overlap)
    ("LR 32x32 -> 128x128 px (latent 16x16, untiled)", 32, 32, 128, 96, 32),
    ("LR 48x40 -> 192x160 px (latent 24x20, untiled)", 48, 40, 128, 96, 32),
    ("LR 48x40 -> 192x160 px (latent 24x20, tiled 16/8)", 48, 40, 128, 16, 8),
    ("LR 32x32 @ process_size 512 -> 512x512 px (their enlargement, latent 64x64)", 32, 32, 512, 96, 32),
)
FIXTURE_CASES = (  # the small forwards pinned in tests/fixtures/osediff_authors_forward.npz
    ("untiled", 16, 16, 64, 96, 32),  # 64x64 px, latent 8x8
    ("tiled", 24, 20, 64, 8, 4),  # 96x80 px, latent 12x10, tile 8 overlap 4
)
TAGS = "sea, sky, boat"  # the stand-in tagger's output; their script makes the prompt "sea, sky, boat, ,"


def lr_image(h: int, w: int, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(h, w, 3, generator=g) * 255).round().to(torch.uint8).numpy()


def parity_case(authors: Path, folder: Path, pkl: Path, tmp: Path, label, h, w, ps, tile, ov, seed=0) -> dict:
    """One LR image through their script and ours; float max|Δ| of the network output, uint8 max|Δ| of the PNG."""
    from PIL import Image

    from methods.osediff.preprocess import preprocess
    from methods.osediff.tiles import tiled_eps
    from srbench.nn.colorfix import color_fix
    from srbench.nn.sd import encode_prompt

    work = Path(tempfile.mkdtemp(dir=tmp))
    (work / "lr").mkdir()
    lr = lr_image(h, w, seed + h * 1000 + w)
    Image.fromarray(lr).save(work / "lr" / "img.png")
    ref = run_their_script(
        authors, work / "lr", work / "out", folder, pkl, tags=TAGS, process_size=ps, tile=tile, overlap=ov
    )["img.png"]
    lr_t = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255
    res = {
        "label": label,
        "their_input": tuple(ref["lq"].shape[-2:]),
        "prompt": ref["prompt"],
        "lr": lr,
        "ref": ref,
    }
    res["preprocess_max_abs"] = float((preprocess(lr_t, process_size=ps) * 2 - 1 - ref["lq"]).abs().max())
    for merged in (False, True):
        m = _ours(folder, pkl, merged=merged, process_size=ps, tile=tile, overlap=ov, prompt=ref["prompt"])
        with torch.no_grad():
            text = encode_prompt(m.parts, [ref["prompt"]])
            fn = lambda z, t, m=m: tiled_eps(m.gen.eps, z, t, tile=tile, overlap=ov)
            y, _ = m.gen(ref["lq"], text, sample=False, eps_fn=fn)
            key = "merged" if merged else "unmerged"
            res[f"float_{key}"] = float((y - ref["out"]).abs().max())
            if tuple(ref["png"].shape[:2]) == (4 * h, 4 * w):  # their output is 4× only without enlargement
                sr = m.upscale(lr_t, 4, seeds=[0])[0]
                ours_u8 = (sr * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
                d = np.abs(ours_u8.astype(int) - ref["png"].astype(int))
                res[f"png_{key}"] = (int(d.max()), float((d > 1).mean()))
                if not merged:  # the explanation: their two ToPILImage truncations (mul(255).byte())
                    trunc = lambda t: (t * 255).to(torch.uint8).float() / 255
                    src = (ref["lq"] + 1) / 2
                    fixed = trunc(color_fix(trunc(y * 0.5 + 0.5), src, "adain").clamp(0, 1))
                    d = np.abs(
                        (fixed[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().astype(int)
                        - ref["png"]
                    )
                    res["png_truncated_as_theirs"] = int(d.max())
        del m
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", type=Path, default=Path(".authors"))
    ap.add_argument("--fixture", type=Path, default=None, help="write THEIR small forwards here (npz)")
    ap.add_argument("--skip-lists", action="store_true", help="skip the full-size target-list check")
    ap.add_argument("--cases", type=str, default="all", help="comma-separated case indices, or 'all'")
    a = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    authors = a.authors.resolve()
    theirs = _shim_authors(authors)
    _cpu_init(theirs)
    if not a.skip_lists:
        print("target lists on the full SD-2.1 architecture (their count, equal to ours):", flush=True)
        for k, v in target_lists(theirs).items():
            print(f"  {k}: {v[0]} modules, equal={v[1]}", flush=True)
    from srbench.nn.sd import save_tiny_sd

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = save_tiny_sd(tmp / "sd", seed=0)
        pkl = tmp / "osediff.pkl"
        write_their_checkpoint(theirs, folder, pkl)
        print(
            f"tiny SD + their save_model pkl ({len(torch.load(pkl, weights_only=False)['state_dict_unet'])} UNet tensors)",
            flush=True,
        )
        picks = range(len(CASES)) if a.cases == "all" else [int(i) for i in a.cases.split(",")]
        for i in picks:
            t0 = time.perf_counter()
            r = parity_case(authors, folder, pkl, tmp, *CASES[i])
            png = (
                "; ".join(
                    f"PNG uint8 {k} max|Δ| {r[f'png_{k}'][0]} (>1 level: {100 * r[f'png_{k}'][1]:.3f}% of values)"
                    for k in ("unmerged", "merged")
                    if f"png_{k}" in r
                )
                or "PNG: sizes differ (their enlargement bug)"
            )
            if "png_truncated_as_theirs" in r:
                png += f"; ours with their two uint8 truncations: PNG max|Δ| {r['png_truncated_as_theirs']}"
            print(
                f"{r['label']}: their input {r['their_input']}, prompt {r['prompt']!r}, pre-processing max|Δ| "
                f"{r['preprocess_max_abs']:.1e}; float max|Δ| unmerged {r['float_unmerged']:.3e} merged "
                f"{r['float_merged']:.3e}; {png}  [{time.perf_counter() - t0:.1f}s]",
                flush=True,
            )
        if a.fixture:
            arrays = {}
            for label, h, w, ps, tile, ov in FIXTURE_CASES:
                r = parity_case(authors, folder, pkl, tmp, label, h, w, ps, tile, ov)
                arrays.update({f"{label}_lr": r["lr"], f"{label}_lq": r["ref"]["lq"][0].numpy(),
                               f"{label}_out": r["ref"]["out"][0].numpy(), f"{label}_png": r["ref"]["png"],
                               f"{label}_meta": np.array([h, w, ps, tile, ov])})  # fmt: skip
                print(
                    f"fixture {label}: float max|Δ| unmerged {r['float_unmerged']:.3e} merged {r['float_merged']:.3e}",
                    flush=True,
                )
            arrays["prompt"] = np.array(r["prompt"])
            np.savez_compressed(a.fixture, **arrays)
            print("fixture written:", a.fixture, flush=True)


if __name__ == "__main__":
    main()
