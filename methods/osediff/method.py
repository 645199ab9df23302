"""OSEDiff SRMethod adapter: ×4, one UNet call per image (NFE = 1), batched.

Per image: the authors' PIL pre-processing (:mod:`.preprocess`), LoRA VAE encoder (posterior
sample from that image's ``torch.Generator``, or the posterior mean with ``mode: true``), LoRA
UNet at t = 999 (latent tiling above 96² latent px = 768² px, :mod:`.tiles`), one x0 step,
frozen decoder, colour fix against the pre-processed LR (AdaIN as published), then resized to
exactly 4× the input (the authors keep the pre-processed size; stated in ``describe``).

Prompts: the fixed ``prompt`` from the config, or, with ``prompt_dir``, one file per image in the
authors' ``txt/<name>.txt`` layout (their script names it ``basename.split('.')[0]``; the fixed
prompt where a file is absent). ``wants_names = True``: the runners pass the dataset's image names
to ``upscale``; each row's ``notes`` and ``describe()`` record which prompt source ran. DAPE is not implemented.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from srbench.devices import method_device_dtype
from srbench.method import SRMethod
from srbench.nn.colorfix import color_fix
from srbench.nn.noise import generators
from srbench.nn.sd import encode_prompt, load_sd_components
from srbench.weights import MissingWeightsError, WeightDir, WeightFile, explicit_path, is_random, resolve

from .checkpoint import load_osediff_checkpoint
from .lora import add_osediff_adapters, merge_lora
from .model import OSEDiffGenerator
from .preprocess import preprocess, to_output_size
from .tiles import tiled_eps

SD_BASE = WeightDir.stable_diffusion(
    "osediff", "stabilityai/stable-diffusion-2-1-base", licence="CreativeML Open RAIL++-M",
    description="Stable Diffusion 2.1-base folder (diffusers layout)",
)
OSEDIFF_PKL = WeightFile(
    method="osediff", filename="osediff.pkl",
    url="https://github.com/cswry/OSEDiff/raw/main/preset/models/osediff.pkl",
    description="OSEDiff LoRA + conv_in weights (cswry/OSEDiff preset/models/osediff.pkl, Git LFS)",
)



def _missing_line(cfg: Mapping[str, Any]) -> str | None:
    """One line naming every missing file (SD-2.1-base folder and/or osediff.pkl), or None."""
    problems = []
    for wf, explicit in ((SD_BASE, cfg.get("sd")), (OSEDIFF_PKL, explicit_path(OSEDIFF_PKL, cfg.get("weights")))):
        try:
            resolve(wf, explicit, check=False)
        except MissingWeightsError as err:
            problems.append(str(err))
    return " | ".join(problems) if problems else None


class OSEDiff(SRMethod):
    name = "osediff"
    scales = frozenset({4.0})
    is_stochastic = True
    wants_names = True  # per-image prompt files (prompt_dir/<name>.txt)

    def __init__(self, gen: OSEDiffGenerator, parts: Any, cfg: Mapping[str, Any], device, dtype, facts: dict):
        self.gen, self.parts, self.device, self.dtype = gen, parts, device, dtype
        self.prompt = str(cfg.get("prompt", ""))
        self.prompt_dir = cfg.get("prompt_dir")
        self.color = str(cfg.get("color_fix", "adain"))
        self.mode = bool(cfg.get("mode", False))
        self.tile, self.overlap = int(cfg.get("latent_tiled_size", 96)), int(cfg.get("latent_tiled_overlap", 32))
        self.process_size = int(cfg.get("process_size", 512))  # authors' --process_size (small-input enlargement)
        self.facts = facts
        self._n = 0
        self._notes: list[dict[str, str]] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def required_weights(cls, cfg: Mapping[str, Any]) -> list[WeightFile]:
        """osediff.pkl, and the SD-2.1-base folder when it comes from the default locations.

        The runners resolve every listed file with ``weights`` as its explicit path, but the SD
        folder is configured by ``sd``: it is listed only when neither ``sd`` nor a plain
        ``weights`` path is set (a mapping ``{filename: path}`` is fine); otherwise ``from_config``
        checks it (same one-line message)."""
        if is_random(cfg):
            return []
        cfg = cfg or {}
        w = cfg.get("weights")
        plain_path = w is not None and not isinstance(w, Mapping) and explicit_path(OSEDIFF_PKL, w) is not None
        return [OSEDIFF_PKL] if (cfg.get("sd") or plain_path) else [SD_BASE, OSEDIFF_PKL]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], device, dtype) -> OSEDiff:
        cfg = dict(cfg or {})
        device, dtype = method_device_dtype(cfg, device, dtype)
        random = is_random(cfg)
        if not random and (line := _missing_line(cfg)):
            raise MissingWeightsError(line)
        source = cfg.get("sd") or ("tiny" if random else resolve(SD_BASE, None, check=False))
        parts = load_sd_components(source, dtype=torch.float32, device="cpu", method="osediff",
                                   compile=False, seed=int(cfg.get("seed", 0)))
        if random:
            add_osediff_adapters(parts.unet, parts.vae)
            facts = {"checkpoint": "random (tests only)"}
        else:
            pkl = resolve(OSEDIFF_PKL, explicit_path(OSEDIFF_PKL, cfg.get("weights")), check=False)
            facts = {"checkpoint": str(pkl), **load_osediff_checkpoint(parts.unet, parts.vae, pkl)}
        merged = bool(cfg.get("merge_lora", True))
        if merged:  # W' = W + 2·B·A once, in fp32, before any cast: no per-call adapter cost
            merge_lora(parts.unet), merge_lora(parts.vae)
        facts["lora"] = "merged" if merged else "unmerged"
        for m in (parts.unet, parts.vae, parts.text_encoder):
            m.to(device=device, dtype=dtype).eval().requires_grad_(False)
        parts.dtype, parts.device = dtype, device
        if cfg.get("compile"):
            parts.unet.compile(), parts.vae.encoder.compile(), parts.vae.decoder.compile()
        gen = OSEDiffGenerator(parts.unet, parts.vae, parts.scheduler.alphas_cumprod).to(device)
        method = cls(gen, parts, cfg, device, dtype, facts)
        method.sd_source, method.sd_seed = source, int(cfg.get("seed", 0))  # the trainer's real/fake UNets
        return method

    def trainer(self, cfg: Mapping[str, Any]) -> Any:
        """Generator + VSD regulariser (:mod:`.train`); ``cfg``: the training config (``method.train``)."""
        from .train import OSEDiffTrainer, TrainOptions

        mcfg = cfg.get("method", cfg) if isinstance(cfg, Mapping) else {}
        return OSEDiffTrainer(self, TrainOptions(mcfg.get("train")))

    # ------------------------------------------------------------------ inference
    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prompt_source": (f"per-image files {self.prompt_dir}/<name>.txt (the authors' txt/ layout), "
                              f"fixed prompt {self.prompt!r} where absent") if self.prompt_dir
                             else f"fixed prompt from config ({self.prompt!r})",
            "prompt_note": "each row's notes give the prompt source of that image; DAPE not implemented",
            "posterior": "mean (mode)" if self.mode else "sample, per-image generator",
            "color_fix": self.color,
            "dtype": str(self.dtype).removeprefix("torch."),
            "process_size": self.process_size,
            "latent_tiling": f"above {self.tile}² latent px, tile {self.tile}, overlap {self.overlap}",
            "output_size": "exactly 4× the input (the authors keep the pre-processed, %8-resized size)",
            "sd": self.parts.describe(),
            **self.facts,
        }

    def nfe_per_image(self) -> float:
        return 1.0

    def per_image_notes(self):
        return self._notes

    def _prompts_for(self, names: Sequence[str] | None, n: int) -> tuple[list[str], list[dict[str, str]]]:
        """Prompt per image and where it came from (recorded in the row's notes)."""
        if names is None or not self.prompt_dir:
            return [self.prompt] * n, [{"prompt": "fixed"}] * n
        prompts, notes = [], []
        for name in names:
            stem = Path(name).name.split(".")[0]  # as their test_osediff.py names txt/<stem>.txt
            f = Path(self.prompt_dir) / f"{stem}.txt"
            if f.is_file():
                prompts.append(f.read_text(encoding="utf-8").strip())
                notes.append({"prompt": f"file {f.name}"})
            else:
                prompts.append(self.prompt)
                notes.append({"prompt": f"fixed (no {f.name})"})
        return prompts, notes

    @torch.no_grad()
    def upscale(
        self, lr: torch.Tensor, scale: float = 4, *, seeds: Sequence[int], names: Sequence[str] | None = None
    ) -> torch.Tensor:
        """×4; ``names`` (passed by the runners, see ``wants_names``) select ``prompt_dir/<name>.txt``."""
        self.check_scale(scale)
        b, _, h, w = lr.shape
        x = preprocess(lr, process_size=self.process_size).to(self.device)
        prompts, self._notes = self._prompts_for(names, b)
        text = encode_prompt(self.parts, prompts).to(self.device)
        gens = None if self.mode else generators(seeds)
        eps_fn = lambda z, t: tiled_eps(self.gen.eps, z, t, tile=self.tile, overlap=self.overlap)
        out, _ = self.gen(x * 2 - 1, text, sample=not self.mode, generator=gens, eps_fn=eps_fn)
        out = (out.float() * 0.5 + 0.5).clamp(0, 1)
        out = color_fix(out, x, self.color).clamp(0, 1)
        self._n = b
        return to_output_size(out, 4 * h, 4 * w)
