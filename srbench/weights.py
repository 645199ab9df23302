"""Where weight files live, their sha256, and one clear error when one is missing.

Each method declares what it needs (``SRMethod.required_weights(cfg)``) as :class:`WeightFile`
records (one file) or :class:`WeightDir` records (a whole folder, e.g. a Stable Diffusion
model in diffusers layout). :func:`resolve` finds each in this order:

1. an explicit path from the config (``method.weights=/path/file.pth``, or a directory holding it);
2. ``$SRBENCH_WEIGHTS/<method>/<filename>`` (default ``~/.cache/srbench/weights``);
3. the Hugging Face hub cache (``hf_repo``; ``$HF_HUB_CACHE`` layout
   ``models--org--name/snapshots/<rev>/...``), read without network;
4. the torch hub checkpoint folder (``$TORCH_HOME/hub/checkpoints``) for files with a ``url``;
5. a download, only when asked (``download=True`` / ``srbench weights download``), never in
   offline mode (``HF_HUB_OFFLINE=1``); the sha256 is checked before the file is put in place.

A missing file raises :class:`MissingWeightsError` whose message is one line: which file,
where it looked, how to get it. ``weights=random`` in a method config means no files.

:func:`load_state_dict` reads ``.safetensors`` / ``.pth`` / ``.ckpt`` (``weights_only`` unless
the caller trusts the file), strips ``module.`` / ``_orig_mod.`` prefixes and returns the
file's sha256 for the run manifest.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srbench.errors import CheckpointError, UserError

#: The parts of a diffusers Stable Diffusion folder srbench loads (defined once; srbench.nn.sd re-exports it).
SD_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")

if TYPE_CHECKING:
    import torch

__all__ = [
    "MissingWeightsError",
    "WeightDir",
    "WeightFile",
    "candidate_paths",
    "dir_sha256",
    "explicit_path",
    "find",
    "hf_cache_dir",
    "hf_offline",
    "is_random",
    "load_checkpoint",
    "load_state_dict",
    "required_for",
    "resolve",
    "resolve_all",
    "sha256_file",
    "strip_prefixes",
    "verify",
    "weights_root",
]


class WeightsFormatError(CheckpointError):
    """A weight file exists but cannot be used (unknown format, not a state dict, bad keys). One line."""


class MissingWeightsError(UserError, FileNotFoundError):
    """A weight file is absent or corrupt. ``str(err)`` is one line meant for the user."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "missing weights"


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class WeightFile:
    """One file a method needs."""

    method: str
    filename: str
    sha256: str | None = None  # full hex digest where published
    url: str | None = None  # direct download URL
    hf_repo: str | None = None  # Hugging Face repo id holding the file
    hf_filename: str | None = None  # path inside the HF repo (defaults to ``filename``)
    licence: str = ""
    description: str = ""
    sha256_prefix: str | None = None  # e.g. torchvision's 8-hex prefix embedded in the name
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    revision: str | None = None  # HF branch, tag or commit (None: "main")
    obtain: str = ""  # how to make the file when nothing is published (e.g. "train it: make train METHOD=…")

    @property
    def is_dir(self) -> bool:
        return False

    @property
    def source(self) -> str | None:
        """Human-readable origin: the URL, else the Hugging Face page."""
        if self.url:
            return self.url
        if self.hf_repo:
            return f"https://huggingface.co/{self.hf_repo}"
        return None

    def default_dest(self) -> Path:
        return weights_root() / self.method / self.filename

    def how_to_get(self) -> str:
        dest = self.default_dest()
        if not self.source:  # nothing to download: say how the file comes about
            return f"{self.obtain or 'obtain it'}, then copy it to {dest} (or pass its path in the config)"
        return (
            f"download {self.source} on a connected machine and copy it to {dest} (or pass its path in the "
            f"config, or run `srbench weights download {self.method}`)"
        )


