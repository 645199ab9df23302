"""InvSR: our adapter vs the authors' driver + pipeline (zsyOAOA/InvSR @ 609788c) at identical random weights.

Usage (authors' checkout in the git-ignored ``.authors/``; their code runs in a subprocess,
``tests/fixtures/invsr_authors_side.py``, because their vendored diffusers shadows ours):

    .venv/bin/python benchmarks/invsr_vs_authors.py                 # full-size predictor, steps 1/3/5 at 128², 100×150 whole image
    .venv/bin/python benchmarks/invsr_vs_authors.py --quick          # small predictor, 16-px patches (seconds)
    .venv/bin/python benchmarks/invsr_vs_authors.py --quick --pin    # rewrite tests/fixtures/invsr_authors_forward.pt
    .venv/bin/python benchmarks/invsr_vs_authors.py --speed          # full SD-2 size (random-sd2) + real predictor size,
                                                                     # LR 64² → 256², steps 1 and 5: s/img both sides

Weights: a tiny SD folder (``save_tiny_sd``, SD-Turbo's Euler scheduler config) read by both with their own
classes; the noise predictor at the released size (33.8 M parameters, seeded random init; ``--quick``: a
small config) saved as ``{'state_dict': {'module.'+k: v}}`` and read by their ``reload_model`` and our
``load_predictor``. Noise: our run draws the two standard-normal tensors per pipeline call (predictor
posterior, VAE posterior) from a seeded generator and records them; their run consumes the same tensors
in the same order (``DiagonalGaussianDistribution.sample`` fed from a queue). LR inputs are rounded to
fp16-representable values (their driver casts patches to fp16; exact then). fp32, CPU.

Prints one JSON line per case: max|Δ|, mean|Δ|, the fraction of output pixels strictly inside (0, 1)
(clamping hides differences elsewhere) and seconds per image for both sides.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
AUTHORS_SIDE = ROOT / "tests" / "fixtures" / "invsr_authors_side.py"
FIXTURE = ROOT / "tests" / "fixtures" / "invsr_authors_forward.pt"

from methods.invsr.method import InvSR
from methods.invsr.predictor import NoisePredictor, NoisePredictorConfig
from methods.invsr.sampler import SD_TURBO_SCHEDULER_CONFIG, published_timesteps
from srbench.nn.sd import save_tiny_sd

#: ``--quick`` predictor (same block types / names as the released one, few channels)
QUICK_PREDICTOR = {
    "block_out_channels": [32, 64],
    "layers_per_block": [1, 1],
    "norm_num_groups": 8,
    "attention_head_dim": 16,
    "temb_channels": 64,
}


def lr_image(b: int, h: int, w: int, seed: int) -> torch.Tensor:
    """A smooth-ish random LR image in [0, 1], fp16-representable."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, max(h // 4, 2), max(w // 4, 2), generator=g)
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)
    x = (x + 0.1 * torch.rand(b, 3, h, w, generator=g)).clamp(0, 1)
    return x.half().float()


def make_weights(root: Path, quick: bool, seed: int = 0) -> dict:
    """Tiny SD folder with SD-Turbo's scheduler config + a predictor state-dict file."""
    folder = save_tiny_sd(root / "sd", seed=seed, scheduler="EulerDiscreteScheduler")
    sched = {"_class_name": "EulerDiscreteScheduler", **SD_TURBO_SCHEDULER_CONFIG}
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(sched, indent=2))
    over = QUICK_PREDICTOR if quick else {}
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in over.items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = NoisePredictor(NoisePredictorConfig(**cfg))
    pth = root / "noise_predictor_sd_turbo_v5.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, pth)
    return {"folder": str(folder), "predictor": str(pth), "predictor_overrides": over}


def make_sd2_weights(root: Path, seed: int = 0) -> dict:
    """A random full-size SD-2.x folder (``random-sd2``: SD-Turbo's UNet/VAE/text-encoder architecture) + the
    full-size predictor, for timing only (fp32 safetensors, ~5 GB on disk)."""
    from srbench.nn.sd import load_sd_components

    tiny = make_weights(root / "tiny", quick=False, seed=seed)  # tokenizer, scheduler, model_index, predictor
    folder = Path(tiny["folder"])
    parts = load_sd_components("random-sd2", seed=seed)
    for name in ("unet", "vae", "text_encoder"):
        getattr(parts, name).save_pretrained(folder / name, safe_serialization=True)
    del parts
    return tiny


