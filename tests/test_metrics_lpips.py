"""LPIPS wrapper: offline weight resolution, one-line errors, and equality with the ``lpips``
package on the same (random) weights (protocols.md §2, §7.1.7)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import lpips
import pytest
import torch
import torchvision

import srbench.metrics.lpips as lpips_mod
from srbench.metrics.lpips import LPIPS
from srbench.weights import MissingWeightsError

# The reference lpips.LPIPS builds its trunk with torchvision's legacy `pretrained=` argument.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The parameter 'pretrained' is deprecated:UserWarning",
    "ignore:Arguments other than a weight enum:UserWarning",
)


def images(seed: int, batch: int = 3, h: int = 64, w: int = 72) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(batch, 3, h // 8, w // 8, generator=g), size=(h, w), mode="bilinear")
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, y


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to download weights fails the test."""

    def boom(*args, **kwargs):
        raise AssertionError("LPIPS tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", boom)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", boom)


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def random_alex() -> LPIPS:
    torch.manual_seed(0)
    return LPIPS("alex", backbone_weights="random")


def save_random_backbone(net: str, torch_home: Path, monkeypatch) -> torch.nn.Module:
    """Write random torchvision weights under the hub file name and accept their digest."""
    torch.manual_seed(1)
    tv = torchvision.models.alexnet(weights=None) if net == "alex" else torchvision.models.vgg16(weights=None)
    bb = lpips_mod.BACKBONES[net]
    path = torch_home / "hub" / "checkpoints" / bb.filename
    path.parent.mkdir(parents=True)
    # The classifier is never used by LPIPS; leave it out to keep the file small.
    torch.save({k: v for k, v in tv.state_dict().items() if k.startswith("features.")}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(lpips_mod.BACKBONES, net, dataclasses.replace(bb, sha256_prefix=digest[:8]))
    return tv


def reference_lpips(net: str, tv: torch.nn.Module) -> lpips.LPIPS:
    """The lpips package itself (heads from its wheel), trunk layers copied module by module."""
    ref = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)
    for piece in ref.net.children():
        for index, module in piece.named_children():
            module.load_state_dict(tv.features[int(index)].state_dict())
    return ref.eval()


# ----------------------------------------------------------------------------- weight resolution


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_missing_backbone_is_one_line_error(net, torch_home):
    bb = lpips_mod.BACKBONES[net]
    with pytest.raises(MissingWeightsError) as err:
        LPIPS(net)
    msg = str(err.value)
    assert "\n" not in msg
    assert bb.filename in msg
    assert str(torch_home / "hub" / "checkpoints") in msg
    assert f"TORCH_HOME={torch_home}" in msg
    assert f"https://download.pytorch.org/models/{bb.filename}" in msg


def test_configured_path_missing_names_that_path(tmp_path):
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "nowhere.pth")):
        LPIPS("alex", backbone_weights=tmp_path / "nowhere.pth")


def test_corrupt_backbone_is_reported(torch_home):
    path = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="corrupt") as err:
        LPIPS("alex")
    assert "\n" not in str(err.value)


def test_full_load_path_equals_lpips_package(torch_home, monkeypatch):
    tv = save_random_backbone("alex", torch_home, monkeypatch)
    ours = LPIPS("alex")  # resolves $TORCH_HOME/hub/checkpoints, checks sha256, loads by hand
    assert not ours.random_backbone and ours.metric_id == "lpips@alex-v0.1"
    ref = reference_lpips("alex", tv)
    x, y = images(0)
    with torch.no_grad():
        expected = ref(x, y, normalize=True).flatten().double()
    assert (ours(x, y) - expected).abs().max() < 1e-6
    # and the same file given as a configured directory
    monkeypatch.setenv("TORCH_HOME", str(torch_home.parent / "elsewhere"))
    again = LPIPS("alex", backbone_weights=torch_home / "hub" / "checkpoints")
    assert torch.equal(again(x, y), ours(x, y))


@pytest.mark.slow
def test_full_load_path_equals_lpips_package_vgg(torch_home, monkeypatch):
    tv = save_random_backbone("vgg", torch_home, monkeypatch)
    ours = LPIPS("vgg")
    ref = reference_lpips("vgg", tv)
    x, y = images(1, batch=2, h=48, w=48)
    with torch.no_grad():
        expected = ref(x, y, normalize=True).flatten().double()
    assert (ours(x, y) - expected).abs().max() < 1e-6


# ----------------------------------------------------------------------------- behaviour


def test_heads_are_the_wheels_and_normalize_matches_package(random_alex):
    ref = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)  # heads loaded by lpips
    for k in range(5):
        assert torch.equal(getattr(ref, f"lin{k}").model[1].weight, getattr(random_alex.model, f"lin{k}").model[1].weight)
    ref.load_state_dict(random_alex.model.state_dict())
    x, y = images(2)
    with torch.no_grad():
        expected = ref.eval()(x, y, normalize=True).flatten().double()
    assert (random_alex(x, y) - expected).abs().max() < 1e-6


def test_identity_is_zero_and_symmetric(random_alex):
    x, y = images(3)
    assert torch.equal(random_alex(x, x.clone()), torch.zeros(3, dtype=torch.float64))
    assert (random_alex(x, y) - random_alex(y, x)).abs().max() < 1e-6
    assert (random_alex(x, y) > 0).all()


def test_batch_equals_one_by_one(random_alex):
    x, y = images(4, batch=4)
    batched = random_alex(x, y)
    single = torch.cat([random_alex(x[i : i + 1], y[i : i + 1]) for i in range(4)])
    assert (batched - single).abs().max() < 1e-6
    assert batched.dtype == torch.float64 and batched.shape == (4,)


def test_out_of_range_input_raises(random_alex):
    x, y = images(5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        random_alex(x * 2 - 1, y)
    with pytest.raises(ValueError, match="HR"):
        random_alex(x, y + 0.5)


def test_gray_is_replicated(random_alex):
    x, y = images(6)
    g1, g2 = x[:, :1], y[:, :1]
    assert torch.equal(random_alex(g1, g2), random_alex(g1.expand(-1, 3, -1, -1), g2.expand(-1, 3, -1, -1)))


def test_random_backbone_is_labelled(random_alex):
    assert random_alex.random_backbone and random_alex.metric_id.endswith("-randombackbone")
