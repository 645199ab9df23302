"""pyiqa metrics (DISTS, CLIPIQA, MUSIQ, MANIQA, NIQE, … any pyiqa name) as srbench metrics.

The networks are pyiqa's, never re-written here. What this bridge adds:

* one input contract: RGB float in [0, 1], B×3×H×W, on the metric's device (pyiqa checks the
  range itself; grey B×1 images are replicated to 3 channels here);
* weight files found through :mod:`srbench.weights`: every ``load_file_from_url`` pyiqa makes
  while building a metric is answered from ``$SRBENCH_WEIGHTS/pyiqa/<file>`` or pyiqa's own
  cache (``torch.hub.get_dir()/pyiqa``) without touching the network; absent → one
  :class:`MissingWeightsError` line naming the file, where it looked and the URL;
* a metric id ``<name>@pyiqa-<version>-<sha256[:12] of each weight file>`` (``-random<seed>``
  for random-initialised networks, tests and perf only);
* pyiqa's RNG seeded per call for stochastic metrics (MANIQA's random crops), flagged in
  :attr:`PyiqaMetric.stochastic`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from srbench.weights import MissingWeightsError, WeightFile, resolve, sha256_file

#: pyiqa metrics whose eval forward draws random numbers: seeded per call. Empty for pyiqa 0.1.16:
#: MANIQA's original test script averages random 224² crops, but pyiqa's MANIQA in eval mode takes 20
#: *uniform* crops (``pyiqa.archs.maniqa_arch.MANIQA.forward``: ``random_crop`` only when training),
#: so it is deterministic; tests/test_metrics_iqa_backbones.py checks it. Listed names still get seeded.
STOCHASTIC: frozenset[str] = frozenset()

#: CLIP architectures (``pyiqa.archs.clip_model.CLIP`` arguments, from OpenAI's released state dicts) for a random
#: CLIP backbone: embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
#: context_length, vocab_size, transformer_width, transformer_heads, transformer_layers.
CLIP_ARCHS = {
    "RN50": (1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12),
    "ViT-B/32": (512, 224, 12, 768, 32, 77, 49408, 512, 8, 12),
    "ViT-B/16": (512, 224, 12, 768, 16, 77, 49408, 512, 8, 12),
}


def pyiqa_version() -> str:
    import pyiqa

    return getattr(pyiqa, "__version__", "unknown")


def pyiqa_cache_dir() -> Path:
    """pyiqa's download folder (``torch.hub.get_dir()/pyiqa``)."""
    return Path(torch.hub.get_dir()) / "pyiqa"


def weight_file(url: str, file_name: str | None = None) -> WeightFile:
    """The file pyiqa would fetch from ``url`` as a :class:`WeightFile` (method ``pyiqa``)."""
    name = file_name or os.path.basename(url.split("?")[0])
    return WeightFile(method="pyiqa", filename=name, url=url, description="pyiqa metric weights",
                      obtain="pyiqa downloads it on first use")


def import_arch(name: str) -> None:
    """Import the arch module of pyiqa metric ``name`` now. pyiqa 0.1.16 imports arch modules lazily,
    inside ``create_metric``; imported there, their ``from … import load_file_from_url`` / ``load``
    would bind whatever is patched at that moment and keep it after the patch is undone."""
    try:
        from pyiqa.archs import ARCH_REGISTRY, _lazy_import_arch
        from pyiqa.default_model_configs import DEFAULT_CONFIGS
    except ImportError:  # another pyiqa layout: imports stay as pyiqa does them
        return
    arch = DEFAULT_CONFIGS.get(name, {}).get("metric_opts", {}).get("type")
    if arch and arch not in ARCH_REGISTRY:
        _lazy_import_arch(arch)


def _takes_pretrained(name: str) -> bool:
    """Whether the arch of ``name`` has a ``pretrained`` argument. pyiqa's PSNR/SSIM swallow unknown keywords
    at build and pass them to the function at call time, so ``pretrained=False`` must not reach them."""
    import inspect

    try:
        from pyiqa.archs import ARCH_REGISTRY
        from pyiqa.default_model_configs import DEFAULT_CONFIGS

        arch = ARCH_REGISTRY.get(DEFAULT_CONFIGS[name]["metric_opts"]["type"])
    except (ImportError, KeyError):
        return True  # unknown layout: pass it, and the TypeError fallback below decides
    return "pretrained" in inspect.signature(arch.__init__).parameters


def _arch_modules() -> list:
    return [m for k, m in list(sys.modules.items())
            if m is not None and (k.startswith("pyiqa.") or k == "pyiqa") and hasattr(m, "load_file_from_url")]


@contextlib.contextmanager
def offline_downloads(found: dict[str, str]) -> Iterator[None]:
    """Answer pyiqa's ``load_file_from_url`` from local files only; record name → sha256 in ``found``."""
    import pyiqa.archs  # noqa: F401  (imports every arch module, so each binding gets patched)

    def local(url: str, model_dir: str | None = None, progress: bool = True, file_name: str | None = None) -> str:
        wf = weight_file(url, file_name)
        explicit = Path(model_dir) if model_dir else pyiqa_cache_dir()
        path = _find_local(wf, explicit)
        found[wf.filename] = sha256_file(path)
        return str(path)

    mods = _arch_modules()
    saved = [(m, "load_file_from_url", m.load_file_from_url) for m in mods]
    for m in mods:
        m.load_file_from_url = local
    saved += _offline_backbone_files()
    try:
        yield
    finally:
        for m, attr, fn in reversed(saved):
            setattr(m, attr, fn)