def timed_stages(m) -> dict:
    """Wall seconds per network (forward hooks) of our pipeline, accumulated over calls."""
    stages = {
        "predictor": m.pipe.predictor.encoder,
        "vae_encoder": m.pipe.vae.encoder,
        "unet": m.pipe.unet,
        "vae_decoder": m.pipe.vae.decoder,
    }
    acc = dict.fromkeys(stages, 0.0)
    for name, mod in stages.items():
        mod.register_forward_pre_hook(lambda _m, _i, n=name: acc.__setitem__(n, acc[n] - time.perf_counter()))
        mod.register_forward_hook(lambda _m, _i, _o, n=name: acc.__setitem__(n, acc[n] + time.perf_counter()))
    return acc


def speed(root: Path) -> list[dict]:
    """Ours (real path: per-image generators) then theirs (injected noise), LR 64² (one padded 128² patch)."""
    weights = make_sd2_weights(root)
    cases = [
        {
            "name": f"speed64_steps{s}",
            "lr": lr_image(1, 64, 64, s),
            "steps": s,
            "color_fix": "wavelet",
            "pch_size": 128,
            "chop_bs": 8,
        }
        for s in (1, 5)
    ]
    rows, noises = [], []
    for c in cases:
        cfg = {
            "sd": weights["folder"],
            "weights": weights["predictor"],
            "steps": c["steps"],
            "dtype": "fp32",
            "color_fix": "wavelet",
        }
        t0 = time.perf_counter()
        m = InvSR.from_config(cfg, "cpu", torch.float32)
        build = time.perf_counter() - t0
        acc = timed_stages(m)
        t0 = time.perf_counter()
        m.upscale(c["lr"], 4, seeds=[0])
        rows.append(
            {
                "case": c["name"],
                "ours_s_per_img": round(time.perf_counter() - t0, 2),
                "ours_build_s": round(build, 1),
                "ours_stages_s": {k: round(v, 2) for k, v in acc.items()},
            }
        )
        print(json.dumps({"partial": rows[-1]}), flush=True)
        s1, s2 = m.pipe.noise_shapes(128, 128)
        noises.append([torch.randn(1, *s1), torch.randn(1, *s2)])
        del m
    auth = theirs(weights, cases, noises)
    for r, sec in zip(rows, auth["seconds"], strict=True):
        r["theirs_s_per_img"] = round(sec, 2)
        r["speedup_ours_vs_theirs"] = round(sec / r["ours_s_per_img"], 3)
    return rows


def default_cases(quick: bool) -> list[dict]:
    if quick:  # 16-px patches: the same code paths at a fraction of the cost
        p = {"pch_size": 16, "chop_bs": 2}
        return [
            {"name": "patch16_steps1", "lr": lr_image(2, 16, 16, 1), "steps": 1, "color_fix": "", **p},
            {
                "name": "whole12x20_steps3_wavelet",
                "lr": lr_image(1, 12, 20, 2),
                "steps": 3,
                "color_fix": "wavelet",
                **p,
            },
        ]
    p = {"pch_size": 128, "chop_bs": 8}
    return [
        *(
            {"name": f"patch128_steps{s}", "lr": lr_image(1, 128, 128, s), "steps": s, "color_fix": "", **p}
            for s in (1, 3, 5)
        ),
        {
            "name": "whole100x150_steps3_wavelet",
            "lr": lr_image(1, 100, 150, 7),
            "steps": 3,
            "color_fix": "wavelet",
            **p,
        },
    ]


