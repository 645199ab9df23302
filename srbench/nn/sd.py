"""Stable Diffusion components (UNet, VAE, CLIP text encoder, tokenizer, scheduler) via diffusers.

Used by the SD-based methods (InvSR: SD-Turbo; OSEDiff: SD-2.1-base). Three sources, one
loader (:func:`load_sd_components`):

* a local diffusers folder (``model_index.json`` + ``unet/``, ``vae/``, ... subfolders);
* a Hugging Face repo id (``"stabilityai/sd-turbo"``), found in ``$SRBENCH_WEIGHTS/<method>/``
  or the local HF cache through :mod:`srbench.weights` — downloaded only when asked;
* ``"tiny"``: the same classes and module names as SD-2.x (``down_blocks.0.attentions.0...``,
  linear projections, cross-attention from the text encoder) with few channels and random
  weights, plus a small offline CLIP tokenizer — for tests on CPU. ``"random-sd2"``: the full
  SD-2.x 512 architecture (SD-2.1-base / SD-Turbo) with random weights, for speed measurements.

:func:`save_tiny_sd` writes a complete tiny folder, so tests run the real-folder code path.
VAE helpers map images in [0, 1] to scaled latents and back (``z = scaling_factor · E(2x − 1)``).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from srbench.weights import SD_COMPONENTS, MissingWeightsError, WeightDir, dir_sha256, resolve

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

__all__ = [
    "PROMPT_CACHE_SIZE",
    "SD2_TEXT_ENCODER_CONFIG",
    "SD2_UNET_CONFIG",
    "SD2_VAE_CONFIG",
    "SD_COMPONENTS",
    "SD_MODULES",
    "SD_SCHEDULER_CONFIG",
    "TINY_UNET_CONFIG",
    "TINY_VAE_CONFIG",
    "SDComponents",
    "configure_vae",
    "encode_prompt",
    "load_sd_components",
    "save_tiny_sd",
    "vae_decode",
    "vae_encode",
    "vae_scale_factor",
]

#: The components that are torch modules (cast, frozen, compiled); the rest are tokenizer/scheduler.
SD_MODULES = ("unet", "vae", "text_encoder")
#: Prompt embeddings kept per loaded model (least recently used dropped first): one fixed prompt
#: (InvSR) uses one slot; per-image prompts (OSEDiff's tags) must not grow memory without bound.
PROMPT_CACHE_SIZE = 64

# --------------------------------------------------------------------------- architectures
#: SD-2.x 512 UNet (``stabilityai/stable-diffusion-2-1-base`` and ``stabilityai/sd-turbo``,
#: ``unet/config.json``): eps-prediction, linear projections, cross-attention to 1024-d OpenCLIP-H.
#: ``attention_head_dim`` is diffusers' legacy name for the number of heads (head dim 64).
SD2_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 1024,
    "attention_head_dim": (5, 10, 20, 20),
    "use_linear_projection": True,
}

#: SD-2.x VAE (``vae/config.json``): 4 levels → latents 8× smaller, 4 channels, scale 0.18215.
SD2_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}

#: SD-2.x text encoder (OpenCLIP ViT-H/14 text tower in transformers' CLIPTextModel layout).
SD2_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 512,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

#: The SD training noise schedule (scaled-linear β from 0.00085 to 0.012, 1000 steps, ε-prediction).
SD_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "clip_sample": False,
    "steps_offset": 1,
}

#: Tiny versions: same block types, depths and module names; few channels (fast on CPU).
TINY_UNET_CONFIG: dict[str, Any] = {
    **SD2_UNET_CONFIG,
    "sample_size": 8,
    "block_out_channels": (16, 32, 64, 64),  # SD-2's ×2, ×2, ×1 channel steps (same shortcut convs)
    "attention_head_dim": (1, 2, 4, 4),  # heads; head dim 16 everywhere, as SD-2 keeps it at 64
    "norm_num_groups": 8,
    "cross_attention_dim": 32,
}
TINY_VAE_CONFIG: dict[str, Any] = {
    **SD2_VAE_CONFIG,
    "block_out_channels": (16, 32, 64, 64),
    "norm_num_groups": 8,
    "sample_size": 64,
}
TINY_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    **SD2_TEXT_ENCODER_CONFIG,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "projection_dim": 32,
}
#: A few BPE merges so the tiny tokenizer exercises merging, not only single characters.
_TINY_MERGES = ("t h", "th e</w>", "a n", "i n", "e r", "o n</w>", "p h", "o t", "r e")


# --------------------------------------------------------------------------- container
@dataclass
class SDComponents:
    """Loaded Stable Diffusion parts; absent ones are ``None``. Modules are in eval mode."""

    unet: UNet2DConditionModel | None
    vae: AutoencoderKL | None
    text_encoder: CLIPTextModel | None
    tokenizer: CLIPTokenizer | None
    scheduler: Any | None
    source: str
    path: Path | None
    dtype: torch.dtype
    device: torch.device
    prompt_cache: OrderedDict[str, torch.Tensor] = field(default_factory=OrderedDict, repr=False)
    prompt_cache_size: int = PROMPT_CACHE_SIZE

    def modules(self) -> dict[str, torch.nn.Module]:
        return {n: m for n in SD_MODULES if (m := getattr(self, n)) is not None}

    def describe(self, *, hash_files: bool = False) -> dict[str, Any]:
        """Manifest facts: source, folder, dtype, class and parameter count per component.

        ``hash_files=True`` adds the sha256 of every weight file in the folder (reads them all).
        """
        info: dict[str, Any] = {
            "source": self.source,
            "path": str(self.path) if self.path else None,
            "dtype": str(self.dtype).removeprefix("torch."),
            "components": {
                name: {"class": type(m).__name__, "params": sum(p.numel() for p in m.parameters())}
                for name, m in self.modules().items()
            },
        }
        if self.scheduler is not None:
            info["scheduler"] = type(self.scheduler).__name__
        if hash_files and self.path is not None:
            info["weights_sha256"] = dir_sha256(self.path)
        return info


# --------------------------------------------------------------------------- tiny builders
def _bytes_to_unicode() -> list[str]:
    """CLIP's byte-level alphabet: printable bytes as themselves, the other bytes mapped to U+0100…"""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]