def _offline_backbone_files() -> list[tuple[Any, str, Any]]:
    """Backbone files pyiqa fetches through other libraries, answered from their caches or one line naming
    the file: torchvision's ``load_state_dict_from_url`` (DISTS' VGG16 → ``torch.hub.get_dir()/checkpoints``)
    and pyiqa's CLIP ``_download`` (CLIPIQA's RN50 → ``torch.hub.get_dir()/clip``). Returns what to restore."""
    import torchvision.models._api as tv_api

    real_tv = tv_api.load_state_dict_from_url

    def tv_local(url: str, model_dir: str | None = None, *args: Any, file_name: str | None = None, **kw: Any) -> Any:
        name = file_name or os.path.basename(url.split("?")[0])
        path = Path(model_dir or Path(torch.hub.get_dir()) / "checkpoints") / name
        if not path.is_file():
            raise MissingWeightsError(f"pyiqa's torchvision backbone needs {name}; looked in: {path}. "
                                      f"To get it: download {url} and copy it there")
        return real_tv(url, model_dir, *args, file_name=file_name, **kw)

    out: list[tuple[Any, str, Any]] = [(tv_api, "load_state_dict_from_url", real_tv)]
    tv_api.load_state_dict_from_url = tv_local
    out += _offline_timm_backbones()
    clip_model = sys.modules.get("pyiqa.archs.clip_model")
    if clip_model is not None:
        real_clip = clip_model._download

        def clip_local(url: str, root: str) -> str:
            path = Path(root) / os.path.basename(url)
            if not path.is_file():
                raise MissingWeightsError(f"pyiqa's CLIP backbone needs {path.name}; looked in: {path}. "
                                          f"To get it: download {url} and copy it there")
            return real_clip(url, root)

        out.append((clip_model, "_download", real_clip))
        clip_model._download = clip_local
    return out


def _offline_timm_backbones() -> list[tuple[Any, str, Any]]:
    """``timm.create_model(name, pretrained=True)`` (MANIQA's ViT-B/8) answered from the Hugging Face cache,
    or one line naming the repository and file — timm would otherwise fail deep inside huggingface_hub."""
    try:
        import timm
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:
        return []
    real_create = timm.create_model

    def timm_local(model_name: str, pretrained: bool = False, *args: Any, **kw: Any) -> Any:
        if pretrained:
            repo = getattr(timm.models.get_pretrained_cfg(model_name), "hf_hub_id", None)
            files = ("model.safetensors", "pytorch_model.bin")
            if repo and not any(isinstance(try_to_load_from_cache(repo, f, cache_dir=constants.HF_HUB_CACHE), str) for f in files):
                raise MissingWeightsError(
                    f"pyiqa's timm backbone {model_name} needs {files[0]} of the Hugging Face repository {repo}; "
                    f"looked in: {constants.HF_HUB_CACHE}. To get it: run `hf download {repo} {files[0]}` on a "
                    f"connected machine and copy the cache folder here (or set HF_HOME)")
        return real_create(model_name, pretrained, *args, **kw)

    timm.create_model = timm_local
    return [(timm, "create_model", real_create)]


@contextlib.contextmanager
def random_backbones() -> Iterator[None]:
    """Build pyiqa's ImageNet/CLIP backbones with random weights, offline (tests, perf).

    pyiqa builds these even with ``pretrained=False``, each through its own library, so each is
    turned off where that library decides: torchvision's ``WeightsEnum.verify`` answers ``None``
    (DISTS' ``vgg16(weights='IMAGENET1K_V1')`` → an untrained VGG16 of the same shape), ``timm.create_model``
    gets ``pretrained=False`` (MANIQA's ViT-B/8), and pyiqa's CLIP ``load`` builds
    ``pyiqa.archs.clip_model.CLIP`` from :data:`CLIP_ARCHS` as ``build_model`` would (fp16-converted, then float on
    CPU). The draws come from torch's global RNG: seed it first for identical weights."""
    import timm
    import torchvision.models._api as tv_api

    patched: list[tuple[Any, str, Any]] = []

    def patch(obj: Any, attr: str, value: Any) -> None:
        # a class keeps its raw attribute (a classmethod, not the method bound to this class)
        patched.append((obj, attr, obj.__dict__[attr] if isinstance(obj, type) else getattr(obj, attr)))
        setattr(obj, attr, value)

    real_create = timm.create_model
    patch(tv_api.WeightsEnum, "verify", classmethod(lambda cls, obj: None))
    patch(timm, "create_model", lambda name, *a, pretrained=False, **k: real_create(name, *a, pretrained=False, **k))

    def random_clip(name: str, device: Any = "cpu", *args: Any, **kwargs: Any) -> torch.nn.Module:
        from pyiqa.archs.clip_model import CLIP, convert_weights  # pyiqa's own CLIP (its forward differs)

        if name not in CLIP_ARCHS:
            raise ValueError(f"no random CLIP architecture for {name!r} (known: {', '.join(CLIP_ARCHS)})")
        model = CLIP(*CLIP_ARCHS[name])
        convert_weights(model)  # what pyiqa's load → build_model does to the released weights
        model = model.eval().to(device)
        return model.float() if str(device) == "cpu" else model

    for mod in [m for k, m in list(sys.modules.items()) if m is not None and k.startswith("pyiqa.archs.")]:
        if getattr(mod, "load", None) is not None and getattr(mod.load, "__module__", "") == "pyiqa.archs.clip_model":
            patch(mod, "load", random_clip)
    try:
        yield
    finally:
        for obj, attr, value in reversed(patched):
            setattr(obj, attr, value)


