"""srbench-train (srbench/runners/train.py) with a third-party toy method on real photographs.

The toy method lives in a throw-away package registered only through an entry point
(``toy_plugin-0.0.dist-info/entry_points.txt`` on sys.path / PYTHONPATH), as a user's plugin would.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from srbench.errors import UserError
from srbench.runners.fit.schedule import lr_factor
from srbench.runners.train import compose_config, resolve_trainable, train
from srbench.training import list_checkpoints, load_checkpoint

TOY_PLUGIN = '''
"""A trainable SR method from a third-party package (srbench tests)."""
import torch
import torch.nn.functional as F
from torch import nn

from srbench.method import SRMethod
from srbench.training import Trainer

SEEN = {}  # what the last training_step saw (the tests read it)


class ToyNet(nn.Module):
    """Bicubic upsampling plus a two-convolution residual."""

    def __init__(self, channels=16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, lr, scale):
        up = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
        residual = self.conv2(F.relu(self.conv1(up)))
        SEEN["dtype"] = residual.dtype  # bf16 under autocast
        return up + residual


class Toy(SRMethod):
    name = "toy"
    scales = frozenset({2.0, 4.0})

    def __init__(self, net, noise):
        self.net, self.noise = net, noise

    @classmethod
    def from_config(cls, cfg, device, dtype):
        return cls(ToyNet(int(cfg.get("channels", 16))).to(device=device, dtype=dtype), float(cfg.get("noise", 0.0)))

    def upscale(self, lr, scale, *, seeds):
        with torch.no_grad():
            return self.net(lr, scale).clamp(0, 1)

    def describe(self):
        return {"name": self.name, "nfe": 1, "params": sum(p.numel() for p in self.net.parameters())}

    def trainer(self, cfg):
        return ToyTrainer(self, cfg["method"].get("group2_lr"))


class ToyTrainer(Trainer):
    def __init__(self, method, group2_lr):
        self.method, self.group2_lr = method, group2_lr

    def modules(self):
        return {"net": self.method.net}

    def parameter_groups(self, base_lr):
        if self.group2_lr is None:
            return super().parameter_groups(base_lr)
        net = self.method.net
        return [{"params": list(net.conv1.parameters()), "lr": base_lr},
                {"params": list(net.conv2.parameters()), "lr": float(self.group2_lr)}]

    def training_step(self, batch):
        lr = batch["lr"]
        if self.method.noise:  # global RNG: resume must restore it
            lr = lr + self.method.noise * torch.randn_like(lr)
        sr = self.method.net(lr, batch["scale"])
        SEEN["keys"] = batch["keys"]
        loss = (sr.float() - batch["hr"]).abs().mean()
        return {"loss": loss, "l1_x255": 255 * loss.detach()}

    def eval_method(self):
        return self.method


class Critic(nn.Module):
    """A patch discriminator: 3 → 8 → 1 channels."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        return self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class ToyGAN(Toy):
    """Two optimizers: generator (L1 + adversarial) and discriminator (hinge), as InvSR/OSEDiff train."""

    name = "toygan"

    @classmethod
    def from_config(cls, cfg, device, dtype):
        method = super().from_config(cfg, device, dtype)
        method.critic = Critic().to(device=device, dtype=dtype)
        method.d_start = int(cfg.get("d_start", 0))
        return method

    def trainer(self, cfg):
        return ToyGANTrainer(self)


class ToyGANTrainer(Trainer):
    def __init__(self, method):
        self.method, self.calls = method, 0  # calls: trainer state (checkpointed)

    def modules(self):
        return {"net": self.method.net, "critic": self.method.critic}

    def ema_modules(self):
        return {"net": self.method.net}

    def optimizer_groups(self, base_lrs):
        return {"generator": [{"params": list(self.method.net.parameters()), "lr": base_lrs["generator"]}],
                "discriminator": [{"params": list(self.method.critic.parameters()), "lr": base_lrs["discriminator"]}]}

    def phases(self):
        return ("generator", "discriminator")

    def training_step(self, batch, phase="main"):
        lr = batch["lr"] + self.method.noise * torch.randn_like(batch["lr"])  # global RNG: resume restores it
        if phase == "generator":
            self.calls += 1
            self.method.critic.requires_grad_(False)
            self.sr = self.method.net(lr, batch["scale"])
            l1 = (self.sr.float() - batch["hr"]).abs().mean()
            adv = -self.method.critic(self.sr).mean()
            self.method.critic.requires_grad_(True)
            return {"loss": l1 + 0.01 * adv, "l1": l1.detach(), "adv": adv.detach()}
        if self.calls <= self.method.d_start:
            return None  # the discriminator starts later (InvSR's warm-up)
        real, fake = self.method.critic(batch["hr"]), self.method.critic(self.sr.detach())
        hinge = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        return {"loss": hinge}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = int(state["calls"])

    def eval_method(self):
        return self.method


