"""Devices, dtypes and peak memory — shared by the runners and the methods (dependency-free but torch)."""

from __future__ import annotations

import os
from typing import Any

import torch

from srbench.errors import ConfigError

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}


def resolve_device(spec: str | None) -> torch.device:
    """``auto`` → this process's GPU (``LOCAL_RANK`` under torchrun) or the CPU; CUDA asked for but absent → error."""
    if spec in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={spec} requested but CUDA is not available (use device=auto or device=cpu)")
    return device


def resolve_dtype(spec: str | None, device: torch.device) -> torch.dtype:
    """``auto`` → bf16 on CUDA, fp32 on CPU."""
    if spec in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if spec not in DTYPES:
        raise ConfigError(f"unknown dtype {spec!r}; use one of fp32, bf16, fp16, auto")
    return DTYPES[spec]


def method_device_dtype(cfg: Any, device: Any, dtype: torch.dtype | None) -> tuple[torch.device, torch.dtype]:
    """A method's device and dtype in ``from_config``: the method config's own ``dtype`` key wins over
    the runner's; unknown names are one line (:func:`resolve_dtype`)."""
    device = torch.device(device or "cpu")
    spec = cfg.get("dtype") if cfg else None
    return device, (resolve_dtype(str(spec).lower(), device) if spec else (dtype or torch.float32))


# ------------------------------------------------------------------------------ peak memory
def reset_peak_memory(device: torch.device) -> bool:
    """Start a new peak-memory window; False when the CPU peak can only be the process lifetime's."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
        return True
    except OSError:
        return False


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: max allocated since the last reset. CPU: peak resident set size (VmHWM) since the last reset."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
