"""The ECDP SRMethod adapter and its three-stage Trainer.

Inference (paper's test protocol, ``lib/trainer.py::test_one``): z ~ N(0, I)·temperature at HR
size, one PF-ODE solve (dopri5, rtol = atol = 1e-3, τ: 300 → 0.1), HR = x/5 + B(LR). The LR
encoder runs once per image; its resized features and their 1×1 projections are prepared once
per solve.

Training stages (``method.train.stage``), each a :class:`srbench.training.Trainer`:

* ``regressor`` — RRDB regressor, L1 (stage a);
* ``diffusion`` — score network on the scaled residual, two-head loss; the encoder (initialised
  from ``train.regressor_weights``, required unless ``train.allow_random_init``) trains in its own
  parameter group at ``train.encoder_lr`` (stage b);
* ``finetune`` — VGG19-conv5_4 L1 on the PF-ODE output, gradients by the adjoint method through
  the U-Net only (stage c); initialise with ``init.checkpoint`` (the stage-b run) or
  ``method.weights`` = the stage-(b) checkpoint, whose EMA weights (``model_avg``) are taken.

Precision is one setting, ``method.dtype`` (the ``dtype`` argument of ``from_config``): fp32 (the
published presets), or bf16/fp16 autocast of the networks with the ODE state kept in float32.
Errors a user can fix are one line (:mod:`methods.ecdp.errors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from srbench.config import bounded, typed, within
from srbench.devices import DTYPES
from srbench.errors import ConfigError
from srbench.method import SRMethod, UnsupportedInput
from srbench.nn.noise import randn_per_image
from srbench.training import Trainer
from srbench.weights import WeightFile, explicit_path, resolve

from .checkpoint import load_ecdp_weights, load_regressor_weights
from .errors import ECDPConfigError
from .losses import PerceptualLoss, regressor_l1_loss, score_matching_loss
from .model import ECDPNet
from .rrdb import RRDBRegressor
from .sampler import SolverSettings, solve_pf_ode
from .sde import ProbabilityFlowODE, perturb

STAGES = ("regressor", "diffusion", "finetune")
#: the precisions ECDP runs in, by their srbench names (srbench.devices.DTYPES)
DTYPE_NAMES = ("fp32", "bf16", "fp16")


def dtype_name(dtype: torch.dtype) -> str:
    """srbench's name of a torch dtype ECDP can run in; anything else is a one-line error."""
    for name in DTYPE_NAMES:
        if DTYPES[name] == dtype:
            return name
    raise ECDPConfigError(f"ECDP runs in {', '.join(DTYPE_NAMES)} (method.dtype), not {dtype}")


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    """``cfg[key]`` for dicts and OmegaConf nodes alike, ``default`` when absent or null."""
    if cfg is None:
        return default
    try:
        value = cfg.get(key, default)
    except (AttributeError, TypeError):
        value = getattr(cfg, key, default)
    return default if value is None else value


@dataclass
class EncoderConfig:
    """``method.encoder``: the RRDB trunk (authors' conf/ecdp-<variant>-train.yaml)."""

    num_blocks: int = bounded(23, ge=1)
    block_selection: list[int] = field(default_factory=lambda: [1, 8, 15, 22], metadata=within(ge=0))
    num_features: int = bounded(64, ge=1)
    growth: int = bounded(32, ge=1)


@dataclass
class UNetConfig:
    """``method.unet`` (lib/model/unet.py; fixed in the authors' code)."""

    channels: list[int] = field(default_factory=lambda: [64, 128, 256, 256], metadata=within(ge=1))
    num_blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2], metadata=within(ge=1))
    time_channels: int = bounded(128, ge=1)


@dataclass
class SamplerConfig:
    """``method.sampler``: the PF-ODE solve (:class:`SolverSettings`) and how a batch is solved."""

    method: str = "dopri5"
    rtol: float = bounded(1e-3, gt=0)
    atol: float = bounded(1e-3, gt=0)
    steps: int | None = bounded(None, ge=1)
    tau_start: float = 300.0
    tau_end: float = 0.1
    authors_jump_t: bool = False
    batch_mode: str = bounded("per_image", choices=("per_image", "joint"))

    def __post_init__(self) -> None:
        self.solver  # noqa: B018 - SolverSettings checks the solver name, its steps and the τ range

    @property
    def solver(self) -> SolverSettings:
        return SolverSettings(self.method, self.rtol, self.atol, self.steps, self.tau_start, self.tau_end,
                              self.authors_jump_t)