#: Files every diffusers Stable Diffusion folder needs, per component ("a|b": either pattern).
SD_COMPONENT_FILES: dict[str, tuple[str, ...]] = {
    "unet": (
        "unet/config.json",
        "unet/diffusion_pytorch_model*.safetensors|unet/diffusion_pytorch_model*.bin",
    ),
    "vae": ("vae/config.json", "vae/diffusion_pytorch_model*.safetensors|vae/diffusion_pytorch_model*.bin"),
    "text_encoder": (
        "text_encoder/config.json",
        "text_encoder/model*.safetensors|text_encoder/pytorch_model*.bin",
    ),
    "tokenizer": ("tokenizer/tokenizer_config.json", "tokenizer/vocab.json|tokenizer/tokenizer.json"),
    "scheduler": ("scheduler/scheduler_config.json",),
}


@dataclass(frozen=True)
class WeightDir(WeightFile):
    """A whole folder a method needs, e.g. a Stable Diffusion model in diffusers layout.

    ``filename`` is the folder name under ``$SRBENCH_WEIGHTS/<method>/``. ``required`` lists
    glob patterns (relative to the folder; ``"a|b"`` means either) that must each match at
    least one file for the folder to count as present. ``allow_patterns`` limits a download
    to the files needed (e.g. fp32 safetensors only, not every variant a hub repo carries).
    ``files_sha256`` optionally pins digests of individual files (relative path → hex).
    """

    required: tuple[str, ...] = ("*",)
    allow_patterns: tuple[str, ...] | None = None
    files_sha256: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_dir(self) -> bool:
        return True

    def missing_parts(self, folder: Path) -> list[str]:
        """Required patterns with no matching file in ``folder`` (all of them if it is absent)."""
        if not folder.is_dir():
            return list(self.required)
        files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
        return [req for req in self.required if not any(fnmatch.filter(files, alt) for alt in req.split("|"))]

    def is_complete(self, folder: Path) -> bool:
        return not self.missing_parts(folder)

    def how_to_get(self) -> str:
        dest = self.default_dest()
        if self.hf_repo:
            return (
                f"run `srbench weights download {self.method}` on a connected machine (or "
                f"`hf download {self.hf_repo} --local-dir {dest}`), copy the folder to {dest}, "
                "or pass its path in the config"
            )
        src = f"download {self.source} and " if self.source else "obtain it and "
        return f"{src}unpack it to {dest} (or pass its path in the config)"

    @classmethod
    def stable_diffusion(
        cls,
        method: str,
        hf_repo: str,
        *,
        components: Sequence[str] = SD_COMPONENTS,
        variant: str | None = None,
        revision: str | None = None,
        licence: str = "",
        description: str = "",
    ) -> WeightDir:
        """A diffusers Stable Diffusion folder holding ``components``.

        The download fetches only ``model_index.json``, the configs, the tokenizer and the
        safetensors weights of the requested ``variant`` (``None``: fp32, ``"fp16"``).
        """
        unknown = set(components) - set(SD_COMPONENT_FILES)
        if unknown:
            raise ValueError(
                f"unknown Stable Diffusion components {sorted(unknown)}; known: {list(SD_COMPONENT_FILES)}"
            )
        required = ("model_index.json", *(p for c in components for p in SD_COMPONENT_FILES[c]))
        infix = f".{variant}" if variant else ""
        allow = ["model_index.json"]
        for comp in components:
            if comp in ("unet", "vae"):
                allow += [f"{comp}/config.json", f"{comp}/diffusion_pytorch_model{infix}.safetensors"]
            elif comp == "text_encoder":
                allow += ["text_encoder/config.json", f"text_encoder/model{infix}.safetensors"]
            else:
                allow.append(f"{comp}/*")
        return cls(
            method=method,
            filename=hf_repo.rstrip("/").split("/")[-1],
            hf_repo=hf_repo,
            revision=revision,
            licence=licence,
            description=description or f"Stable Diffusion folder ({', '.join(components)})",
            required=tuple(required),
            allow_patterns=tuple(allow),
        )


