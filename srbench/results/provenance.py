"""What a manifest records about where a number came from: code, libraries, machine."""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

LIBRARIES = (
    "srbench", "torch", "torchvision", "numpy", "scipy", "pillow", "scikit-image", "lpips",
    "diffusers", "transformers", "peft", "accelerate", "torchdiffeq", "hydra-core", "omegaconf", "pandas",
)


def git_state(repo: str | Path | None = None) -> dict[str, Any]:
    """Commit sha and whether the working tree differs from it (``None`` outside a git checkout)."""
    cwd = Path(repo) if repo else Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=False, timeout=10)
        if sha.returncode != 0:
            return {"sha": None, "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, check=False, timeout=10)
        return {"sha": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info(device: Any) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"device": str(device), "host": socket.gethostname(), "platform": platform.platform(),
                            "python": sys.version.split()[0], "cpu_threads": torch.get_num_threads()}
    if getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available():
        idx = device.index if getattr(device, "index", None) is not None else torch.cuda.current_device()
        info.update(gpu=torch.cuda.get_device_name(idx), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info
