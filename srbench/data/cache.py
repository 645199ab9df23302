"""LR cache: generated LR images stored once, reused by every method and run.

Layout (``protocols.md`` §6, architecture "Data")::

    <cache_root>/<dataset_id>/<key_hash>/
        key.json          the full generation key (degradation config, its hash, seed, scale, HR protocol)
        <name>.png        the LR image, 8-bit PNG (lossless: the generated LR is already on the 8-bit grid)
        <name>.json       its record: sha256 of the PNG, sha256 of the HR it was made from, drawn parameters
        manifest.json     written by :meth:`LRCache.write_manifest`: name → LR sha256, and its own hash

``key_hash`` is the SHA-256 of the canonical JSON of the key, so a different degradation
config, seed, scale or HR protocol lands in a different folder and never mixes with old LR.
Per image, the record ties the LR to the exact HR pixels it came from: when the HR changes
(a re-downloaded or edited file), or the PNG no longer matches its recorded hash (a truncated
or edited file), the entry is regenerated with a warning — never silently reused.

One record file per image (not one shared manifest updated in place) keeps concurrent writers
(DataLoader workers, ``torchrun`` ranks) safe: every write is a temp file + ``os.replace``, and
two processes generating the same image write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srbench.data.io import ImageReadError, read_image, to_uint8, write_image
from srbench.fsutil import atomic_write_json
from srbench.weights import sha256_file as _file_sha256

__all__ = ["CACHE_FORMAT", "CacheEntry", "LRCache", "canonical_json", "key_hash", "tensor_sha256"]

#: bump when the on-disk format or what the key means changes
CACHE_FORMAT = 1


def canonical_json(obj: Any) -> str:
    """Stable JSON (sorted keys, no whitespace) so equal configs hash equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON-serialisable in a cache key: {type(obj).__name__}")


def key_hash(key: Mapping[str, Any]) -> str:
    """First 16 hex digits of SHA-256 over the canonical JSON of ``key``."""
    return hashlib.sha256(canonical_json(dict(key)).encode()).hexdigest()[:16]