# --------------------------------------------------------------------------- locations
def weights_root() -> Path:
    return Path(
        os.environ.get("SRBENCH_WEIGHTS", Path.home() / ".cache" / "srbench" / "weights")
    ).expanduser()


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import time).

    Same precedence as ``huggingface_hub``: ``HF_HUB_CACHE`` > ``HUGGINGFACE_HUB_CACHE`` >
    ``$HF_HOME/hub`` > ``$XDG_CACHE_HOME/huggingface/hub`` > ``~/.cache/huggingface/hub``.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "huggingface"
    )
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def hf_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set to a true value."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _torch_hub_checkpoints() -> Path:
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "torch"
    )
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def _hf_repo_cache(repo: str) -> Path:
    return hf_cache_dir() / ("models--" + repo.replace("/", "--"))


def _hf_snapshots(repo: str, revision: str | None) -> list[Path]:
    """Snapshot folders of ``repo`` in the local HF cache, best first (no network).

    The one ``refs/<revision>`` points to comes first; a 40-hex ``revision`` is a commit;
    without a ref file, every snapshot is a candidate (newest first).
    """
    cache = _hf_repo_cache(repo)
    snapshots = cache / "snapshots"
    if not snapshots.is_dir():
        return []
    rev = revision or "main"
    if re.fullmatch(r"[0-9a-f]{40}", rev):
        return [snapshots / rev] if (snapshots / rev).is_dir() else []
    ref = cache / "refs" / rev
    if ref.is_file():
        commit = ref.read_text().strip()
        return [snapshots / commit] if (snapshots / commit).is_dir() else []
    if revision is not None:  # an explicit branch/tag we have no record of
        return []
    return sorted(
        (p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True
    )


def _hf_cache_candidates(wf: WeightFile) -> Iterable[Path]:
    if not wf.hf_repo:
        return []
    inner = wf.hf_filename or wf.filename
    return [snap / inner for snap in _hf_snapshots(wf.hf_repo, wf.revision)]


def candidate_paths(wf: WeightFile, explicit: str | os.PathLike | None = None) -> list[Path]:
    """Every place :func:`resolve` looks, in order (HF-cache entries only when a snapshot exists)."""
    paths: list[Path] = []
    if explicit:
        p = Path(explicit).expanduser()
        if wf.is_dir:
            paths += [p, p / wf.filename]
        else:
            paths.append(p / wf.filename if p.is_dir() else p)
    paths.append(wf.default_dest())
    if wf.is_dir:
        paths.extend(_hf_snapshots(wf.hf_repo, wf.revision) if wf.hf_repo else [])
    else:
        paths.extend(_hf_cache_candidates(wf))
        if wf.url:
            paths.append(_torch_hub_checkpoints() / wf.filename)
    return paths


def _present(wf: WeightFile, path: Path) -> bool:
    return wf.is_complete(path) if isinstance(wf, WeightDir) else path.is_file()


def _looked_in(wf: WeightFile, explicit: str | os.PathLike | None) -> str:
    places = [str(p) for p in candidate_paths(wf, explicit)]
    if wf.hf_repo and not any(str(_hf_repo_cache(wf.hf_repo)) in p for p in places):
        places.append(f"HF cache {_hf_repo_cache(wf.hf_repo)}")
    return ", ".join(dict.fromkeys(places))


def _what(wf: WeightFile) -> str:
    if wf.is_dir:
        repo = f" (Hugging Face {wf.hf_repo})" if wf.hf_repo else ""
        return f"the model folder {wf.filename}{repo}"
    return wf.filename


# --------------------------------------------------------------------------- hashing
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file; remembered per (real path, size, mtime) for this process."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(real, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".pkl")


def dir_sha256(folder: str | os.PathLike, suffixes: Sequence[str] = _WEIGHT_SUFFIXES) -> dict[str, str]:
    """sha256 of every weight file under ``folder`` (relative POSIX path → hex), for manifests."""
    root = Path(folder)
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name.endswith(tuple(suffixes))
    }


