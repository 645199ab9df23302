"""methods/spandrel: tiny checkpoints of five architectures at random init, loaded through method.weights=."""

from __future__ import annotations

import math

import pytest
import torch

spandrel = pytest.importorskip("spandrel")

from methods.spandrel import Spandrel
from methods.spandrel.method import weight_file
from srbench.method import UnsupportedInput
from srbench.weights import MissingWeightsError, resolve, sha256_file
from tests.spandrel_tiny import save_tiny, tiny_models

ARCHS = list(tiny_models())
CPU = torch.device("cpu")


def _build(path, **cfg):
    return Spandrel.from_config({"name": "spandrel", "weights": str(path), **cfg}, CPU, torch.float32)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spandrel_ckpt")
    return {arch: save_tiny(arch, folder) for arch in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
def test_equals_spandrel_called_directly_and_batch_independent(checkpoints, arch):
    method = _build(checkpoints[arch], tile=None)
    direct = spandrel.ModelLoader().load_from_file(str(checkpoints[arch])).eval()
    torch.manual_seed(1)
    lr = torch.rand(3, 3, 20, 24)
    kept = lr.clone()
    ours = method.upscale(lr, 4, seeds=[0, 1, 2])
    assert torch.equal(lr, kept)  # RCAN scales its input in place; the adapter must not pass that on
    with torch.inference_mode():
        ref = direct(lr.clone())
    assert ours.shape == (3, 3, 80, 96)
    assert (ours - ref).abs().max().item() <= 1e-6
    singles = torch.cat([method.upscale(lr[i : i + 1], 4, seeds=[i]) for i in range(3)])
    assert (ours - singles).abs().max().item() <= 1e-5  # batched BLAS may sum in another order


@pytest.mark.parametrize("arch", ARCHS)
def test_describe_names_architecture_params_and_sha(checkpoints, arch):
    method = _build(checkpoints[arch])
    d = method.describe()
    expected_arch = spandrel.ModelLoader().load_from_file(str(checkpoints[arch])).architecture.name
    assert d["architecture"] == expected_arch
    assert d["params_total"] == sum(p.numel() for p in method.descriptor.model.parameters()) > 0
    assert d["weights_sha256"] == sha256_file(checkpoints[arch])
    assert d["scale"] == 4


def test_run_ids_differ_between_architectures(checkpoints):
    shas = {arch: _build(p).describe()["weights_sha256"] for arch, p in checkpoints.items()}
    assert len(set(shas.values())) == len(ARCHS)


def test_wrong_scale_is_refused_in_one_line(checkpoints):
    method = _build(checkpoints["Compact"])
    with pytest.raises(UnsupportedInput, match=r"x4 model; the dataset asks for x2") as err:
        method.upscale(torch.rand(1, 3, 8, 8), 2, seeds=[0])
    assert "\n" not in str(err.value)
    with pytest.raises(UnsupportedInput, match="x4 model, the config says scale: 2"):
        _build(checkpoints["Compact"], scale=2)


def test_non_sr_model_is_refused(tmp_path):
    from spandrel.architectures.Compact import Compact

    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=1)  # a 1x restoration model
    path = tmp_path / "compact_1x.pth"
    torch.save(net.state_dict(), path)
    with pytest.raises(UnsupportedInput, match="not a super-resolution model") as err:
        _build(path)
    assert "\n" not in str(err.value)


def test_unsupported_dtype_is_refused(checkpoints):
    # spandrel marks SwinIR as not fp16-safe; we refuse instead of producing NaN rows
    with pytest.raises(UnsupportedInput, match="does not support fp16"):
        Spandrel.from_config({"name": "spandrel", "weights": str(checkpoints["SwinIR"])}, CPU, torch.float16)


def test_bf16_where_supported(checkpoints):
    method = Spandrel.from_config({"name": "spandrel", "weights": str(checkpoints["Compact"]), "tile": None},
                                  CPU, torch.bfloat16)
    out = method.upscale(torch.rand(1, 3, 12, 12), 4, seeds=[0])
    assert out.dtype == torch.float32 and out.shape == (1, 3, 48, 48)
    assert method.describe()["dtype"] == "bfloat16"