def tensor_sha256(x: torch.Tensor) -> str:
    """SHA-256 of an image's 8-bit pixels (C×H×W in [0, 1]) plus its shape."""
    arr = to_uint8(x.detach().cpu())
    h = hashlib.sha256(str(arr.shape).encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _write_json_atomic(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, indent=1, sort_keys=True)


@dataclass
class CacheEntry:
    """One LR read from or written to the cache. ``lr``: 3×h×w float32 on the 8-bit grid."""

    name: str
    lr: torch.Tensor
    params: dict[str, Any]
    lr_sha256: str
    hit: bool


class LRCache:
    """Generated LR for one dataset and one generation key (see the module docstring).

    Args:
        root: cache root, normally ``<paths.data>/cache``.
        dataset_id: folder name for the dataset (e.g. ``div2k_realesrgan``).
        key: everything the LR depends on besides the HR pixels (JSON-serialisable).
    """

    def __init__(self, root: str | os.PathLike, dataset_id: str, key: Mapping[str, Any]):
        self.key = {"cache_format": CACHE_FORMAT, **dict(key)}
        self.hash = key_hash(self.key)
        self.dir = Path(root).expanduser() / dataset_id / self.hash
        self.hits = 0
        self.misses = 0
        self.rebuilt: list[str] = []

    # ---------------------------------------------------------------- paths
    def png_path(self, name: str) -> Path:
        return self.dir / f"{name}.png"

    def record_path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def _ensure_dir(self) -> None:
        if not self.dir.is_dir():
            self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / "key.json"
        if not key_file.exists():
            _write_json_atomic(key_file, self.key)

    # ---------------------------------------------------------------- lookup
    def lookup(self, name: str, hr_sha256: str) -> CacheEntry | None:
        """The cached LR of ``name`` if present, intact and made from the same HR; else ``None``.

        A present but unusable entry (PNG hash mismatch, unreadable PNG, different HR) is
        reported with a warning and left for :meth:`get` to regenerate.
        """
        png, rec_path = self.png_path(name), self.record_path(name)
        if not rec_path.exists() or not png.exists():
            return None
        try:
            record = json.loads(rec_path.read_text())
        except (OSError, ValueError):
            return self._stale(name, "its record is unreadable")
        if record.get("hr_sha256") != hr_sha256:
            return self._stale(name, "the HR it was made from has changed")
        if _file_sha256(png) != record.get("lr_sha256"):
            return self._stale(name, "the PNG does not match its recorded sha256 (corrupt or edited)")
        try:
            lr = read_image(png).tensor
        except ImageReadError as err:
            return self._stale(name, f"the PNG is unreadable ({err})")
        return CacheEntry(name, lr, record.get("params", {}), record["lr_sha256"], hit=True)

    def _stale(self, name: str, why: str) -> None:
        warnings.warn(f"LR cache {self.png_path(name)}: {why}; regenerating", stacklevel=3)
        self.rebuilt.append(name)

    # ---------------------------------------------------------------- get / put
    def get(self, name: str, hr: torch.Tensor,
            make: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, Any]]]) -> CacheEntry:
        """The LR of ``name``: from the cache, or made by ``make(hr) -> (lr, params)`` and stored.

        ``hr``: 3×H×W in [0, 1] (the prepared HR the LR is made from). ``make`` must return LR
        on the 8-bit grid (it is stored as an 8-bit PNG and must read back identically).
        """
        hr_sha = tensor_sha256(hr)
        entry = self.lookup(name, hr_sha)
        if entry is not None:
            self.hits += 1
            return entry
        self.misses += 1
        lr, params = make(hr)
        return self.put(name, lr, params, hr_sha)

    def put(self, name: str, lr: torch.Tensor, params: Mapping[str, Any], hr_sha256: str) -> CacheEntry:
        """Store ``lr`` (3×h×w, values on the 8-bit grid) with its record; returns the stored entry."""
        lr = lr.detach().to("cpu", torch.float32)
        levels = lr * 255
        if lr.min() < 0 or lr.max() > 1 or (levels - levels.round()).abs().max() > 1e-3:
            raise ValueError(f"LR cache: LR of {name!r} is not on the 8-bit grid; quantize it before caching")
        self._ensure_dir()
        png = self.png_path(name)
        png.parent.mkdir(parents=True, exist_ok=True)
        write_image(png, lr)
        lr_sha = _file_sha256(png)
        record = {"name": name, "lr_sha256": lr_sha, "hr_sha256": hr_sha256, "lr_size": list(lr.shape[-2:]),
                  "params": dict(params), "params_sha256": hashlib.sha256(canonical_json(dict(params)).encode()).hexdigest()}
        _write_json_atomic(self.record_path(name), record)
        return CacheEntry(name, lr, dict(params), lr_sha, hit=False)

    # ---------------------------------------------------------------- manifest
    def manifest(self, names: list[str] | None = None) -> dict[str, Any]:
        """name → LR sha256 (and params sha256) for the given (default: all cached) names.

        ``complete`` says whether every requested name is cached; ``sha256`` hashes the
        sorted entries, so two caches with the same LR bytes have the same manifest hash.
        """
        if names is None:
            names = sorted(p.stem for p in self.dir.glob("*.json") if p.name not in ("key.json", "manifest.json"))
        entries: dict[str, dict[str, str]] = {}
        missing = []
        for name in names:
            try:
                rec = json.loads(self.record_path(name).read_text())
                entries[name] = {"lr_sha256": rec["lr_sha256"], "params_sha256": rec.get("params_sha256", "")}
            except (OSError, ValueError, KeyError):
                missing.append(name)
        digest = hashlib.sha256(canonical_json(entries).encode()).hexdigest()
        return {"key": self.key, "key_hash": self.hash, "dir": str(self.dir), "entries": entries,
                "complete": not missing, "missing": missing, "sha256": digest}

    def write_manifest(self, names: list[str] | None = None) -> Path:
        """Write ``manifest.json`` next to the LR files (atomically) and return its path."""
        self._ensure_dir()
        path = self.dir / "manifest.json"
        _write_json_atomic(path, self.manifest(names))
        return path