def verify(wf: WeightFile, path: Path) -> None:
    """Raise MissingWeightsError if ``path`` does not carry the published digest(s)."""
    if isinstance(wf, WeightDir):
        for rel, expected in wf.files_sha256.items():
            digest = sha256_file(path / rel) if (path / rel).is_file() else "absent"
            if digest != expected:
                raise MissingWeightsError(
                    f"{wf.method}: {path / rel} is corrupt (sha256 {digest[:16]}…, expected {expected[:16]}…); "
                    f"{wf.how_to_get()}"
                )
        return
    if not (wf.sha256 or wf.sha256_prefix):
        return
    digest = sha256_file(path)
    expected = wf.sha256 or wf.sha256_prefix
    if not digest.startswith(expected):
        raise MissingWeightsError(
            f"{wf.method}: {path} is corrupt (sha256 {digest[:16]}…, expected {expected[:16]}…); "
            f"{wf.how_to_get()}"
        )


# --------------------------------------------------------------------------- lookup
def find(wf: WeightFile, explicit: str | os.PathLike | None = None) -> Path | None:
    """Like :func:`resolve` without verification or download; ``None`` when absent."""
    for path in candidate_paths(wf, explicit):
        if _present(wf, path):
            return path
    return None


def resolve(
    wf: WeightFile,
    explicit: str | os.PathLike | None = None,
    *,
    check: bool = True,
    download: bool = False,
) -> Path:
    """Return the path of ``wf`` (a file, or a folder for :class:`WeightDir`).

    Raises a one-line :class:`MissingWeightsError` when it is nowhere and ``download`` is
    false, when the download is impossible or fails, or when the digest does not match.
    An explicit path that does not hold the file is an error even if a cached copy exists,
    so a typo in the config never silently runs other weights.
    """
    if explicit and not wf.is_dir:
        p = Path(explicit).expanduser()
        p = p / wf.filename if p.is_dir() else p
        if not p.is_file():
            raise MissingWeightsError(
                f"{wf.method}: {wf.filename} not found at the configured path {p}; fix the path, "
                f"or remove it to use the default locations"
            )
    if explicit and wf.is_dir:
        p = Path(explicit).expanduser()
        if not (_present(wf, p) or _present(wf, p / wf.filename)):
            missing = ", ".join(wf.missing_parts(p)) if isinstance(wf, WeightDir) else ""
            raise MissingWeightsError(
                f"{wf.method}: the configured folder {p} is not a complete {wf.filename} folder "
                f"(missing {missing}); fix the path, or remove it to use the default locations"
            )
    path = find(wf, explicit)
    if path is None:
        if not download:
            raise MissingWeightsError(
                f"{wf.method} needs {_what(wf)}; looked in: {_looked_in(wf, explicit)}. To get it: {wf.how_to_get()}"
            )
        path = _download(wf)
    if check:
        verify(wf, path)
    return path


# --------------------------------------------------------------------------- download
def _download(wf: WeightFile) -> Path:
    """Fetch ``wf``; sha256 is checked before the file counts as present."""
    if not (wf.url or wf.hf_repo):
        raise MissingWeightsError(f"{wf.method}: {_what(wf)} has no download source; {wf.how_to_get()}")
    if hf_offline():  # the user said "no network"; honour it for plain URLs too
        raise MissingWeightsError(
            f"{wf.method}: cannot download {_what(wf)} from {wf.source}: offline mode is on "
            f"(HF_HUB_OFFLINE=1); unset it on a connected machine, or {wf.how_to_get()}"
        )
    try:
        if isinstance(wf, WeightDir):
            return _download_hf_dir(wf)
        if wf.url:
            return _download_url(wf)
        return _download_hf_file(wf)
    except MissingWeightsError:
        raise
    except Exception as exc:  # network, HTTP, disk: one line, never a library traceback
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        raise MissingWeightsError(
            f"{wf.method}: download of {_what(wf)} from {wf.source} failed ({reason}); {wf.how_to_get()}"
        ) from exc