def ours(weights: dict, case: dict, noise_seed: int = 123) -> tuple[torch.Tensor, list[torch.Tensor], float]:
    """Our output, the noise tensors it drew (in the authors' consumption order), seconds."""
    cfg = {
        "sd": weights["folder"],
        "weights": weights["predictor"],
        "predictor": weights["predictor_overrides"] or None,
        "steps": case["steps"],
        "chopping": {"size": case["pch_size"], "batch": case["chop_bs"]},
        "color_fix": case["color_fix"] or "none",
        "color_fix_reference": "authors",
        "dtype": "fp32",
    }
    m = InvSR.from_config(cfg, "cpu", torch.float32)
    g = torch.Generator().manual_seed(noise_seed)
    drawn: list[torch.Tensor] = []

    def patch_noise(positions, s1, s2):
        n1 = torch.randn(len(positions), *s1, generator=g)
        n2 = torch.randn(len(positions), *s2, generator=g)
        drawn.extend([n1, n2])
        return n1, n2

    t0 = time.perf_counter()
    out = m.upscale_injected(case["lr"], patch_noise)
    return out, drawn, time.perf_counter() - t0


def theirs(weights: dict, cases: list[dict], noises: list[list[torch.Tensor]]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spec, out = Path(tmp) / "spec.pt", Path(tmp) / "out.pt"
        torch.save(
            {
                **weights,
                "cases": [
                    {
                        "lr": c["lr"],
                        "timesteps": list(published_timesteps(c["steps"])),
                        "pch_size": c["pch_size"],
                        "chop_bs": c["chop_bs"],
                        "color_fix": c["color_fix"],
                        "noise": n,
                    }
                    for c, n in zip(cases, noises, strict=True)
                ],
            },
            spec,
        )
        proc = subprocess.run(
            [sys.executable, str(AUTHORS_SIDE), str(spec), str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"authors' side failed:\n{proc.stderr[-4000:]}")
        return torch.load(out, weights_only=False)


def compare(cases: list[dict], weights: dict) -> list[dict]:
    results = [ours(weights, c) for c in cases]
    auth = theirs(weights, cases, [r[1] for r in results])
    rows = []
    for c, (o, _, sec), a, asec in zip(cases, results, auth["outputs"], auth["seconds"], strict=True):
        d = (o.float() - a.float()).abs()
        inside = ((a > 0) & (a < 1)).float().mean().item()
        rows.append(
            {
                "case": c["name"],
                "lr": list(c["lr"].shape),
                "steps": c["steps"],
                "max_abs_diff": d.max().item(),
                "mean_abs_diff": d.mean().item(),
                "unclamped_fraction": round(inside, 4),
                "ours_s_per_img": round(sec / c["lr"].shape[0], 3),
                "theirs_s_per_img": round(asec / c["lr"].shape[0], 3),
            }
        )
    return rows, results, auth


def weight_checksums(weights: dict) -> dict:
    """Sums of |w| of the files both sides load (the pinned test checks it rebuilds the same weights)."""
    from safetensors.torch import load_file

    folder = Path(weights["folder"])
    sums = {
        name: float(
            sum(
                v.double().abs().sum()
                for v in load_file(next((folder / name).glob("*.safetensors"))).values()
            )
        )
        for name in ("unet", "vae", "text_encoder")
    }
    sd = torch.load(weights["predictor"], weights_only=True)["state_dict"]
    sums["predictor"] = float(sum(v.double().abs().sum() for v in sd.values()))
    return sums


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small predictor, 16-px patches")
    ap.add_argument(
        "--pin", action="store_true", help="write the authors' outputs to the test fixture (with --quick)"
    )
    ap.add_argument("--speed", action="store_true", help="s/img at full SD-2 size, LR 64², steps 1 and 5")
    args = ap.parse_args()
    if args.speed:
        torch.set_grad_enabled(False)
        with tempfile.TemporaryDirectory() as tmp:
            for r in speed(Path(tmp)):
                print(json.dumps(r), flush=True)
        return
    if args.pin and not args.quick:
        ap.error("--pin needs --quick (the fixture must rebuild in seconds)")
    torch.set_grad_enabled(False)
    cases = default_cases(args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        weights = make_weights(Path(tmp), args.quick)
        rows, results, auth = compare(cases, weights)
        for r in rows:
            print(json.dumps(r))
        if args.pin:
            torch.save(
                {
                    "commit": "609788c",
                    "predictor_overrides": weights["predictor_overrides"],
                    "checksums": weight_checksums(weights),
                    "cases": [
                        {
                            **{k: v for k, v in c.items()},
                            "noise": n,
                            "authors_output": a,
                        }
                        for c, (_, n, _), a in zip(cases, results, auth["outputs"], strict=True)
                    ],
                },
                FIXTURE,
            )
            print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    main()