def _write_tiny_tokenizer_files(folder: Path) -> None:
    """vocab.json + merges.txt + tokenizer_config.json of a small byte-level CLIP BPE (SD-2 style: pad "!")."""
    alphabet = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for token in [*alphabet, *(c + "</w>" for c in alphabet), *(m.replace(" ", "") for m in _TINY_MERGES)]:
        vocab.setdefault(token, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_TINY_MERGES) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 77,
                "do_lower_case": True,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "!",
            }
        )
    )


def _tiny_tokenizer() -> CLIPTokenizer:
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        _write_tiny_tokenizer_files(Path(tmp))
        return CLIPTokenizer.from_pretrained(tmp)


def _build_random(preset: str, components: Sequence[str], seed: int, device: torch.device) -> dict[str, Any]:
    """Components of ``preset`` ("tiny" | "random-sd2") with seeded random weights (global RNG untouched)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet_cfg, vae_cfg, text_cfg = (
        (TINY_UNET_CONFIG, TINY_VAE_CONFIG, TINY_TEXT_ENCODER_CONFIG)
        if preset == "tiny"
        else (SD2_UNET_CONFIG, SD2_VAE_CONFIG, SD2_TEXT_ENCODER_CONFIG)
    )
    tokenizer = _tiny_tokenizer() if ("tokenizer" in components or "text_encoder" in components) else None
    if preset == "tiny" and tokenizer is not None:
        # the tiny encoder's vocabulary and special ids follow the tiny tokenizer
        text_cfg = {
            **text_cfg,
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    parts: dict[str, Any] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        with torch.device(device):  # initialise in place: full-size models on a GPU build fast
            if "unet" in components:
                parts["unet"] = UNet2DConditionModel(**unet_cfg)
            if "vae" in components:
                parts["vae"] = AutoencoderKL(**vae_cfg)
            if "text_encoder" in components:
                parts["text_encoder"] = CLIPTextModel(CLIPTextConfig(**text_cfg))
    if "tokenizer" in components:
        parts["tokenizer"] = tokenizer
    if "scheduler" in components:
        parts["scheduler"] = DDPMScheduler(**SD_SCHEDULER_CONFIG)
    return parts


def save_tiny_sd(folder: str | Path, *, seed: int = 0, scheduler: str = "DDPMScheduler") -> Path:
    """Write a complete diffusers-layout SD folder with tiny random weights; returns ``folder``.

    Layout as on the hub: ``model_index.json``, ``unet/``, ``vae/`` (config + safetensors),
    ``text_encoder/`` (transformers config + safetensors), ``tokenizer/``, ``scheduler/``.
    """
    import diffusers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = _build_random("tiny", SD_COMPONENTS, seed, torch.device("cpu"))
    parts["scheduler"] = getattr(diffusers, scheduler).from_config(parts["scheduler"].config)
    for name in SD_MODULES:
        parts[name].save_pretrained(folder / name, safe_serialization=True)
    parts["tokenizer"].save_pretrained(folder / "tokenizer")
    parts["scheduler"].save_pretrained(folder / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", scheduler],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


# --------------------------------------------------------------------------- folder loading
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _resolve_folder(
    source: str | Path, components: Sequence[str], method: str, variant: str | None, download: bool
) -> Path:
    """A local folder for ``source`` (folder path or hub id); one-line MissingWeightsError otherwise."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if isinstance(source, str) and _HUB_ID.match(source) and not path.exists():
        needed = [c for c in components if c in SD_COMPONENTS]
        return resolve(
            WeightDir.stable_diffusion(method, source, components=needed, variant=variant), download=download
        )
    raise MissingWeightsError(
        f"Stable Diffusion folder {path} does not exist; pass a diffusers model folder (with model_index.json) "
        "or a Hugging Face repo id such as stabilityai/sd-turbo"
    )