def _download_url(wf: WeightFile) -> Path:
    from torch.hub import download_url_to_file

    dest = wf.default_dest()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # torch.hub writes to "<dest>.<uuid>.partial", checks the digest, then moves it into place,
    # so an interrupted or corrupt download never leaves a file under the final name.
    try:
        download_url_to_file(wf.url, str(dest), hash_prefix=wf.sha256 or wf.sha256_prefix, progress=True)
    except RuntimeError as exc:
        if "invalid hash value" in str(exc):
            raise MissingWeightsError(
                f"{wf.method}: downloaded {wf.filename} from {wf.url} does not match its published sha256 "
                f"({str(exc).strip()}); nothing was saved — check the URL or report it"
            ) from exc
        raise
    return dest


def _download_hf_file(wf: WeightFile) -> Path:
    from huggingface_hub import hf_hub_download

    path = Path(
        hf_hub_download(
            wf.hf_repo, wf.hf_filename or wf.filename, revision=wf.revision, cache_dir=str(hf_cache_dir())
        )
    )
    try:
        verify(wf, path)
    except MissingWeightsError as exc:
        raise MissingWeightsError(
            f"{wf.method}: downloaded {wf.filename} from {wf.source} does not match its published sha256; "
            f"the copy is at {path} — delete it and check the revision ({exc})"
        ) from None
    return path


def _download_hf_dir(wf: WeightDir) -> Path:
    from huggingface_hub import snapshot_download

    folder = Path(
        snapshot_download(
            wf.hf_repo,
            revision=wf.revision,
            cache_dir=str(hf_cache_dir()),
            allow_patterns=list(wf.allow_patterns) if wf.allow_patterns else None,
        )
    )
    missing = wf.missing_parts(folder)
    if missing:
        raise MissingWeightsError(
            f"{wf.method}: downloaded {wf.hf_repo} to {folder} but it lacks {', '.join(missing)}; "
            "the repository layout differs from what srbench expects (check the revision or variant)"
        )
    return folder


# --------------------------------------------------------------------------- per method
def is_random(cfg: Mapping[str, Any] | None) -> bool:
    """``weights=random``: build the model with random init, needing no files."""
    return bool(cfg) and str(cfg.get("weights", "")).lower() == "random"


def explicit_path(wf: WeightFile, weights: Any) -> str | None:
    """The configured path for ``wf``: ``weights`` is a path, or a mapping filename → path."""
    if weights is None or str(weights).lower() in ("", "auto", "none", "default"):
        return None
    if isinstance(weights, Mapping):
        value = weights.get(wf.filename)
        return str(value) if value else None
    return str(weights)


def required_for(method_cls: Any, cfg: Mapping[str, Any]) -> list[WeightFile]:
    """``method_cls.required_weights(cfg)``, or nothing when ``weights=random``."""
    return [] if is_random(cfg) else list(method_cls.required_weights(cfg))


def resolve_all(
    method_cls: Any, cfg: Mapping[str, Any], *, download: bool = False, check: bool = True
) -> dict[str, Path]:
    """Resolve every file ``method_cls`` needs under ``cfg`` (filename → path; ``{}`` for random).

    When several are missing, ONE :class:`MissingWeightsError` line names all of them (" | "-joined),
    so a user fetches everything in one go instead of discovering the files one run at a time.
    """
    weights = cfg.get("weights") if cfg else None
    found: dict[str, Path] = {}
    missing: list[str] = []
    for wf in required_for(method_cls, cfg):
        try:
            found[wf.filename] = resolve(wf, explicit_path(wf, weights), check=check, download=download)
        except MissingWeightsError as err:
            missing.append(str(err))
    if missing:
        raise MissingWeightsError(" | ".join(missing))
    return found


# --------------------------------------------------------------------------- loading
_PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".pkl", ".tar")