def _psnr(a, b):
    mse = ((a - b) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


@pytest.mark.parametrize("arch", ["ESRGAN", "Compact"])
def test_tiled_close_to_untiled(checkpoints, arch):
    untiled = _build(checkpoints[arch], tile=None)
    tiled = _build(checkpoints[arch], tile=16, tile_overlap=8)
    torch.manual_seed(2)
    lr = torch.rand(2, 3, 40, 36)
    a, b = untiled.upscale(lr, 4, seeds=[0, 1]), tiled.upscale(lr, 4, seeds=[0, 1])
    assert a.shape == b.shape
    assert _psnr(a, b) > 40  # receptive field wider than the overlap: close, not equal
    assert tiled.tile_size(40, 36) == 16 and untiled.tile_size(40, 36) is None


def test_auto_tile_from_memory_budget(checkpoints):
    small = _build(checkpoints["ESRGAN"], memory_budget_mb=1)
    large = _build(checkpoints["ESRGAN"], memory_budget_mb=4096)
    assert small.tile_size(512, 512) is not None and small.tile_size(512, 512) < 512
    assert large.tile_size(64, 64) is None  # fits: not tiled


def test_missing_preset_file_is_one_line_with_url(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    cfg = {"name": "spandrel", "preset": "realesrgan_x4plus", "file": "RealESRGAN_x4plus.pth",
           "url": "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"}
    with pytest.raises(MissingWeightsError) as err:
        resolve(weight_file(cfg))
    msg = str(err.value)
    assert "\n" not in msg and "RealESRGAN_x4plus.pth" in msg and cfg["url"] in msg
    assert str(tmp_path / "spandrel" / "RealESRGAN_x4plus.pth") in msg
    assert "srbench weights download realesrgan_x4plus" in msg


def test_unreadable_file_is_one_line(tmp_path):
    path = tmp_path / "junk.pth"
    torch.save({"not": torch.zeros(2)}, path)
    with pytest.raises(Exception) as err:
        _build(path)
    assert "spandrel cannot read" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("arch", ["Compact", "RCAN"])
def test_the_adapter_adds_one_input_copy_and_nothing_else(checkpoints, arch):
    """The overhead over calling spandrel directly, as operators (timing on a shared CPU is noise;
    benchmarks/spandrel_overhead.py times it): one copy of the LR batch (kept: RCAN scales its
    input in place) and a no-op ``.float()`` — no module moves, no extra passes, no per-call casts."""
    from collections import Counter

    from torch.profiler import ProfilerActivity, profile

    def aten_ops(fn) -> Counter:
        fn()  # first call outside the trace (lazy init)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        return Counter(e.name for e in prof.events() if e.name.startswith("aten::"))

    ours = _build(checkpoints[arch])
    direct = spandrel.ModelLoader().load_from_file(str(checkpoints[arch])).eval()
    lr = torch.rand(2, 3, 24, 24)

    def direct_call():
        with torch.inference_mode():
            return direct(lr.clone() if arch == "RCAN" else lr)  # RCAN would otherwise scale lr in place

    theirs = aten_ops(direct_call)
    if arch == "RCAN":
        theirs -= Counter({"aten::clone": 1, "aten::empty_like": 1, "aten::copy_": 1})
    extra = aten_ops(lambda: ours.upscale(lr, 4, seeds=[0, 1])) - theirs
    assert set(extra) <= {"aten::to", "aten::_to_copy", "aten::empty_strided", "aten::empty_like", "aten::copy_"}
    assert extra["aten::copy_"] == 1 and extra["aten::_to_copy"] == 1 and extra["aten::to"] <= 2
    assert not theirs - aten_ops(lambda: ours.upscale(lr, 4, seeds=[0, 1]))  # and runs everything the direct call runs
