"""DISTS, CLIPIQA, MANIQA through the bridge == pyiqa's own call, at identical random weights, offline.

pyiqa builds these from ImageNet/CLIP backbones it downloads even with ``pretrained=False``
(torchvision VGG16, OpenAI CLIP RN50, timm ViT-B/8). ``random_backbones()`` makes each library build
an untrained backbone instead; under one seed the bridge and ``pyiqa.create_metric`` get the same
weights (asserted: state dicts equal), and then the same scores to 1e-6 on the same images.
"""

from __future__ import annotations

import pytest
import torch

from srbench.metrics.iqa import PyiqaMetric, import_arch, random_backbones
from srbench.weights import MissingWeightsError

pytest.importorskip("pyiqa")


def _direct(name: str, seed: int):
    """pyiqa's own metric, built the way a user would (create_metric), random backbone, same seed."""
    import pyiqa

    import_arch(name)  # pyiqa imports arch modules lazily; the patches must reach the module
    with random_backbones(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return pyiqa.create_metric(name, device="cpu", pretrained=False).eval()


def _images(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_dists_equals_pyiqa_at_random_weights():
    ours, theirs = PyiqaMetric("dists", random_init=True, seed=7), _direct("dists", 7)
    _same_weights(ours.model, theirs)
    sr, hr = _images((2, 3, 64, 64), 0), _images((2, 3, 64, 64), 1)
    got = ours(sr, hr)
    with torch.inference_mode():
        want = theirs(sr, hr).flatten().double()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert ours.full_reference and not ours.higher_is_better
    other = PyiqaMetric("dists", random_init=True, seed=8)
    assert not torch.allclose(other(sr, hr), got)  # the seed matters: the test can fail


def test_clipiqa_equals_pyiqa_at_random_weights():
    pytest.importorskip("clip")  # openai-clip needs pkg_resources (setuptools<81)
    ours, theirs = PyiqaMetric("clipiqa", random_init=True, seed=3), _direct("clipiqa", 3)
    _same_weights(ours.model, theirs)
    _same_weights(ours.model.net.clip_model[0], theirs.net.clip_model[0])  # the CLIP held outside state_dict
    sr = _images((2, 3, 96, 96), 2)
    got = ours(sr)
    with torch.inference_mode():
        want = theirs(sr).flatten().double()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert not ours.full_reference and ours.higher_is_better


@pytest.mark.slow  # ViT-B/8 on 20 crops of 224² per call: 431 s for this test on a loaded 2-core machine
def test_maniqa_pipal_equals_pyiqa_and_is_deterministic():
    ours, theirs = PyiqaMetric("maniqa-pipal", random_init=True, seed=5), _direct("maniqa-pipal", 5)
    _same_weights(ours.model, theirs)
    sr = _images((1, 3, 232, 232), 4)
    got = ours(sr)
    torch.manual_seed(123)  # a different global RNG state: pyiqa's eval MANIQA takes uniform crops
    with torch.inference_mode():
        want = theirs(sr).flatten().double()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert not ours.stochastic


def test_random_backbones_restores_the_libraries():
    import timm
    import torchvision.models._api as tv_api
    from torchvision.models import VGG16_Weights

    verify, create = tv_api.WeightsEnum.__dict__["verify"], timm.create_model
    with random_backbones():
        assert VGG16_Weights.verify("IMAGENET1K_V1") is None
    assert tv_api.WeightsEnum.__dict__["verify"] is verify and timm.create_model is create
    # restored as the classmethod: a subclass resolves its own members again
    assert VGG16_Weights.verify("IMAGENET1K_V1") is VGG16_Weights.IMAGENET1K_V1


def test_lazily_imported_arch_keeps_pyiqas_download_function(tmp_path, monkeypatch):
    """pyiqa 0.1.16 imports an arch module inside create_metric; imported under the offline patch, its
    ``from pyiqa.utils.download_util import load_file_from_url`` kept srbench's lookup for good."""
    import sys

    from pyiqa.utils import download_util

    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    real = download_util.load_file_from_url
    with pytest.raises(MissingWeightsError):
        PyiqaMetric("brisque")  # its weight file is absent here
    assert sys.modules["pyiqa.archs.brisque_arch"].load_file_from_url is real


@pytest.mark.parametrize("name, file", [("dists", "vgg16-397923af.pth"), ("clipiqa", "RN50.pt")])
def test_missing_backbone_file_is_one_line_naming_it(name, file, tmp_path, monkeypatch):
    """DISTS' VGG16 (torchvision) and CLIPIQA's RN50 (pyiqa's CLIP loader) are not pyiqa weight files; a
    missing one is still one line naming the file, where it looked and the URL (no network attempt)."""
    pytest.importorskip("clip")
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    # TORCH_HOME, not a patched torch.hub.get_dir: pyiqa's clip_model did `from torch.hub import get_dir`
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert torch.hub.get_dir().startswith(str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        PyiqaMetric(name)
    msg = str(err.value)
    assert "\n" not in msg and file in msg and torch.hub.get_dir() in msg and "https://" in msg


def test_random_init_of_a_weightless_metric_still_scores():
    """pyiqa's psnr takes **kwargs at build and passes them on when called: random_init used to hand it
    ``pretrained=False`` and the first call raised TypeError."""
    import pyiqa

    sr, hr = _images((2, 3, 32, 32), 0), _images((2, 3, 32, 32), 1)
    got = PyiqaMetric("psnr", random_init=True)(sr, hr)
    with torch.inference_mode():
        want = pyiqa.create_metric("psnr", device="cpu")(sr, hr).flatten().double()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_missing_timm_backbone_is_one_line_naming_repo_and_file(tmp_path, monkeypatch):
    """MANIQA's ViT-B/8 comes through timm from the Hugging Face hub; offline and uncached it used to be
    a generic "could not build it offline" line. Now the line names the repository and file."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError) as err:
        PyiqaMetric("maniqa-pipal")
    msg = str(err.value)
    assert "\n" not in msg and "vit_base_patch8_224" in msg and "timm/vit_base_patch8_224" in msg
    assert "model.safetensors" in msg and str(tmp_path / "hf") in msg