def _array_globals() -> list[Any]:
    """What ``weights_only`` unpickling needs for numpy arrays (e.g. a saved numpy RNG state).

    Rebuilding an ndarray of a plain dtype runs no code from the file, unlike a general
    unpickle, so these are allowed next to tensors; everything else stays refused.
    """
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    dtypes = [type(np.dtype(name)) for name in ("bool", "uint8", "uint32", "int32", "int64", "float32", "float64")]
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, *dtypes]


def load_checkpoint(path: str | os.PathLike, *, allow_pickle: bool = False, hash_file: bool = True) -> tuple[Any, str | None]:
    """Read a checkpoint as stored (any nesting) and its sha256, on CPU.

    ``.safetensors`` via safetensors; pickle formats with ``torch.load(weights_only=True)``,
    which refuses Python objects other than tensors, containers, numbers, strings and numpy
    arrays. ``allow_pickle=True`` lifts that — only for files you trust, since unpickling can
    run code; srbench's own readers never set it. ``hash_file=False`` skips the sha256 (None),
    for readers that do not record provenance (resuming a multi-GB training checkpoint).
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise MissingWeightsError(f"checkpoint {p} does not exist")
    digest = sha256_file(p) if hash_file else None
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p), device="cpu"), digest
    if p.suffix not in _PICKLE_SUFFIXES:
        raise WeightsFormatError(
            f"{p}: unknown checkpoint format {p.suffix!r}; expected .safetensors or one of {_PICKLE_SUFFIXES}"
        )
    try:
        if allow_pickle:
            return torch.load(p, map_location="cpu", weights_only=False), digest
        with torch.serialization.safe_globals(_array_globals()):
            return torch.load(p, map_location="cpu", weights_only=True), digest
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types; each becomes one line
        text = " ".join(str(exc).split())
        if not allow_pickle and "unsupported global" in text.lower():
            raise WeightsFormatError(
                f"{p} holds Python objects other than tensors and arrays, which srbench does not unpickle "
                "(unpickling can run code from the file); re-save its weights alone, e.g. "
                "torch.save(model.state_dict(), …) or as .safetensors (allow_pickle=True in code, for files you trust)"
            ) from None
        hints = ("load key", "magic", "Unsupported operand", "truncated", "zip archive", "EOF")
        reason = next((line.strip() for line in str(exc).splitlines() if any(h in line for h in hints)),
                      text.split(". ")[0] if text else type(exc).__name__)
        raise WeightsFormatError(f"{p}: not a readable PyTorch checkpoint ({type(exc).__name__}: {reason})") from None


def strip_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop wrapper prefixes: a leading ``module.`` (DDP, possibly repeated) and every ``_orig_mod.``
    path component (torch.compile, at the top or around a compiled submodule)."""
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        new = key
        while new.startswith("module."):
            new = new[len("module.") :]
        new = ".".join(part for part in new.split(".") if part != "_orig_mod")
        if new in out:
            raise WeightsFormatError(
                f"state dict keys {key!r} and another key both become {new!r} after stripping prefixes"
            )
        out[new] = value
    return out


def load_state_dict(
    path: str | os.PathLike, *, subkey: str | None = None, allow_pickle: bool = False
) -> tuple[dict[str, torch.Tensor], str]:
    """Read a flat tensor state dict, with prefixes stripped, and the file's sha256.

    ``subkey`` selects a nested dict first (e.g. ``"state_dict"``, ``"params_ema"``); the
    caller says which, so an EMA copy is never picked silently. Returns CPU tensors.
    """
    import torch

    obj, digest = load_checkpoint(path, allow_pickle=allow_pickle)
    if subkey is not None:
        if not (isinstance(obj, Mapping) and subkey in obj):
            keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
            raise WeightsFormatError(f"{path}: no entry {subkey!r} in the checkpoint (top level: {keys})")
        obj = obj[subkey]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        top = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise WeightsFormatError(
            f"{path}: not a flat tensor state dict (top level: {top}); pass subkey= to pick the nested dict"
        )
    return strip_prefixes(obj), digest