def _find_local(wf: WeightFile, cache: Path) -> Path:
    """$SRBENCH_WEIGHTS/pyiqa/<file> first, then pyiqa's cache; else one line."""
    for cand in (wf.default_dest(), cache / wf.filename):
        if cand.is_file():
            return cand
    try:
        return resolve(wf, None, check=False)
    except MissingWeightsError:
        raise MissingWeightsError(
            f"pyiqa needs {wf.filename}; looked in: {wf.default_dest()}, {cache / wf.filename}. "
            f"To get it: download {wf.url} and copy it to either place"
        ) from None


def _network_error(err: BaseException) -> bool:
    import urllib.error

    names = {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectionError", "MaxRetryError"}
    return isinstance(err, (urllib.error.URLError, ConnectionError)) or type(err).__name__ in names


class PyiqaMetric:
    """One pyiqa metric, built once; call it on batches.

    Args:
        name: any pyiqa metric name (``pyiqa.list_models()``).
        device: where the network lives (inputs are moved there).
        random_init: build the network with ``pretrained=False`` under ``seed``, its ImageNet/CLIP
            backbone random too (:func:`random_backbones`; tests, perf): no file, no network.
        seed: seed for random init and for stochastic forwards.
    """

    def __init__(self, name: str, *, device: torch.device | str = "cpu", random_init: bool = False,
                 seed: int = 0):
        import pyiqa

        if name not in pyiqa.list_models():
            raise ValueError(f"unknown pyiqa metric {name!r} (see pyiqa.list_models())")
        self.name, self.seed, self.random_init = name, seed, random_init
        self.device = torch.device(device)
        self.weights: dict[str, str] = {}
        try:
            import_arch(name)  # before the patches below, so they reach its module
            kwargs = {"pretrained": False} if random_init and _takes_pretrained(name) else {}
            with offline_downloads(self.weights), torch.random.fork_rng(devices=[]), \
                    (random_backbones() if random_init else contextlib.nullcontext()):
                torch.manual_seed(seed)
                try:
                    self.model = pyiqa.create_metric(name, device=self.device, **kwargs)
                except TypeError as err:  # metric has no learned weights to skip (NIQE, BRISQUE, …)
                    if not (random_init and "pretrained" in str(err)):
                        raise
                    self.model = pyiqa.create_metric(name, device=self.device)
        except MissingWeightsError as err:
            raise MissingWeightsError(f"{name}: {err}") from None
        except Exception as err:
            if _network_error(err):
                raise MissingWeightsError(
                    f"{name}: pyiqa could not build it offline ({type(err).__name__}: {str(err).splitlines()[0][:160]}); "
                    f"run it once on a connected machine to fill its caches (torch hub, HF hub)"
                ) from None
            raise
        self.model.eval()
        self.lower_better = bool(self.model.lower_better)
        self.full_reference = self.model.metric_mode == "FR"
        self.stochastic = name in STOCHASTIC

    @property
    def higher_is_better(self) -> bool:
        return not self.lower_better

    @property
    def metric_id(self) -> str:
        tag = f"random{self.seed}" if self.random_init else "-".join(
            sha[:12] for _, sha in sorted(self.weights.items())) or "noweights"
        return f"{self.name}@pyiqa-{pyiqa_version()}-{tag}" + (f"-seed{self.seed}" if self.stochastic else "")

    def __call__(self, sr: Tensor, hr: Tensor | None = None) -> Tensor:
        """B float64 scores of ``sr`` (and ``hr`` for full-reference metrics), RGB in [0, 1]."""
        if self.full_reference and hr is None:
            raise ValueError(f"{self.name} is full-reference; it needs HR")
        sr = sr.to(self.device, torch.float32)
        if sr.shape[1] == 1:
            sr = sr.expand(-1, 3, -1, -1)
        args = [sr]
        if self.full_reference:
            hr = hr.to(self.device, torch.float32)
            args.append(hr.expand(-1, 3, -1, -1) if hr.shape[1] == 1 else hr)
        ctx = torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])
        with ctx, torch.inference_mode():
            if self.stochastic:
                torch.manual_seed(self.seed)
            out = self.model(*args)
        return out.detach().flatten().to("cpu", torch.float64)