def _variant(subdir: Path, requested: str | None) -> str | None:
    """The weights variant to load: as requested, else none if plain weights exist, else the one present."""
    if requested is not None:
        return requested
    names = [p.name for p in subdir.iterdir() if p.is_file()]
    plain = re.compile(r"^(diffusion_pytorch_model|model|pytorch_model)\.(safetensors|bin)$")
    if any(plain.match(n) for n in names):
        return None
    found = {
        m.group(2)
        for n in names
        if (m := re.match(r"^(diffusion_pytorch_model|model|pytorch_model)\.(\w+)\.(safetensors|bin)$", n))
    }
    return min(found) if found else None


def _load_one(folder: Path, name: str, loader: Any, **kwargs: Any) -> Any:
    """Call ``loader.from_pretrained`` on ``folder/name``; any failure is one MissingWeightsError line."""
    sub = folder / name
    config = (
        "scheduler_config.json"
        if name == "scheduler"
        else ("tokenizer_config.json" if name == "tokenizer" else "config.json")
    )
    if not (sub / config).is_file():
        raise MissingWeightsError(
            f"Stable Diffusion folder {folder} has no {name}/{config}; it is incomplete — re-download it "
            "(srbench weights download METHOD) or pass a complete diffusers folder"
        )
    try:
        return loader.from_pretrained(str(folder), subfolder=name, local_files_only=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - library errors become one line naming the folder
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise MissingWeightsError(
            f"cannot load {name} from {sub} ({type(exc).__name__}: {text[:300]}); the folder is incomplete or "
            "corrupt — re-download it or pass a complete diffusers folder"
        ) from None


def _load_folder(
    folder: Path, components: Sequence[str], variant: str | None, scheduler_cls: Any, dtype: torch.dtype
) -> dict[str, Any]:
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    parts: dict[str, Any] = {}
    for name, cls in (
        ("unet", UNet2DConditionModel),
        ("vae", AutoencoderKL),
        ("text_encoder", CLIPTextModel),
    ):
        if name in components:
            sub = folder / name
            kwargs: dict[str, Any] = {"variant": _variant(sub, variant) if sub.is_dir() else variant}
            if name != "text_encoder":  # diffusers loads straight into the target dtype
                kwargs["torch_dtype"] = dtype
            parts[name] = _load_one(folder, name, cls, **kwargs)
    if "tokenizer" in components:
        parts["tokenizer"] = _load_one(folder, "tokenizer", CLIPTokenizer)
    if "scheduler" in components:
        if scheduler_cls is None:
            cfg_file = folder / "scheduler" / "scheduler_config.json"
            name = json.loads(cfg_file.read_text()).get("_class_name") if cfg_file.is_file() else None
            scheduler_cls = name or "DDPMScheduler"
        if isinstance(scheduler_cls, str):
            if not hasattr(diffusers, scheduler_cls):
                raise ValueError(f"unknown diffusers scheduler {scheduler_cls!r}")
            scheduler_cls = getattr(diffusers, scheduler_cls)
        parts["scheduler"] = _load_one(folder, "scheduler", scheduler_cls)
    return parts


def _cast(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move and cast in place. diffusers' ``ModelMixin.to`` warns on every dtype cast even when the
    model has no float32-pinned modules; only models that do have some go through it."""
    if getattr(module, "_keep_in_fp32_modules", None):
        module.to(device=device, dtype=dtype)
    else:
        torch.nn.Module.to(module, device=device, dtype=dtype)


# --------------------------------------------------------------------------- public loader
def load_sd_components(
    source: str | Path,
    *,
    components: Sequence[str] = SD_COMPONENTS,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    compile: bool = False,
    scheduler_cls: type | str | None = None,
    variant: str | None = None,
    method: str = "sd",
    download: bool = False,
    frozen: bool = True,
    seed: int = 0,
) -> SDComponents:
    """Load Stable Diffusion components from a folder, a hub id, ``"tiny"`` or ``"random-sd2"``.

    Args:
        source: diffusers folder, Hugging Face repo id, ``"tiny"`` (CPU tests) or
            ``"random-sd2"`` (full SD-2.x architecture, random weights, for timing).
        components: which of ``unet, vae, text_encoder, tokenizer, scheduler`` to load.
        dtype, device: applied to every module (the scheduler stays as diffusers builds it).
        channels_last: UNet and VAE in channels-last memory format (faster convs on GPUs).
        compile: ``torch.compile`` the UNet and the VAE encoder/decoder in place (module
            names and state-dict keys unchanged).
        scheduler_cls: scheduler class or diffusers class name; default: the folder's own.
        variant: weights variant (``"fp16"``); default: plain weights if present, else the one found.
        method: who asks (names ``$SRBENCH_WEIGHTS/<method>/`` and appears in error messages).
        download: fetch a hub id that is not cached (needs network; off by default).
        frozen: eval mode and ``requires_grad=False`` on every module (LoRA methods add adapters after).
        seed: initialisation seed for ``"tiny"`` / ``"random-sd2"``.
    """
    unknown = set(components) - set(SD_COMPONENTS)
    if unknown:
        raise ValueError(
            f"unknown Stable Diffusion components {sorted(unknown)}; choose from {SD_COMPONENTS}"
        )
    device = torch.device(device)
    folder: Path | None = None
    if str(source) in ("tiny", "random-sd2"):
        parts = _build_random(str(source), components, seed, device)
        if scheduler_cls is not None and "scheduler" in parts:
            import diffusers

            cls = getattr(diffusers, scheduler_cls) if isinstance(scheduler_cls, str) else scheduler_cls
            parts["scheduler"] = cls.from_config(parts["scheduler"].config)
    else:
        folder = _resolve_folder(source, components, method, variant, download)
        parts = _load_folder(folder, components, variant, scheduler_cls, dtype)

    for name in SD_MODULES:
        module = parts.get(name)
        if module is None:
            continue
        _cast(module, device, dtype)
        if frozen:
            module.eval().requires_grad_(False)
        if channels_last and name in ("unet", "vae"):
            module.to(memory_format=torch.channels_last)
    if compile:
        # nn.Module.compile keeps the module object (and its state-dict keys); the VAE is used
        # through encode()/decode(), so its encoder and decoder are compiled, not its forward.
        if parts.get("unet") is not None:
            parts["unet"].compile()
        if parts.get("vae") is not None:
            parts["vae"].encoder.compile()
            parts["vae"].decoder.compile()
    return SDComponents(
        unet=parts.get("unet"),
        vae=parts.get("vae"),
        text_encoder=parts.get("text_encoder"),
        tokenizer=parts.get("tokenizer"),
        scheduler=parts.get("scheduler"),
        source=str(source),
        path=folder,
        dtype=dtype,
        device=device,
    )


# --------------------------------------------------------------------------- text
@torch.no_grad()
def encode_prompt(components: SDComponents, prompt: str | Sequence[str]) -> torch.Tensor:
    """CLIP text embedding as Stable Diffusion uses it: N×77×D, computed once per prompt.

    Tokens padded to ``model_max_length`` (77) and truncated; the last hidden state of the
    text encoder (no clip-skip, no attention mask — as diffusers' StableDiffusionPipeline does
    for SD-2). Cached in ``components.prompt_cache`` keyed by the prompt string, at most
    ``components.prompt_cache_size`` prompts (least recently used dropped first).
    """
    if components.text_encoder is None or components.tokenizer is None:
        raise ValueError("encode_prompt needs the text_encoder and tokenizer components")
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    cache = components.prompt_cache
    todo = [p for p in dict.fromkeys(prompts) if p not in cache]
    if todo:
        enc = components.tokenizer(
            todo,
            padding="max_length",
            max_length=components.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        te = components.text_encoder
        hidden = te(enc.input_ids.to(te.device))[0]
        fresh = {p: h.to(dtype=te.dtype) for p, h in zip(todo, hidden, strict=True)}
    else:
        fresh = {}
    out = torch.stack([fresh[p] if p in fresh else cache[p] for p in prompts])
    for p in dict.fromkeys(prompts):  # mark used (most recent last), then drop the oldest
        cache[p] = fresh.get(p, cache.get(p))
        cache.move_to_end(p)
    while len(cache) > max(components.prompt_cache_size, 0):
        cache.popitem(last=False)
    return out


# --------------------------------------------------------------------------- VAE
def vae_scale_factor(vae: AutoencoderKL) -> int:
    """Pixels per latent pixel (8 for SD): one ×2 downsampling between consecutive levels."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def configure_vae(
    vae: AutoencoderKL,
    *,
    tiling: bool = False,
    tile_sample_size: int | None = None,
    tile_latent_size: int | None = None,
    tile_overlap_factor: float | None = None,
    slicing: bool = False,
) -> AutoencoderKL:
    """Turn diffusers' VAE tiling / batch slicing on or off (sizes in pixels / latent pixels).

    Tiling applies to inputs larger than ``tile_sample_size`` (encoder) or ``tile_latent_size``
    (decoder, default ``tile_sample_size / 8``); InvSR uses 1024 / 128.
    """
    vae.enable_tiling() if tiling else vae.disable_tiling()
    vae.enable_slicing() if slicing else vae.disable_slicing()
    if tile_sample_size is not None:
        vae.tile_sample_min_size = int(tile_sample_size)
        vae.tile_latent_min_size = int(tile_latent_size or tile_sample_size // vae_scale_factor(vae))
    elif tile_latent_size is not None:
        vae.tile_latent_min_size = int(tile_latent_size)
    if tile_overlap_factor is not None:
        vae.tile_overlap_factor = float(tile_overlap_factor)
    return vae


def _shift(vae: AutoencoderKL) -> float:
    return float(getattr(vae.config, "shift_factor", None) or 0.0)


def vae_encode(
    vae: AutoencoderKL,
    x01: torch.Tensor,
    *,
    sample: bool = False,
    generator: torch.Generator | list[torch.Generator] | None = None,
    grad: bool = False,
) -> torch.Tensor:
    """Images B×3×H×W in [0, 1] → scaled latents B×4×H/8×W/8: ``(E(2x − 1) − shift) · scaling_factor``.

    ``sample=False`` takes the posterior mean; ``sample=True`` draws from it with ``generator``
    (one generator per image keeps each image's latent independent of the batch).
    ``grad=False`` (inference) runs under ``torch.no_grad``; ``grad=True`` records the graph, so
    a loss reaches the encoder's trainable parameters (OSEDiff's VAE-encoder LoRA) and the input.
    """
    with torch.set_grad_enabled(grad):
        posterior = vae.encode((2 * x01 - 1).to(dtype=vae.dtype)).latent_dist
        z = posterior.sample(generator=generator) if sample else posterior.mode()
        return (z - _shift(vae)) * vae.config.scaling_factor


def vae_decode(vae: AutoencoderKL, z: torch.Tensor, *, clamp: bool = True, grad: bool = False) -> torch.Tensor:
    """Scaled latents → images in [0, 1]: ``(D(z / scaling_factor + shift) + 1) / 2``, clamped.

    ``grad=True`` records the graph (a pixel loss back through the decoder to ``z``); default
    ``torch.no_grad``. ``clamp`` has zero gradient outside [0, 1]; training losses usually pass
    ``clamp=False``.
    """
    with torch.set_grad_enabled(grad):
        x = vae.decode((z / vae.config.scaling_factor + _shift(vae)).to(dtype=vae.dtype)).sample
        x = (x + 1) / 2
        return x.clamp(0, 1) if clamp else x