@dataclass
class TrainConfig:
    """``method.train``: what :meth:`ECDP.trainer` reads (the loop settings are srbench-train's)."""

    stage: str = bounded("diffusion", choices=STAGES)
    regressor_weights: str | None = None
    allow_random_init: bool = False
    encoder_lr: float = bounded(1e-5, ge=0)
    percep_weight: float = bounded(0.5, ge=0)
    percep_backbone: str = bounded("imagenet", choices=("imagenet", "random"))
    percep_weights: str | None = None


@dataclass
class ECDPConfig:
    """Everything ``from_config`` reads (conf/method/ecdp*.yaml), checked once (:func:`srbench.config.typed`)."""

    name: str = "ecdp"
    variant: str = "df2k"
    scale: int = bounded(4, choices=(4, 8))
    weights: str | None = None
    prefer_ema: bool = True
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    residual_scale: float = bounded(5.0, gt=0)
    antialias: bool = False
    temperature: float = bounded(1.0, ge=0)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    #: the bench's inference precision; ``from_config``'s dtype argument is what runs (the runners
    #: resolve ``method.dtype`` into it)
    dtype: str = bounded("fp32", choices=(*DTYPE_NAMES, "auto", "float32", "bfloat16", "float16"))
    compile: bool = False
    channels_last: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> ECDPConfig:
        if _get(cfg, "precision") is not None:
            raise ECDPConfigError("ECDP: method.precision was replaced by method.dtype (fp32 | bf16 | fp16 | auto)")
        try:
            return typed(cls, cfg, where="method")
        except ECDPConfigError:
            raise
        except ConfigError as err:
            raise ECDPConfigError(f"ECDP: {err}") from None

    @property
    def solver(self) -> SolverSettings:
        return self.sampler.solver

    @property
    def batch_mode(self) -> str:
        return self.sampler.batch_mode

    def build_net(self) -> ECDPNet:
        enc, unet = self.encoder, self.unet
        return ECDPNet(enc.num_blocks, tuple(enc.block_selection), tuple(unet.channels), tuple(unet.num_blocks),
                       unet.time_channels, enc.num_features, enc.growth, self.residual_scale, self.antialias)


def train_config(node: Any) -> TrainConfig:
    """``method.train`` as a checked :class:`TrainConfig` (a node of the training config or of the method's)."""
    try:
        return typed(TrainConfig, node, where="method.train")
    except ConfigError as err:
        raise ECDPConfigError(f"ECDP: {err}") from None


def checkpoint_weight_file(variant: str) -> WeightFile:
    """The (unpublished) checkpoint ECDP needs: no URL exists, one has to train it."""
    return WeightFile(
        method="ecdp",
        filename=f"ecdp-{variant}.pt",
        description="ECDP checkpoint ({'model', 'model_avg'} state dicts, authors' layout); no weights are published",
        licence="trained by the user",
        obtain=(
            "no ECDP weights are published: train them in three stages, starting with `make train METHOD=ecdp "
            "ARGS='experiment=ecdp_train_df2k_regressor dataset.hr_dir=/path/to/DF2K_HR'` (methods/ecdp/README.md)"
        ),
    )


