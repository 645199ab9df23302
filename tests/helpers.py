"""Test helpers: throw-away plugin distributions and composed bench configs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def make_plugin(root: Path, dist: str, module: str, methods: dict[str, str], source: str) -> Path:
    """Write an installed-looking distribution into ``root``: a module plus ``.dist-info`` entry points.

    ``methods`` maps entry-point name → ``module:Attr``. Adding ``root`` to ``sys.path`` (or
    PYTHONPATH) is exactly how a pip-installed third-party package is found by importlib.metadata.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = ["[srbench.methods]"] + [f"{k} = {v}" for k, v in methods.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


TOY_PLUGIN_SOURCE = '''
    import torch
    from srbench.method import SRMethod
    from srbench.weights import WeightFile


    class NearestToy(SRMethod):
        """A third-party method: nearest-neighbour upsampling plus seeded noise of size `noise`."""

        name = "toy_nearest"
        scales = frozenset({2.0, 4.0})
        is_stochastic = True

        def __init__(self, noise):
            self.noise = noise

        @classmethod
        def from_config(cls, cfg, device, dtype):
            method = cls(float(cfg.get("noise", 0.0)))
            method.delay = float(cfg.get("delay", 0.0))  # seconds per call (tests of concurrent runs)
            method.fail = str(cfg.get("fail", ""))  # nan | shape | unsupported: a broken output (error tests)
            return method

        def upscale(self, lr, scale, *, seeds):
            import time

            from srbench.method import UnsupportedInput

            time.sleep(self.delay)
            if self.fail == "unsupported":
                raise UnsupportedInput(f"toy_nearest cannot take a {lr.shape[-1]}×{lr.shape[-2]} input")
            sr = torch.nn.functional.interpolate(lr, scale_factor=scale, mode="nearest")
            if self.fail == "nan":
                sr = sr * float("nan")
            if self.fail == "shape":
                sr = sr[..., 1:, :]
            if self.noise:
                noise = torch.stack([torch.randn(sr.shape[1:], generator=torch.Generator().manual_seed(s))
                                     for s in seeds]).to(sr)
                sr = sr + self.noise * noise
            return sr.clamp(0, 1)


    class NeedsWeights(NearestToy):
        name = "toy_weighted"

        @classmethod
        def required_weights(cls, cfg):
            return [WeightFile(method="toy_weighted", filename="toy_weighted_v1.pth",
                               url="https://example.org/toy_weighted_v1.pth")]
'''


def plugin_env(plugin_root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess:
    exe = args[0]
    cmd = [str(BIN / exe)] + args[1:] if (BIN / exe).exists() else args
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout)


@contextlib.contextmanager
def bench_config(overrides: list[str]) -> Iterator[dict]:
    """The resolved bench config for ``overrides``, composed as the app composes it.

    Hydra stays initialised inside the ``with`` block (``method=all`` composes per-method configs).
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from srbench.data.base import dataset_registry
    from srbench.method import method_entries
    from srbench.runners.bench import without_all
    from srbench.runners.compose import CONF_DIR, prepare_hydra

    overrides = without_all(overrides)
    prepare_hydra(overrides, groups={"method": method_entries, "dataset": dataset_registry})
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="bench", overrides=overrides)
        yield OmegaConf.to_container(cfg, resolve=True)


#: ECDP's schedule buffers (closed-form values, kept as built when filling weights)
ECDP_SCHEDULE_BUFFERS = ("diffusion.betas", "diffusion.alphas", "diffusion.alpha_bars")


def fill_deterministic(module, strip: str = "", keep: tuple[str, ...] = ECDP_SCHEDULE_BUFFERS) -> None:
    """Every parameter from its own name (``strip`` removed): N(0,1) seeded with crc32(name);
    ≥2-D: /√fan_in; 1-D ``*.weight`` (GroupNorm): 1 + 0.1·N; 1-D ``*.bias``: 0.1·N; ``keep`` untouched.

    The same function fills the authors' model (tests/fixtures/make_ecdp_authors_forward.py) and
    ours, so both hold identical weights without copying a state dict between them.
    """
    import math
    import zlib

    import torch

    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=True).items():
            key = name.removeprefix(strip)
            if key in keep:
                continue
            r = torch.randn(t.shape, generator=torch.Generator().manual_seed(zlib.crc32(key.encode())))
            if t.dim() >= 2:
                value = r / math.sqrt(t[0].numel())
            elif key.endswith(".weight"):
                value = 1 + 0.1 * r
            else:
                value = 0.1 * r
            t.copy_(value)


def ecdp_tiny_config(solver: str = "euler", steps: int = 4, **extra) -> dict:
    """An ECDP method config small enough for CPU tests (2-block encoder, 2-level U-Net, random weights)."""
    return {
        "weights": "random",
        "encoder": {"num_blocks": 2, "block_selection": [0, 1], "num_features": 16, "growth": 8},
        "unet": {"channels": [16, 32], "num_blocks": [1, 1], "time_channels": 16},
        "sampler": {"method": solver, "steps": steps},
        **extra,
    }
