"""The ECDP SRMethod adapter, its network pieces and its Trainer (tiny random models, CPU)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as FV
from helpers import ecdp_tiny_config

from methods.ecdp.losses import PerceptualLoss, VGG19Features, regressor_l1_loss, score_matching_loss
from methods.ecdp.method import ECDP
from methods.ecdp.model import ECDPNet
from methods.ecdp.unet import resize_like_torchvision, sinusoidal_embedding
from srbench.method import UnsupportedInput
from srbench.weights import MissingWeightsError

TINY = ecdp_tiny_config("heun", 4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> ECDP:
    torch.manual_seed(0)
    return ECDP.from_config(TINY, "cpu")


# ----------------------------------------------------------------------------- network pieces
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("size", [(5, 7), (24, 40)])
def test_resize_matches_torchvision(mode, antialias, size):
    x = torch.rand(2, 4, 12, 20)
    interp = {"bilinear": FV.InterpolationMode.BILINEAR, "bicubic": FV.InterpolationMode.BICUBIC}[mode]
    expected = FV.resize(x, list(size), interpolation=interp, antialias=antialias)
    torch.testing.assert_close(resize_like_torchvision(x, size, mode, antialias), expected)


def test_sinusoidal_embedding_closed_form():
    tau = torch.tensor([0.0, 0.1, 150.0, 300.0])
    emb = sinusoidal_embedding(tau, 8)
    k = torch.arange(4, dtype=torch.float64)
    f = torch.exp(-math.log(1e4) * k / 3)
    expected = torch.cat([torch.sin(tau.double()[:, None] * f), torch.cos(tau.double()[:, None] * f)], 1)
    torch.testing.assert_close(emb.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lr_size", [(5, 7), (6, 6)])
def test_precomputed_condition_equals_per_call_projection(lr_size):
    torch.manual_seed(0)
    net = ECDPNet(2, (0, 1), unet_channels=(16, 32, 32), unet_blocks=(1, 1, 1), time_channels=16).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    lr = torch.rand(2, 3, *lr_size)
    size = (lr_size[0] * 4, lr_size[1] * 4)
    x, tau = torch.randn(2, 3, *size), torch.tensor([37.5])
    with torch.no_grad():
        feats = net.lr_feats(lr)
        raw = net.unet(x, tau, feats)  # resize + project inside every block, like the authors
        pre = net.unet(x, tau, net.unet.prepare_condition(feats, size, project=True))
    for a, b in zip(raw, pre):
        assert a.shape == (2, 3, *size)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_model_bicubic_is_pytorch_bicubic_not_matlab():
    net = ECDPNet(1, (0,), unet_channels=(16, 32), unet_blocks=(1, 1), time_channels=16)
    lr = torch.rand(1, 3, 6, 6)
    torch.testing.assert_close(net.upsample_lr(lr, (24, 24)), F.interpolate(lr, (24, 24), mode="bicubic"))


def test_losses_against_torch_reductions():
    g = torch.Generator().manual_seed(0)
    a, b, c, d = (torch.randn(3, 3, 4, 5, generator=g) for _ in range(4))
    torch.testing.assert_close(regressor_l1_loss(a, b), F.l1_loss(a, b, reduction="sum") / 3)
    out = score_matching_loss(a, b, c, d)
    torch.testing.assert_close(
        out["loss"], (F.mse_loss(a, c, reduction="sum") + F.mse_loss(b, d, reduction="sum")) / 3
    )


def test_perceptual_loss_without_vgg_file_is_one_line():
    with pytest.raises(MissingWeightsError) as err:
        PerceptualLoss("imagenet")
    msg = str(err.value)
    assert "\n" not in msg and "vgg19-dcbb9e9d.pth" in msg and "download.pytorch.org" in msg


def test_random_vgg_backbone_ends_at_conv5_4_before_relu():
    feats = VGG19Features("random")
    assert len(feats.features) == 35 and isinstance(feats.features[-1], torch.nn.Conv2d)
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    loss = PerceptualLoss("random")
    assert loss(x, x).item() == 0 and loss(x, y).item() > 0
    assert feats(x).min() < 0  # pre-ReLU features keep negative values
    torch.testing.assert_close(VGG19Features("random")(x), feats(x))  # seeded


# ----------------------------------------------------------------------------- SRMethod contract
def test_upscale_shape_range_and_seed_determinism(tiny):
    lr = torch.rand(2, 3, 5, 6)
    out = tiny.upscale(lr, 4, seeds=[1, 2])
    assert out.shape == (2, 3, 20, 24) and out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(tiny.upscale(lr, 4, seeds=[1, 2]), out, rtol=0, atol=0)
    assert not torch.equal(tiny.upscale(lr, 4, seeds=[3, 2])[0], out[0])
    assert tiny.nfe_per_image() == [8, 8]  # heun, 4 steps


def test_output_does_not_depend_on_batch(tiny):
    lr = torch.rand(3, 3, 6, 6)
    batch = tiny.upscale(lr, 4, seeds=[7, 8, 9])
    alone = tiny.upscale(lr[1:2], 4, seeds=[8])
    torch.testing.assert_close(batch[1:2], alone, rtol=0, atol=1e-6)


def test_adaptive_solver_reports_nfe_and_joint_mode():
    torch.manual_seed(0)
    cfg = {**TINY, "sampler": {"method": "dopri5", "batch_mode": "joint"}}
    method = ECDP.from_config(cfg, "cpu")
    lr = torch.rand(2, 3, 4, 4)
    out = method.upscale(lr, 4, seeds=[1, 2])
    nfe = method.nfe_per_image()
    assert out.shape == (2, 3, 16, 16) and nfe[0] == nfe[1] and (nfe[0] - 2) % 6 == 0
    solo = ECDP.from_config({**cfg, "sampler": {"method": "dopri5"}}, "cpu")
    solo.net.load_state_dict(method.net.state_dict())
    torch.testing.assert_close(solo.upscale(lr[:1], 4, seeds=[1]), out[:1], rtol=0, atol=2e-2)


def test_bad_inputs_and_weights_are_one_line(tiny):
    with pytest.raises(UnsupportedInput):
        tiny.upscale(torch.rand(1, 3, 4, 4), 8, seeds=[0])
    with pytest.raises(UnsupportedInput):
        tiny.upscale(torch.rand(1, 3, 4, 4), 3, seeds=[0])
    with pytest.raises(UnsupportedInput):
        tiny.upscale(torch.rand(1, 1, 4, 4), 4, seeds=[0])
    with pytest.raises(MissingWeightsError) as err:
        ECDP.from_config({**TINY, "weights": None}, "cpu")
    assert "\n" not in str(err.value) and "make train METHOD=ecdp" in str(err.value)
    assert "ecdp-df2k.pt" in str(err.value)  # the file weights.resolve looks for
    assert ECDP.required_weights({"weights": "random"}) == []
    assert ECDP.required_weights({"variant": "celeba"})[0].filename == "ecdp-celeba.pt"


def test_describe(tiny):
    d = tiny.describe()
    assert (
        d["params_total"]
        == d["params_unet"] + d["params_encoder"]
        == sum(p.numel() for p in tiny.net.parameters())
    )
    assert d["solver"] == "heun" and d["steps"] == 4 and d["weights"] == "random" and d["dtype"] == "fp32"


def test_dtype_argument_is_the_one_precision_setting():
    """bf16 runs the networks under autocast (ODE state float32); the result stays close to fp32."""
    torch.manual_seed(0)
    fp32 = ECDP.from_config(TINY, "cpu", torch.float32)
    bf16 = ECDP.from_config(TINY, "cpu", torch.bfloat16)
    bf16.net.load_state_dict(fp32.net.state_dict())
    assert bf16.describe()["dtype"] == "bf16"
    lr = torch.rand(1, 3, 4, 4)
    a, b = fp32.upscale(lr, 4, seeds=[0]), bf16.upscale(lr, 4, seeds=[0])
    assert a.dtype == b.dtype == torch.float32 and not torch.equal(a, b)
    assert (a - b).abs().max() < 0.05


# ----------------------------------------------------------------------------- trainer
def _batch(scale=4, n=2, size=16):
    hr = torch.rand(n, 3, size, size)
    return {
        "hr": hr,
        "lr": F.avg_pool2d(hr, scale),
        "scale": float(scale),
        "names": [str(i) for i in range(n)],
    }


@pytest.mark.parametrize("stage", ["regressor", "diffusion"])
def test_trainer_steps_give_gradients(stage):
    torch.manual_seed(0)
    train = {"stage": stage, "allow_random_init": True}
    method = ECDP.from_config({**TINY, "train": train}, "cpu")
    trainer = method.trainer({"method": {**TINY, "train": train}})
    out = trainer.training_step(_batch())
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    out["loss"].backward()
    module = next(iter(trainer.modules().values()))
    assert all(p.grad is not None for p in module.parameters())
    groups = trainer.parameter_groups(1e-4)
    if stage == "diffusion":
        assert [g["lr"] for g in groups] == [1e-4, 1e-5]
        assert {id(p) for p in groups[1]["params"]} == {id(p) for p in method.net.lr_feats.parameters()}
    sr = trainer.eval_method().upscale(torch.rand(1, 3, 4, 4), 4, seeds=[0])
    assert sr.shape == (1, 3, 16, 16)


def test_trainer_rejects_bad_sizes():
    method = ECDP.from_config(TINY, "cpu")
    trainer = method.trainer({"train": {"stage": "diffusion", "allow_random_init": True}})
    bad = _batch()
    bad["hr"] = bad["hr"][..., :15]
    with pytest.raises(UnsupportedInput):
        trainer.training_step(bad)


# ----------------------------------------------------------------------------- CUDA (run with -m gpu)
@pytest.mark.gpu
def test_cuda_matches_cpu_and_bf16_stays_close():
    torch.manual_seed(0)
    cpu = ECDP.from_config({**TINY, "sampler": {"method": "dopri5"}}, "cpu")
    gpu = ECDP.from_config({**TINY, "sampler": {"method": "dopri5"}}, "cuda")
    gpu.net.load_state_dict(cpu.net.state_dict())
    lr = torch.rand(2, 3, 8, 8)
    ref = cpu.upscale(lr, 4, seeds=[1, 2])
    torch.testing.assert_close(gpu.upscale(lr.cuda(), 4, seeds=[1, 2]).cpu(), ref, rtol=0, atol=2e-3)
    bf16 = ECDP.from_config({**TINY, "sampler": {"method": "dopri5"}}, "cuda", torch.bfloat16)
    bf16.net.load_state_dict(cpu.net.state_dict())
    out = bf16.upscale(lr.cuda(), 4, seeds=[1, 2]).cpu()
    assert torch.isfinite(out).all() and (out - ref).abs().mean() < 1e-2


@pytest.mark.gpu
def test_cuda_compiled_matches_eager():
    torch.manual_seed(0)
    eager = ECDP.from_config(TINY, "cuda")
    compiled = ECDP.from_config({**TINY, "compile": True}, "cuda")
    compiled.net.load_state_dict(eager.net.state_dict())
    lr = torch.rand(1, 3, 8, 8, device="cuda")
    torch.testing.assert_close(
        compiled.upscale(lr, 4, seeds=[3]), eager.upscale(lr, 4, seeds=[3]), rtol=0, atol=1e-4
    )