class ECDP(SRMethod):
    """Yuan & Yuan, "Efficient Conditional Diffusion Model with Probability Flow Sampling for
    Image Super-resolution", AAAI 2024 — a re-implementation of Yuan-Yutao/ECDP."""

    name = "ecdp"
    scales = frozenset({4.0, 8.0})
    is_stochastic = True

    def __init__(self, cfg: ECDPConfig, net: ECDPNet, device: torch.device, provenance: dict) -> None:
        self.cfg = cfg
        self.net = net
        self.device = torch.device(device)
        self.provenance = provenance
        self.last_nfe: list[int] = []
        self.nfe_total = 0  # over every image upscaled so far
        self.images_total = 0
        self._unet_fn: Any = net.unet
        if cfg.compile:
            self._unet_fn = torch.compile(net.unet, dynamic=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def required_weights(cls, cfg: Mapping[str, Any]) -> list[WeightFile]:
        weights = _get(cfg, "weights")
        if weights == "random":
            return []
        return [checkpoint_weight_file(str(_get(cfg, "variant", "df2k")))]

    @classmethod
    def from_config(
        cls, cfg: Mapping[str, Any], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> ECDP:
        """Build ECDPNet for ``cfg`` and load its checkpoint (``cfg.weights``: "random", a file, a
        folder holding ``ecdp-<variant>.pt``, or null for ``$SRBENCH_WEIGHTS/ecdp/ecdp-<variant>.pt``).

        ``dtype`` is the one precision setting (the bench passes the resolved ``method.dtype``, the
        perf runner its sweep's dtype): bf16/fp16 run the networks under autocast, the ODE state
        and schedule stay float32/float64; fp32 is the published setting.
        """
        ecfg = ECDPConfig.from_mapping(cfg)
        ecfg.dtype = dtype_name(dtype)
        net = ecfg.build_net()
        if ecfg.weights == "random":
            provenance = {"weights": "random"}
        else:
            wf = checkpoint_weight_file(ecfg.variant)
            path = resolve(wf, explicit_path(wf, ecfg.weights))
            provenance = load_ecdp_weights(net, path, prefer_ema=ecfg.prefer_ema)
        net = net.to(device).eval()
        if ecfg.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return cls(ecfg, net, torch.device(device), provenance)

    # ------------------------------------------------------------------ inference
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.dtype == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.cfg.dtype])

    @property
    def deterministic(self) -> bool:
        """At temperature 0 the PF-ODE starts from z = 0: no draw, one output per input."""
        return self.cfg.temperature == 0

    def initial_noise(self, seeds: Sequence[int], shape: tuple[int, int, int]) -> torch.Tensor:
        """z ~ N(0, I)·temperature, one CPU generator per image (same z on every device)."""
        return randn_per_image(seeds, shape, device=self.device) * self.cfg.temperature

    def sample(self, lr: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        """One PF-ODE solve for a batch: lr B×3×h×w in [0, 1], z B×3×H×W → (HR not clamped, NFE)."""
        size = tuple(z.shape[-2:])
        if self.cfg.channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
            z = z.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            cond = self.net.condition(lr, size, project=True)
        lr_up = self.net.upsample_lr(lr.float(), size)

        def heads(x: torch.Tensor, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with self._autocast():
                return self._unet_fn(x, tau, cond)

        x_end, counter = solve_pf_ode(
            ProbabilityFlowODE(heads, self.net.diffusion.schedule), z.float(), self.cfg.solver
        )
        return self.net.from_residual(x_end, lr_up), counter.nfe

    def check_input(self, lr: torch.Tensor, scale: float) -> None:
        self.check_scale(scale)
        if float(scale) != float(self.cfg.scale):
            raise UnsupportedInput(
                f"this ECDP model ({self.cfg.variant}) was built for x{self.cfg.scale}, not x{scale:g}"
            )
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise UnsupportedInput(f"ECDP expects B×3×h×w RGB input, got shape {tuple(lr.shape)}")

    @torch.inference_mode()
    def upscale(self, lr: torch.Tensor, scale: float, *, seeds: Sequence[int]) -> torch.Tensor:
        """lr: B×3×h×w in [0, 1] → B×3×(h·s)×(w·s) in [0, 1]; one seed per image."""
        self.check_input(lr, scale)
        if len(seeds) != lr.shape[0]:
            raise ValueError(f"ECDP.upscale: {lr.shape[0]} images but {len(seeds)} seeds")
        s = self.cfg.scale
        z = self.initial_noise(seeds, (3, lr.shape[2] * s, lr.shape[3] * s))
        lr = lr.to(self.device, torch.float32)
        if self.cfg.batch_mode == "joint":
            # one adaptive solve for the whole batch (authors' behaviour): the step sizes, hence
            # each image's output at tolerance level, depend on the batch's other images
            hr, nfe = self.sample(lr, z)
            self.last_nfe = [nfe] * lr.shape[0]
        else:
            outs, self.last_nfe = [], []
            for i in range(lr.shape[0]):
                hr_i, nfe = self.sample(lr[i : i + 1], z[i : i + 1])
                outs.append(hr_i)
                self.last_nfe.append(nfe)
            hr = torch.cat(outs)
        self.nfe_total += sum(self.last_nfe)
        self.images_total += len(self.last_nfe)
        return hr.clamp(0, 1).contiguous()

    def describe(self) -> dict[str, Any]:
        params = list(self.net.parameters())
        return {
            "name": self.name,
            "variant": self.cfg.variant,
            "scale": self.cfg.scale,
            "params_total": sum(p.numel() for p in params),
            "params_trainable": sum(p.numel() for p in params if p.requires_grad),
            "params_unet": sum(p.numel() for p in self.net.unet.parameters()),
            "params_encoder": sum(p.numel() for p in self.net.lr_feats.parameters()),
            "nfe_mean": self.nfe_total / self.images_total if self.images_total else None,  # over all calls
            "images_upscaled": self.images_total,
            **self.cfg.solver.describe(),
            "batch_mode": self.cfg.batch_mode,
            "temperature": self.cfg.temperature,
            "dtype": self.cfg.dtype,
            "compile": self.cfg.compile,
            "channels_last": self.cfg.channels_last,
            "antialias": self.cfg.antialias,
            "weights": self.provenance.get("weights"),
            "weights_path": self.provenance.get("path"),
            "weights_sha256": self.provenance.get("sha256"),
        }

    def nfe_per_image(self) -> list[int]:
        """NFE of each image of the last ``upscale`` call (the adaptive solver's count)."""
        return list(self.last_nfe)

    def trainer(self, cfg: Mapping[str, Any]) -> ECDPTrainer:
        """A Trainer for ``method.train.stage`` (``cfg``: the training config or its ``method`` node)."""
        mcfg = _get(cfg, "method", cfg)
        node = _get(mcfg, "train")
        train_cfg = train_config(node) if node is not None else self.cfg.train
        stage = train_cfg.stage
        # A stage that starts from trained weights refuses a random start unless asked for: a
        # silently random encoder (b) or U-Net (c) trains, but not the published model.
        trained_start = (
            self.provenance.get("weights") != "random"  # method.weights holds a whole ECDP model
            or bool(_get(_get(cfg, "init", {}), "checkpoint"))  # the runner loads init.checkpoint
            or train_cfg.allow_random_init
        )
        if stage == "finetune" and not trained_start:
            raise ECDPConfigError(
                "ECDP fine-tuning (stage c) starts from a trained stage-b model: set init.checkpoint=<stage-b "
                "run dir or step_*.pt> or method.weights=<checkpoint> (method.train.allow_random_init=true only for tests)"
            )
        if stage == "diffusion" and not trained_start and not train_cfg.regressor_weights:
            raise ECDPConfigError(
                "ECDP stage b (diffusion) starts its LR encoder from the stage-a regressor: set "
                "method.train.regressor_weights=<stage-a run dir, its step_*.pt, or the authors' pretrained-rrdbnet-*.pt>, "
                "or method.train.allow_random_init=true to train the encoder from random init"
            )
        return ECDPTrainer(self, train_cfg)


class RegressorMethod(SRMethod):
    """The stage-(a) RRDB regressor as an SRMethod (for validation during its training)."""

    name = "ecdp_regressor"
    scales = frozenset({4.0, 8.0})

    def __init__(self, regressor: RRDBRegressor) -> None:
        self.regressor = regressor

    @classmethod
    def from_config(cls, cfg, device, dtype):  # pragma: no cover - built by ECDPTrainer only
        raise NotImplementedError("RegressorMethod is built by ECDP's trainer, not from a config")

    @torch.inference_mode()
    def upscale(self, lr: torch.Tensor, scale: float, *, seeds: Sequence[int]) -> torch.Tensor:
        if float(scale) != float(self.regressor.sr_factor):
            raise UnsupportedInput(
                f"the RRDB regressor was built for x{self.regressor.sr_factor}, not x{scale:g}"
            )
        was_training = self.regressor.training
        self.regressor.eval()
        try:
            return self.regressor(lr).clamp(0, 1)
        finally:
            self.regressor.train(was_training)


class ECDPTrainer(Trainer):
    """The losses of ECDP's three training stages; the runner owns the loop.

    What the runner must provide for the published recipes (conf/experiment/ecdp_train_*.yaml):
    Adam (betas 0.9/0.999, no weight decay), gradient clipping *by value* at 10, linear warm-up
    ``min(step+1, warmup)/warmup`` (500 steps; 1 for fine-tuning), ×0.5 step decay at the listed
    epochs, EMA ``p ← (1−1/N)·p + p_new/N`` with N = 1000 (stage b) or N = 10 (stage c), and
    evaluation with the EMA weights.
    """

    def __init__(self, method: ECDP, train_cfg: TrainConfig) -> None:
        self.method = method
        self.stage = train_cfg.stage
        self.encoder_lr = train_cfg.encoder_lr
        cfg, net = method.cfg, method.net
        self.net = net
        device = method.device
        enc = cfg.encoder
        if self.stage == "regressor":
            self.regressor = RRDBRegressor(enc.num_blocks, cfg.scale, 3, enc.num_features, enc.growth)
            self.regressor.to(device)
            if train_cfg.regressor_weights:
                load_regressor_weights(self.regressor, train_cfg.regressor_weights, encoder_only=False)
        elif self.stage == "diffusion":
            if train_cfg.regressor_weights:
                # ECDP's constructor: lr_feats = pretrained RRDBNet trunk, tail discarded
                load_regressor_weights(net.lr_feats, train_cfg.regressor_weights, encoder_only=True)
        else:
            net.lr_feats.requires_grad_(False)  # the adjoint reaches only the U-Net
            self.percep_weight = train_cfg.percep_weight
            self.percep = PerceptualLoss(train_cfg.percep_backbone, train_cfg.percep_weights).to(device)
            self.solver = cfg.solver
        net.train()
        self.last_nfe_forward = 0

    def modules(self) -> dict[str, nn.Module]:
        if self.stage == "regressor":
            return {"regressor": self.regressor}
        return {"model": self.net}

    def parameter_groups(self, base_lr: float) -> list[dict[str, Any]]:
        if self.stage == "regressor":
            return [{"params": list(self.regressor.parameters()), "lr": base_lr}]
        groups = [{"params": list(self.net.unet.parameters()), "lr": base_lr}]
        if self.stage == "diffusion":
            groups.append({"params": list(self.net.lr_feats.parameters()), "lr": self.encoder_lr})
        return groups

    def _check_batch(self, lr: torch.Tensor, hr: torch.Tensor) -> None:
        s = self.method.cfg.scale
        if hr.shape[-2:] != (lr.shape[-2] * s, lr.shape[-1] * s):
            raise UnsupportedInput(
                f"ECDP training needs HR = {s}×LR, got LR {tuple(lr.shape)} and HR {tuple(hr.shape)}"
            )

    def training_step(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        lr, hr = batch["lr"], batch["hr"]
        self._check_batch(lr, hr)
        if self.stage == "regressor":
            return {"loss": regressor_l1_loss(self.regressor(lr), hr)}
        if self.stage == "diffusion":
            return self._diffusion_step(lr, hr)
        return self._finetune_step(lr, hr)

    def _diffusion_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        # s ~ U[0, 1), i.e. τ ~ U[0, 300) continuous, one per image, and ε ~ N(0, I) (authors'
        # Diffusion.normalize, training branch)
        s = torch.rand(hr.shape[0], device=hr.device, dtype=torch.float64)
        return self.diffusion_losses(lr, hr, s, torch.randn_like(hr))

    def diffusion_losses(
        self, lr: torch.Tensor, hr: torch.Tensor, s: torch.Tensor, eps: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Stage-(b) losses for given diffusion times ``s`` ∈ [0, 1) (B,) and noise ``eps`` (like ``hr``)."""
        net = self.net
        feats = net.lr_feats(lr)
        x0 = net.to_residual(hr, net.upsample_lr(lr, tuple(hr.shape[-2:])))
        s = s.to(torch.float64)
        alpha_bar = net.diffusion.schedule.alpha_bar(s).to(x0.dtype)
        x_t = perturb(x0, eps, alpha_bar)
        # the network sees τ = 300·s (network time), not s
        eps_hat, x0_hat = net.unet(x_t, (s * net.diffusion.schedule.tau_max).to(x0.dtype), feats)
        return score_matching_loss(eps_hat, x0_hat, eps, x0)

    def _finetune_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        net = self.net
        size = tuple(hr.shape[-2:])
        with torch.no_grad():  # the encoder gets no gradient in stage (c)
            cond = net.condition(lr, size, project=False)
            lr_up = net.upsample_lr(lr, size)
        z = torch.randn_like(hr) * self.method.cfg.temperature
        ode = ProbabilityFlowODE(lambda x, tau: net.unet(x, tau, cond), net.diffusion.schedule)
        x_end, counter = solve_pf_ode(
            ode, z, self.solver, adjoint=True, adjoint_params=tuple(net.unet.parameters())
        )
        self.last_nfe_forward = counter.nfe
        self._counter = counter  # keeps counting during backward (adjoint NFE)
        percep = self.percep(net.from_residual(x_end, lr_up), hr)
        return {
            "loss": self.percep_weight * percep.mean(),
            "percep": percep.mean().detach(),
            "nfe_forward": torch.tensor(float(counter.nfe)),
        }

    def eval_method(self) -> SRMethod:
        if self.stage == "regressor":
            return RegressorMethod(self.regressor)
        return self.method