class Untrainable(SRMethod):
    name = "untrainable"

    @classmethod
    def from_config(cls, cfg, device, dtype):
        return cls()

    def upscale(self, lr, scale, *, seeds):
        return F.interpolate(lr, scale_factor=scale, mode="nearest")
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    (root / "toy_plugin").mkdir()
    (root / "toy_plugin" / "__init__.py").write_text(TOY_PLUGIN)
    info = root / "toy_plugin-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(
        "[srbench.methods]\ntoy = toy_plugin:Toy\ntoygan = toy_plugin:ToyGAN\nuntrainable = toy_plugin:Untrainable\n")
    return root


@pytest.fixture(autouse=True)
def _plugin_on_path(plugin_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_dir))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Bitwise comparisons need one reduction order; the subprocesses get OMP_NUM_THREADS=1 too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Real photographs shipped with scikit-image, as PNG files in a training folder."""
    import skimage.data
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(skimage.data, name)()).save(folder / f"{name}.png")
    return folder


def _overrides(photos: Path, results: Path, run: str, **kw) -> list[str]:
    base = {
        "method": "toy", "dataset.hr_dir": str(photos), "dataset.patch_size": 32, "dataset.repeat": 16,
        "dataset.cache_hr": "true", "batch_size": 4, "num_workers": 0, "log_every": 1, "validate_every": 0,
        "logger": "none", "results_dir": str(results), "run_name": run, "checkpoint_every": 10,
        "optimizer.lr": 1e-3,
    }
    base.update(kw)
    return [f"{k}={v}" for k, v in base.items()]


def _final(results: Path, run: str, method: str = "toy") -> dict:
    return load_checkpoint(results / "train" / method / run)


#: the two optimizers of ToyGAN, as a method's experiment preset would give them
GAN_OPTIMIZERS = ("{generator:{_target_:torch.optim.AdamW,lr:0.002,weight_decay:0.01},"
                  "discriminator:{_target_:torch.optim.Adam,lr:0.001,betas:[0.5,0.999],clip:{mode:norm,value:1.0}}}")


def _gan_overrides(photos: Path, results: Path, run: str, **kw) -> list[str]:
    return _overrides(photos, results, run, method="toygan", optimizers=GAN_OPTIMIZERS, **{
        "+method.d_start": 3, "+method.noise": 0.05, "ema.enabled": "true", "ema.n": 4,
        "schedule.warmup_steps": 4, **kw})


def _assert_states_equal(a: dict, b: dict) -> None:
    assert a["step"] == b["step"] and a["samples_seen"] == b["samples_seen"]
    for name in a["modules"]:
        for k, v in a["modules"][name].items():
            assert torch.equal(v, b["modules"][name][k]), f"{name}.{k} differs"
    if a["ema"] is not None:
        for k, v in a["ema"]["shadow"].items():
            assert torch.equal(v, b["ema"]["shadow"][k]), f"EMA {k} differs"
    assert set(a["optimizers"]) == set(b["optimizers"])
    for name in a["optimizers"]:
        for sa, sb in zip(a["optimizers"][name]["state"].values(), b["optimizers"][name]["state"].values()):
            for k in sa:
                assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), f"{name} Adam {k} differs"
        assert a["schedulers"][name]["last_epoch"] == b["schedulers"][name]["last_epoch"]


# ----------------------------------------------------------------------------- learning
def test_toy_method_loss_drops_over_100_steps(photos, tmp_path):
    result = train(compose_config(_overrides(photos, tmp_path, "learn", max_steps=100, checkpoint_every=100)))
    losses = np.array([row["loss"] for row in result.history])
    assert len(losses) == 100 and np.isfinite(losses).all()
    first, last = losses[:10].mean(), losses[-10:].mean()
    print(f"\ntoy L1 loss: first-10 mean {first:.5f}, last-10 mean {last:.5f}, ratio {last / first:.3f}; "
          f"every 10th step: {np.round(losses[::10], 4).tolist()}")
    assert last < 0.7 * first
    # the trainer's other scalars are logged too
    np.testing.assert_allclose([r["l1_x255"] for r in result.history], 255 * losses, rtol=1e-5)


# ----------------------------------------------------------------------------- exact resume
@pytest.mark.parametrize("workers", [0, 2])
def test_stop_and_resume_equals_uninterrupted_run_bitwise(photos, tmp_path, workers):
    # Every stateful part is on: EMA, warm-up + step decay, clipping, gradient accumulation,
    # global-RNG noise inside the loss, DataLoader workers.
    kw = dict(num_workers=workers, grad_accum=2, batch_size=2, **{
        "+method.noise": 0.05, "ema.enabled": "true", "ema.n": 4, "schedule.warmup_steps": 5,
        "schedule.milestones": "[12]", "clip.mode": "value", "clip.value": 0.05})
    train(compose_config(_overrides(photos, tmp_path, "straight", max_steps=20, **kw)))
    first = train(compose_config(_overrides(photos, tmp_path, "resumed", max_steps=10, **kw)))
    assert first.step == 10 and first.resumed_from is None
    second = train(compose_config(_overrides(photos, tmp_path, "resumed", max_steps=20, **kw)))
    assert second.resumed_from is not None and second.resumed_from.endswith("step_00000010.pt")
    _assert_states_equal(_final(tmp_path, "straight"), _final(tmp_path, "resumed"))


@pytest.mark.parametrize("method", ["toy", "toygan"])
def test_killed_process_resumes_bitwise(photos, plugin_dir, tmp_path, method):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    common = {"checkpoint_every": 3, "logger": "csv"}
    if method == "toy":
        common.update({"+method.noise": 0.05, "ema.enabled": "true", "ema.n": 4, "schedule.warmup_steps": 5})
        overrides = _overrides
    else:  # two optimizers, a skipped discriminator phase, trainer state
        overrides = _gan_overrides
    killed = subprocess.Popen(
        [sys.executable, "-m", "srbench.runners.train",
         *overrides(photos, tmp_path, "killed", max_steps=100000, **common)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt_dir = tmp_path / "train" / method / "killed" / "checkpoints"
    deadline = time.time() + 240
    while not list_checkpoints(ckpt_dir):
        if killed.poll() is not None:
            pytest.fail(f"training process ended early:\n{killed.stdout.read()}")
        if time.time() > deadline:
            killed.kill()
            pytest.fail("no checkpoint within 240 s")
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    killed.stdout.close()
    killed_at = list_checkpoints(ckpt_dir)[-1][0]
    print(f"\nkilled with checkpoints up to step {killed_at}; resuming to step 24 in a new process")
    assert 3 <= killed_at < 24

    script = Path(sys.executable).with_name("srbench-train")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "srbench.runners.train"]
    resumed = subprocess.run(cmd + overrides(photos, tmp_path, "killed", max_steps=24, **common), env=env,
                             capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {ckpt_dir / f'step_{killed_at:08d}.pt'}" in resumed.stderr

    train(compose_config(overrides(photos, tmp_path, "reference", max_steps=24, **common)))
    _assert_states_equal(_final(tmp_path, "reference", method), _final(tmp_path, "killed", method))
    # the CSV log has each step exactly once, although the killed run logged past its checkpoint
    import pandas as pd

    log = pd.read_csv(tmp_path / "train" / method / "killed" / "log.csv")
    assert log["step"].tolist() == list(range(1, 25))
    ref_log = pd.read_csv(tmp_path / "train" / method / "reference" / "log.csv")
    loss = "loss" if method == "toy" else "loss/generator"
    np.testing.assert_array_equal(log[loss].to_numpy(), ref_log[loss].to_numpy())


# ----------------------------------------------------------------------------- several optimizers
def test_two_optimizers_generator_loss_falls_and_each_steps_its_own_parameters(photos, tmp_path):
    result = train(compose_config(_gan_overrides(photos, tmp_path, "gan", max_steps=100, checkpoint_every=100,
                                                 **{"+method.noise": 0.0})))
    rows = result.history
    l1 = np.array([r["l1/generator"] for r in rows])
    first, last = l1[:10].mean(), l1[-10:].mean()
    print(f"\ntoy GAN L1: first-10 mean {first:.5f}, last-10 mean {last:.5f}; hinge at steps 4/100: "
          f"{rows[3]['loss/discriminator']:.4f} / {rows[-1]['loss/discriminator']:.4f}")
    assert last < 0.7 * first
    # the discriminator is skipped (None) for its first 3 steps and logged from step 4 on
    assert "loss/discriminator" not in rows[2] and "loss/discriminator" in rows[3]
    assert all(math.isfinite(r["loss/generator"]) and "grad_norm/discriminator" in r for r in rows[3:])
    # each optimizer has its own schedule and lr: both warm up from their own initial lr
    assert rows[0]["lr/generator"] == pytest.approx(0.002 / 4) and rows[0]["lr/discriminator"] == pytest.approx(0.001 / 4)
    ckpt = _final(tmp_path, "gan", "toygan")
    assert set(ckpt["optimizers"]) == set(ckpt["schedulers"]) == {"generator", "discriminator"}
    assert ckpt["optimizers"]["generator"]["param_groups"][0]["weight_decay"] == 0.01  # AdamW as configured
    assert ckpt["optimizers"]["discriminator"]["param_groups"][0]["betas"] == (0.5, 0.999)
    # Adam state only for the optimizer's own parameters: 4 tensors each (2 convs × weight, bias)
    assert len(ckpt["optimizers"]["generator"]["state"]) == len(ckpt["optimizers"]["discriminator"]["state"]) == 4
    assert ckpt["trainer"] == {"calls": 100}
    assert all(k.startswith("net.") for k in ckpt["ema"]["shadow"])  # EMA of ema_modules() only


def test_two_optimizers_stop_and_resume_equals_uninterrupted_run_bitwise(photos, tmp_path):
    kw = {"grad_accum": 2, "batch_size": 2}
    train(compose_config(_gan_overrides(photos, tmp_path, "straight", max_steps=12, **kw)))
    first = train(compose_config(_gan_overrides(photos, tmp_path, "resumed", max_steps=5, checkpoint_every=5, **kw)))
    assert first.step == 5
    second = train(compose_config(_gan_overrides(photos, tmp_path, "resumed", max_steps=12, **kw)))
    assert second.resumed_from is not None and second.resumed_from.endswith("step_00000005.pt")
    a, b = _final(tmp_path, "straight", "toygan"), _final(tmp_path, "resumed", "toygan")
    _assert_states_equal(a, b)
    assert a["trainer"] == b["trainer"] == {"calls": 24}  # two micro-batches per step


def test_several_optimizers_config_errors_are_one_line(photos, tmp_path):
    with pytest.raises(UserError, match=r"steps the optimizers generator, discriminator: set optimizers.<name> .*"
                                        r"missing: generator, discriminator"):
        train(compose_config(_overrides(photos, tmp_path, "g1", max_steps=1, method="toygan")))
    with pytest.raises(UserError, match=r"optimizers.extra set, but method 'toy' trains with one optimizer"):
        train(compose_config(_overrides(photos, tmp_path, "g2", max_steps=1,
                                        optimizers="{extra:{_target_:torch.optim.SGD,lr:0.1}}")))
    with pytest.raises(UserError, match=r"optimizers.discriminator.clip.mode must be one of none, value, norm"):
        train(compose_config(_gan_overrides(photos, tmp_path, "g3", max_steps=1, **{
            "optimizers.discriminator.clip.mode": "sometimes"})))


# ----------------------------------------------------------------------------- loop semantics
def test_lr_schedule_warmup_step_decay_and_second_group(photos, tmp_path):
    # ECDP lib/lr_sched.py: lr = base · min(k+1, W)/W · γ^(#milestone epochs ≤ completed epochs)
    result = train(compose_config(_overrides(photos, tmp_path, "sched", max_steps=30, **{
        "schedule.warmup_steps": 4, "schedule.milestones": "[1,2]", "schedule.milestone_unit": "epochs",
        "schedule.gamma": 0.5, "optimizer.lr": 0.01, "+method.group2_lr": 0.001})))
    steps_per_epoch = 3 * 16 // 4  # 3 photos × repeat 16, batch 4, drop_last
    expected = [0.01 * min(k + 1, 4) / 4 * 0.5 ** sum(1 for m in (1, 2) if m <= k // steps_per_epoch)
                for k in range(30)]
    np.testing.assert_allclose([r["lr"] for r in result.history], expected, rtol=1e-12)
    groups = _final(tmp_path, "sched")["optimizers"]["main"]["param_groups"]
    factor = lr_factor(30, warmup_steps=4, milestones=[steps_per_epoch, 2 * steps_per_epoch], gamma=0.5)
    assert groups[0]["lr"] == pytest.approx(0.01 * factor) and groups[1]["lr"] == pytest.approx(0.001 * factor)


def test_gradient_accumulation_equals_large_batch(photos, tmp_path):
    # 2 micro-batches of 2 = one batch of 4 (same samples: the data stream is per sample)
    train(compose_config(_overrides(photos, tmp_path, "b4", max_steps=5, batch_size=4)))
    train(compose_config(_overrides(photos, tmp_path, "b2x2", max_steps=5, batch_size=2, grad_accum=2)))
    a, b = _final(tmp_path, "b4"), _final(tmp_path, "b2x2")
    assert a["samples_seen"] == b["samples_seen"] == 20
    for k, v in a["modules"]["net"].items():
        torch.testing.assert_close(v, b["modules"]["net"][k], rtol=1e-5, atol=1e-6)
    # and it is not trivially equal to taking one step per micro-batch
    train(compose_config(_overrides(photos, tmp_path, "b2", max_steps=10, batch_size=2)))
    c = _final(tmp_path, "b2")
    assert not torch.allclose(a["modules"]["net"]["conv1.weight"], c["modules"]["net"]["conv1.weight"], atol=1e-6)


def test_bf16_mixed_precision_runs_under_autocast(photos, tmp_path):
    import toy_plugin

    result = train(compose_config(_overrides(photos, tmp_path, "bf16", max_steps=3, mixed_precision="bf16")))
    assert toy_plugin.SEEN["dtype"] == torch.bfloat16
    assert all(math.isfinite(r["loss"]) for r in result.history)
    ckpt = _final(tmp_path, "bf16")
    assert ckpt["modules"]["net"]["conv1.weight"].dtype == torch.float32  # trained weights stay fp32
    train(compose_config(_overrides(photos, tmp_path, "fp32", max_steps=1, checkpoint_every=1)))
    assert toy_plugin.SEEN["dtype"] == torch.float32


def test_validation_scores_ema_weights_with_the_metrics_harness(photos, tmp_path):
    import toy_plugin

    from srbench.data.samples import SamplesDataset

    result = train(compose_config(_overrides(photos, tmp_path, "val", max_steps=6, validate_every=3, **{
        "ema.enabled": "true", "ema.n": 3, "optimizer.lr": 0.01, "dataset@val": "samples",
        "val.images": "[chelsea]", "val_max_images": 1})))
    logged = [r for r in result.history if "val/psnr" in r]
    assert [r["step"] for r in logged] == [3, 6]
    ckpt = _final(tmp_path, "val")
    sample = SamplesDataset(scale=4, images=["chelsea"])[0]

    def psnr_y(state: dict) -> float:
        # BasicSR: 8-bit SR and HR, Y = 16 + (65.481 R + 128.553 G + 24.966 B) for RGB in [0, 1], crop = scale
        net = toy_plugin.ToyNet()
        net.load_state_dict(state)
        with torch.no_grad():
            sr = net(sample.lr[None], 4.0).clamp(0, 1)[0]
        w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64)
        y = [16 + torch.einsum("chw,c->hw", (x.double() * 255).round() / 255, w) for x in (sr, sample.hr)]
        mse = ((y[0] - y[1])[4:-4, 4:-4] ** 2).mean()
        return float(10 * torch.log10(255**2 / mse))

    ema_state = {k.removeprefix("net."): v for k, v in ckpt["ema"]["shadow"].items()}
    with_ema, with_live = psnr_y(ema_state), psnr_y(ckpt["modules"]["net"])
    print(f"\nval PSNR-Y chelsea ×4: logged {logged[-1]['val/psnr']:.4f}, oracle EMA {with_ema:.4f}, live {with_live:.4f}")
    assert logged[-1]["val/psnr"] == pytest.approx(with_ema, abs=2e-3)
    assert abs(with_live - with_ema) > 0.05


def test_init_from_ema_weights_of_another_run(photos, tmp_path):
    train(compose_config(_overrides(photos, tmp_path, "stage1", max_steps=5, **{"ema.enabled": "true", "ema.n": 2})))
    stage1 = _final(tmp_path, "stage1")
    # lr = 0: the fine-tune run's weights stay what it was initialised with
    train(compose_config(_overrides(photos, tmp_path, "stage2", max_steps=1, **{
        "init.checkpoint": str(tmp_path / "train" / "toy" / "stage1"), "optimizer.lr": 0.0})))
    stage2 = _final(tmp_path, "stage2")
    for k, v in stage2["modules"]["net"].items():
        assert torch.equal(v, stage1["ema"]["shadow"][f"net.{k}"]), k


# ----------------------------------------------------------------------------- errors
def test_unknown_or_untrainable_method_is_one_line(photos, tmp_path):
    with pytest.raises(UserError) as err:
        resolve_trainable("nosuch")
    msg = str(err.value)
    assert "unknown method 'nosuch'" in msg and "toy" in msg and "untrainable" not in msg.split(":")[-1]
    with pytest.raises(UserError, match=r"'untrainable' cannot be trained .*trainable methods: .*toy"):
        train(compose_config(_overrides(photos, tmp_path, "x", max_steps=1, method="untrainable")))


def test_method_dtype_is_not_silently_ignored_by_training(photos, tmp_path):
    """Regression: `srbench-train ... method.dtype=bf16` trained in fp32 without a word."""
    with pytest.raises(UserError, match=r"method.dtype=bf16 does not apply to training.*mixed_precision"):
        train(compose_config(_overrides(photos, tmp_path, "dt", max_steps=1, **{"+method.dtype": "bf16"})))
    # the same precision as the run's dtype is fine
    train(compose_config(_overrides(photos, tmp_path, "dt32", max_steps=1, **{"+method.dtype": "fp32"})))


def test_resume_refuses_a_changed_config(photos, tmp_path):
    train(compose_config(_overrides(photos, tmp_path, "cfg", max_steps=2)))
    with pytest.raises(UserError, match=r"config differs in optimizer.lr"):
        train(compose_config(_overrides(photos, tmp_path, "cfg", max_steps=4, **{"optimizer.lr": 0.5})))


def test_console_script_reports_untrainable_method_in_one_line(plugin_dir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "srbench.runners.train", "method=untrainable"], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be trained" in lines[0] and "toy" in lines[0], out.stderr


# ----------------------------------------------------------------------------- multi-process
@pytest.mark.slow
def test_two_processes_equal_one_process_with_double_batch(photos, plugin_dir, tmp_path):
    # torchrun × 2 on CPU (gloo): batch 2 per process, gradients averaged = one process with batch 4
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    out = subprocess.run([str(torchrun), "--nproc_per_node=2", "-m", "srbench.runners.train",
                          *_overrides(photos, tmp_path, "ddp", max_steps=6, batch_size=2, device="cpu")],
                         env=env, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("trained to step 6") == 1  # only the main process reports
    train(compose_config(_overrides(photos, tmp_path, "single", max_steps=6, batch_size=4)))
    a, b = _final(tmp_path, "ddp"), _final(tmp_path, "single")
    assert a["world_size"] == 2 and a["samples_seen"] == b["samples_seen"] == 24
    for k, v in a["modules"]["net"].items():
        torch.testing.assert_close(v, b["modules"]["net"][k], rtol=1e-5, atol=1e-6)
