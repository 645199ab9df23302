"""InvSR SRMethod adapter: ×4, 1–5 steps (or a custom timestep list), batched.

Per batch (spec §3): the authors' whole-image driver (:mod:`.driver`: reflect padding, 128-patch /
64-stride Gaussian chopping, crop back) around the per-patch pipeline (:mod:`.pipeline`: noise
predictor → VE start latent → S Euler steps of SD-Turbo's UNet → VAE decode), then the wavelet colour
fix of the authors' reproduction setting (README: "add ``--color_fix wavelet``"). The two random draws
(predictor posterior, VAE posterior) come from each image's own ``torch.Generator`` (seeded by the
runner), drawn patch by patch in the authors' patch order, so an image's output does not depend on
batch size or chopping batch; ``mode: true`` takes both posterior means instead.

``tiling: shared`` replaces the 128-patch chopping by the shared SD tiler (:mod:`srbench.nn.sd_tiling`)
on the whole image: the VAE, predictor and UNet each tiled on their own input. Not the authors'
numbers (different context per patch, no 4× redundant compute); for large images.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F

from srbench.devices import method_device_dtype
from srbench.method import SRMethod
from srbench.nn.colorfix import color_fix
from srbench.nn.noise import generators
from srbench.nn.precision import precision_name, run_with_precision_guard
from srbench.nn.sd import encode_prompt, load_sd_components
from srbench.nn.sd_tiling import SDTiling, tiled_latent_apply, tiled_vae_decode, tiled_vae_moments
from srbench.nn.tiling import TilePosition, tiled_apply
from srbench.weights import MissingWeightsError, WeightDir, WeightFile, explicit_path, is_random, resolve

from .checkpoint import PREDICTOR_FILE, load_predictor
from .driver import pad_to_multiple, upscale_whole_image
from .pipeline import InvSRPipeline, posterior_draw
from .predictor import NoisePredictor, NoisePredictorConfig
from .sampler import InvSRSampler, make_scheduler, model_timesteps, published_timesteps

__all__ = ["POSITIVE_PROMPT", "PREDICTOR", "SD_TURBO", "InvSR"]

#: ``sampler_invsr.py:26-27`` (cfg_scale 1: no negative prompt, no CFG)
POSITIVE_PROMPT = (
    "Cinematic, high-contrast, photo-realistic, 8k, ultra HD, meticulous detailing, hyper sharpness, "
    "perfect without deformations"
)

SD_TURBO = WeightDir.stable_diffusion(
    "invsr",
    "stabilityai/sd-turbo",
    licence="Stability AI Community License (sd-turbo)",
    description="SD-Turbo folder (diffusers layout): UNet, VAE, text encoder, tokenizer, scheduler",
)
PREDICTOR = WeightFile(
    method="invsr",
    filename=PREDICTOR_FILE,
    url=f"https://huggingface.co/OAOA/InvSR/resolve/main/{PREDICTOR_FILE}",
    hf_repo="OAOA/InvSR",
    licence="S-Lab License 1.0 (InvSR)",
    description="InvSR start-noise predictor (HF OAOA/InvSR)",
)



def _missing_line(cfg: Mapping[str, Any]) -> str | None:
    """One line naming every missing file (SD-Turbo folder and/or the predictor), or None."""
    problems = []
    sd = cfg.get("sd")
    checks = [(PREDICTOR, explicit_path(PREDICTOR, cfg.get("weights")))]
    if sd is None or str(sd) == SD_TURBO.hf_repo:
        checks.insert(0, (SD_TURBO, None))
    for wf, explicit in checks:
        try:
            resolve(wf, explicit, check=False)
        except MissingWeightsError as err:
            problems.append(str(err))
    return " | ".join(problems) if problems else None


def _steps(cfg: Mapping[str, Any]) -> tuple[int | None, Any]:
    """(steps, timesteps): an explicit timestep list wins over the ``steps`` table."""
    ts = cfg.get("timesteps")
    return (None, list(ts)) if ts else (cfg.get("steps", 1), None)


def _predictor_config(cfg: Mapping[str, Any]) -> NoisePredictorConfig:
    over = dict(cfg.get("predictor") or {})
    for k in ("down_block_types", "block_out_channels", "layers_per_block"):
        if k in over and not isinstance(over[k], int):
            over[k] = tuple(over[k])
    return NoisePredictorConfig(**over)


class InvSR(SRMethod):
    name = "invsr"
    scales = frozenset({4.0})
    is_stochastic = True

    def __init__(
        self, pipe: InvSRPipeline, parts: Any, cfg: Mapping[str, Any], dtype: torch.dtype, facts: dict
    ):
        self.pipe, self.parts, self.dtype = pipe, parts, dtype
        self.published = published_timesteps(*_steps(cfg))
        self.mode = bool(cfg.get("mode", False))
        self.color = str(cfg.get("color_fix", "wavelet") or "none")
        self.reference = str(cfg.get("color_fix_reference", "authors"))
        if self.reference not in ("authors", "aligned"):
            raise ValueError(f"color_fix_reference must be 'authors' or 'aligned', got {self.reference!r}")
        chop = dict(cfg.get("chopping") or {})
        self.patch, self.chop_bs = int(chop.get("size", 128)), int(chop.get("batch", 8))
        self.tiling_kind = str(cfg.get("tiling", "authors"))
        if self.tiling_kind not in ("authors", "shared"):
            raise ValueError(f"tiling must be 'authors' or 'shared', got {self.tiling_kind!r}")
        self.tile = (
            SDTiling.from_config(dict(cfg.get("tile") or {}), device=pipe.device)
            if self.tiling_kind == "shared"
            else None
        )
        self.guard = bool(cfg.get("precision_guard", True))
        self.facts = facts
        self._pipes: dict[torch.dtype, InvSRPipeline] = {dtype: pipe}
        self._notes: list[dict[str, str]] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def required_weights(cls, cfg: Mapping[str, Any]) -> list[WeightFile]:
        if is_random(cfg):
            return []
        sd = (cfg or {}).get("sd")
        return ([SD_TURBO] if sd is None or str(sd) == SD_TURBO.hf_repo else []) + [PREDICTOR]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], device, dtype) -> InvSR:
        cfg = dict(cfg or {})
        device, dtype = method_device_dtype(cfg, device, dtype)
        random = is_random(cfg)
        if not random and (line := _missing_line(cfg)):
            raise MissingWeightsError(line)
        seed = int(cfg.get("seed", 0))
        sd = cfg.get("sd") or ("tiny" if random else resolve(SD_TURBO, None, check=False))
        parts = load_sd_components(
            sd,
            dtype=dtype,
            device=device,
            method="invsr",
            scheduler_cls="EulerDiscreteScheduler",
            seed=seed,
            channels_last=bool(cfg.get("channels_last", False)),
        )
        pcfg = _predictor_config(cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            predictor = NoisePredictor(pcfg)
        if random:
            facts = {"predictor": "random (tests only)"}
        else:
            path = resolve(PREDICTOR, explicit_path(PREDICTOR, cfg.get("weights")), check=False)
            load_predictor(predictor, path)
            facts = {"predictor": str(path)}
        # fp32 weights, run under autocast at fp16/bf16 (PIPE:1051: torch.amp.autocast on an fp32 module)
        predictor.to(device).eval().requires_grad_(False)
        if cfg.get("compile"):
            (
                parts.unet.compile(),
                parts.vae.encoder.compile(),
                parts.vae.decoder.compile(),
                predictor.compile(),
            )
        text = encode_prompt(parts, str(cfg.get("prompt", POSITIVE_PROMPT)))[:1]
        # the prompt is fixed: encode once, then free the text encoder (1.4 GB fp32 at SD-2 size)
        parts.text_encoder, parts.prompt_cache = None, type(parts.prompt_cache)()
        facts["text_encoder"] = "used once for the fixed prompt, then released"
        ts = model_timesteps(*_steps(cfg))
        sampler = InvSRSampler(make_scheduler(parts.scheduler.config), ts)
        pipe = InvSRPipeline(predictor, parts.unet, parts.vae, text, sampler)
        return cls(pipe, parts, cfg, dtype, facts)

    def _pipe_at(self, dtype: torch.dtype) -> InvSRPipeline:
        """The pipeline at ``dtype`` (precision-guard re-runs: a cast copy of UNet and VAE, made once)."""
        if dtype not in self._pipes:
            p = self.pipe
            unet, vae = (torch.nn.Module.to(copy.deepcopy(m), dtype=dtype) for m in (p.unet, p.vae))
            self._pipes[dtype] = InvSRPipeline(p.predictor, unet, vae, p.text, p.sampler, eps_fn=p.eps_fn)
        return self._pipes[dtype]

    # ------------------------------------------------------------------ description
    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "timesteps_published": list(self.published),
            "timesteps_model": [t - 1 for t in self.published],
            "nfe": len(self.published),
            "posterior": "means (mode)"
            if self.mode
            else "samples, per-image generator (predictor, then VAE, per patch)",
            "color_fix": self.color,
            "color_fix_reference": self.reference
            + (
                " (padded LR resized to the cropped output, sampler_invsr.py:209)"
                if self.reference == "authors"
                else ""
            ),
            "tiling": "authors' 128/64 Gaussian chopping"
            if self.tiling_kind == "authors"
            else f"shared SD tiler {self.tile}",
            "chopping": {"size": self.patch, "batch": self.chop_bs},
            "prompt": "fixed positive prompt (sampler_invsr.py:26), no CFG",
            "dtype": str(self.dtype).removeprefix("torch."),
            "predictor_dtype": "float32 weights, autocast at the run dtype",
            "sd": self.parts.describe(),
            **self.facts,
        }

    def nfe_per_image(self) -> float:
        """UNet evaluations per patch (the predictor adds one encoder pass); chopping multiplies both."""
        return float(len(self.published))

    def per_image_notes(self) -> Sequence[Mapping[str, Any]] | None:
        return self._notes

    # ------------------------------------------------------------------ inference
    def _noise_fn(self, pipe: InvSRPipeline, gens: list[torch.Generator] | None, patch_noise=None):
        """Per row: n₁ then n₂ from that image's generator (None: posterior means).

        ``patch_noise(positions, shape₁, shape₂) -> (n₁, n₂)`` replaces the generators (parity scripts
        inject the same tensors into the authors' pipeline).
        """

        def fn(tiles: torch.Tensor, positions: Sequence[TilePosition]) -> torch.Tensor:
            s1, s2 = pipe.noise_shapes(*tiles.shape[-2:])
            if patch_noise is not None:
                return pipe(tiles, *patch_noise(positions, s1, s2))
            if gens is None:
                return pipe(tiles, None, None)
            n1, n2 = [], []
            for p in positions:
                n1.append(torch.randn(s1, generator=gens[p.image]))
                n2.append(torch.randn(s2, generator=gens[p.image]))
            return pipe(tiles, torch.stack(n1), torch.stack(n2))

        return fn

    def _shared(self, pipe: InvSRPipeline, x: torch.Tensor, gens) -> torch.Tensor:
        """Whole-image pipeline with each network tiled by :mod:`srbench.nn.sd_tiling`."""
        tile = self.tile
        h, w = x.shape[-2:]
        s1, s2 = pipe.noise_shapes(h, w)
        n1 = n2 = None
        if gens is not None:
            n1 = torch.stack([torch.randn(s1, generator=g) for g in gens])
            n2 = torch.stack([torch.randn(s2, generator=g) for g in gens])
        dev, dt = pipe.device, pipe.dtype
        y = x.to(device=dev, dtype=dt)
        # the encoder tiled with whole-image GroupNorm statistics (per-tile ones cost ~60 dB: sd_tiling)
        moments = tiled_vae_moments(pipe.vae, F.interpolate(y, size=(4 * h, 4 * w), mode="bicubic"), tile).float()
        z0 = pipe.scaling * posterior_draw(moments, n2)
        lr_tile, lr_ov = max(tile.pixel_tile // 4, 16), tile.pixel_overlap // 4 // 2 * 2
        pm = tiled_apply(
            lambda t: pipe.predictor_moments(t).float(),
            y,
            tile=lr_tile,
            overlap=lr_ov,
            scale=Fraction(1, 2),
            tile_batch_size=tile.tile_batch_size,
            blend=tile.blend,
        )
        eps_hat = posterior_draw(pm, n1)
        xlat = pipe.sampler.start(z0.to(dt), eps_hat)
        text = pipe.text.to(device=dev, dtype=dt)

        def eps_fn(x_in, t, _c):
            return tiled_latent_apply(
                lambda z: pipe.unet(
                    z, t, encoder_hidden_states=text.expand(z.shape[0], -1, -1), return_dict=False
                )[0],
                x_in,
                tile,
            )

        xlat = pipe.sampler(xlat, text, eps_fn=eps_fn)
        return tiled_vae_decode(pipe.vae, xlat.to(dt), tile).float()

    def _run(
        self, lr: torch.Tensor, seeds: Sequence[int], dtype: torch.dtype, patch_noise=None
    ) -> torch.Tensor:
        pipe = self._pipe_at(dtype)
        gens = None if self.mode else generators(seeds)
        x = lr.float()
        if self.tiling_kind == "shared":
            xp = pad_to_multiple(x, 16)
            out = self._shared(pipe, xp, gens)[:, :, : 4 * x.shape[-2], : 4 * x.shape[-1]]
        else:
            out, xp = upscale_whole_image(
                x, self._noise_fn(pipe, gens, patch_noise), patch=self.patch, chop_bs=self.chop_bs
            )
        out = out.float()
        if self.color != "none":
            ref_src = xp.to(out.device) if self.reference == "authors" else x.to(out.device)
            ref = F.interpolate(
                ref_src, size=out.shape[-2:], mode="bicubic", align_corners=False, antialias=True
            )
            out = color_fix(out, ref, self.color)
        return out.clamp(0, 1)

    @torch.inference_mode()
    def upscale_injected(self, lr: torch.Tensor, patch_noise) -> torch.Tensor:
        """``upscale`` at the configured dtype with the draws from ``patch_noise`` (authors' chopping only)."""
        if self.tiling_kind != "authors":
            raise ValueError("upscale_injected needs tiling: authors")
        return self._run(lr, [0] * lr.shape[0], self.dtype, patch_noise)

    @torch.inference_mode()  # the guard writes re-run images into the output: all in one inference scope
    def upscale(self, lr: torch.Tensor, scale: float, *, seeds: Sequence[int]) -> torch.Tensor:
        self.check_scale(scale)
        seeds = [int(s) for s in seeds]
        if len(seeds) != lr.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for {lr.shape[0]} images")
        name = precision_name(self.dtype)
        if not self.guard or name == "fp32":
            out = self._run(lr, seeds, self.dtype)
            self._notes = None
            return out
        res = run_with_precision_guard(
            lambda idx, dt: self._run(lr[list(idx)], [seeds[i] for i in idx], dt),
            lr.shape[0],
            name,
            labels=[f"seed {s}" for s in seeds],
        )
        self._notes = res.notes()
        return res.output
