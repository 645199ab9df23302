"""srbench.weights and ``srbench weights``: lookup order, HF-cache layout offline, downloads, loading.

Oracles: ``hashlib`` digests of the bytes written, the Hugging Face cache layout as
``huggingface_hub`` itself reads it (``try_to_load_from_cache`` / ``scan_cache_dir``), and
tensors saved with torch/safetensors before loading.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from srbench import method as method_registry
from srbench import weights as W
from srbench.commands import weights as cmd
from srbench.method import MethodEntry, SRMethod


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = b"fake checkpoint bytes\n" * 100


class FakeMethod(SRMethod):
    """Needs one file (published sha256, HF source) and one SD-style folder."""

    name = "fake"

    @classmethod
    def required_weights(cls, cfg):
        return [
            W.WeightFile("fake", "net.pth", sha256=sha(PAYLOAD), hf_repo="org/fake-net", licence="MIT"),
            W.WeightDir.stable_diffusion("fake", "org/tiny-sd", components=("unet", "scheduler")),
        ]

    @classmethod
    def from_config(cls, cfg, device, dtype):  # pragma: no cover - not used here
        raise NotImplementedError

    def upscale(self, lr, scale, *, seeds):  # pragma: no cover
        raise NotImplementedError


def make_hf_snapshot(cache: Path, repo: str, files: dict[str, bytes], rev: str = "a" * 40) -> Path:
    """Write the hub cache layout: blobs/<sha256>, snapshots/<rev>/<file> → blob symlink, refs/main."""
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(rev)
    for rel, data in files.items():
        blob = root / "blobs" / sha(data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = root / "snapshots" / rev / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    return root / "snapshots" / rev


SD_FILES = {
    "model_index.json": b"{}",
    "unet/config.json": b"{}",
    "unet/diffusion_pytorch_model.safetensors": b"unet",
    "scheduler/scheduler_config.json": b"{}",
}


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def root(tmp_path, monkeypatch):
    r = tmp_path / "srw"
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(r))
    return r


# --------------------------------------------------------------------------- lookup
def test_missing_file_is_one_line_naming_file_places_and_source(root, hf_cache):
    wf = FakeMethod.required_weights({})[0]
    with pytest.raises(W.MissingWeightsError) as err:
        W.resolve(wf)
    msg = str(err.value)
    assert "\n" not in msg
    assert "net.pth" in msg and str(root / "fake" / "net.pth") in msg
    assert str(hf_cache / "models--org--fake-net") in msg  # the HF cache place it looked in
    assert "https://huggingface.co/org/fake-net" in msg and "srbench weights download fake" in msg


def test_hf_cache_layout_is_found_offline(root, hf_cache):
    from huggingface_hub import try_to_load_from_cache

    snap = make_hf_snapshot(hf_cache, "org/fake-net", {"net.pth": PAYLOAD})
    # the oracle: huggingface_hub reads the same layout to the same file
    assert Path(try_to_load_from_cache("org/fake-net", "net.pth", cache_dir=hf_cache)) == snap / "net.pth"
    wf = FakeMethod.required_weights({})[0]
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert W.resolve(wf) == snap / "net.pth"


def test_lookup_order_explicit_then_root_then_hf_cache(root, hf_cache, tmp_path):
    wf = FakeMethod.required_weights({})[0]
    snap = make_hf_snapshot(hf_cache, "org/fake-net", {"net.pth": PAYLOAD})
    assert W.resolve(wf) == snap / "net.pth"
    (root / "fake").mkdir(parents=True)
    (root / "fake" / "net.pth").write_bytes(PAYLOAD)
    assert W.resolve(wf) == root / "fake" / "net.pth"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "net.pth").write_bytes(PAYLOAD)
    assert W.resolve(wf, mine) == mine / "net.pth"  # a directory holding it
    assert W.resolve(wf, mine / "net.pth") == mine / "net.pth"  # the file itself


def test_explicit_path_that_does_not_exist_is_an_error_not_a_fallback(root, hf_cache, tmp_path):
    wf = FakeMethod.required_weights({})[0]
    make_hf_snapshot(hf_cache, "org/fake-net", {"net.pth": PAYLOAD})
    with pytest.raises(W.MissingWeightsError, match="configured path") as err:
        W.resolve(wf, tmp_path / "typo.pth")
    assert "\n" not in str(err.value)


def test_corrupt_file_is_one_line(root, hf_cache):
    wf = FakeMethod.required_weights({})[0]
    (root / "fake").mkdir(parents=True)
    (root / "fake" / "net.pth").write_bytes(b"truncated")
    with pytest.raises(W.MissingWeightsError, match="corrupt") as err:
        W.resolve(wf)
    assert "\n" not in str(err.value) and sha(b"truncated")[:16] in str(err.value)
    assert W.resolve(wf, check=False) == root / "fake" / "net.pth"


def test_weight_dir_found_in_hf_cache_only_when_complete(root, hf_cache):
    wd = FakeMethod.required_weights({})[1]
    partial = dict(SD_FILES)
    del partial["unet/diffusion_pytorch_model.safetensors"]
    make_hf_snapshot(hf_cache, "org/tiny-sd", partial, rev="b" * 40)
    with pytest.raises(W.MissingWeightsError) as err:
        W.resolve(wd)
    assert "\n" not in str(err.value) and "org/tiny-sd" in str(err.value)
    snap = make_hf_snapshot(hf_cache, "org/tiny-sd", SD_FILES, rev="b" * 40)
    assert W.resolve(wd) == snap
    from huggingface_hub import scan_cache_dir

    revs = [r for repo in scan_cache_dir(hf_cache).repos for r in repo.revisions]
    assert [Path(r.snapshot_path) for r in revs] == [snap]  # the hub library sees the same snapshot


def test_weight_dir_explicit_folder(root, hf_cache, tmp_path):
    wd = FakeMethod.required_weights({})[1]
    folder = tmp_path / "my-sd"
    for rel, data in SD_FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    assert W.resolve(wd, folder) == folder
    (folder / "unet" / "config.json").unlink()
    with pytest.raises(W.MissingWeightsError, match=r"missing unet/config.json"):
        W.resolve(wd, folder)


def test_random_weights_need_no_files(root, hf_cache):
    assert W.resolve_all(FakeMethod, {"weights": "random"}) == {}
    with pytest.raises(W.MissingWeightsError):
        W.resolve_all(FakeMethod, {"weights": None})


def test_resolve_all_with_per_file_paths(root, hf_cache, tmp_path):
    (tmp_path / "n.pth").write_bytes(PAYLOAD)
    folder = tmp_path / "sd"
    for rel, data in SD_FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    got = W.resolve_all(FakeMethod, {"weights": {"net.pth": str(tmp_path / "n.pth"), "tiny-sd": str(folder)}})
    assert got == {"net.pth": tmp_path / "n.pth", "tiny-sd": folder}


# --------------------------------------------------------------------------- download
def url_file(tmp_path: Path, data: bytes) -> str:
    src = tmp_path / "served" / "net.pth"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(data)
    return src.as_uri()


def test_download_only_when_asked_and_verified(root, hf_cache, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    wf = W.WeightFile("fake", "net.pth", sha256=sha(PAYLOAD), url=url_file(tmp_path, PAYLOAD))
    with pytest.raises(W.MissingWeightsError):
        W.resolve(wf)  # not asked: nothing fetched
    assert not (root / "fake" / "net.pth").exists()
    path = W.resolve(wf, download=True)
    assert path == root / "fake" / "net.pth" and sha(path.read_bytes()) == sha(PAYLOAD)
    assert sorted(p.name for p in path.parent.iterdir()) == ["net.pth"]  # no partial files left


def test_download_with_wrong_digest_leaves_nothing(root, hf_cache, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    wf = W.WeightFile("fake", "net.pth", sha256=sha(b"other"), url=url_file(tmp_path, PAYLOAD))
    with pytest.raises(W.MissingWeightsError, match="does not match its published sha256") as err:
        W.resolve(wf, download=True)
    assert "\n" not in str(err.value)
    assert not any((root / "fake").iterdir())


def test_download_refused_in_offline_mode(root, hf_cache, tmp_path):
    wf = W.WeightFile("fake", "net.pth", sha256=sha(PAYLOAD), url=url_file(tmp_path, PAYLOAD))
    with pytest.raises(W.MissingWeightsError, match="HF_HUB_OFFLINE") as err:
        W.resolve(wf, download=True)
    assert "\n" not in str(err.value) and not (root / "fake" / "net.pth").exists()


def test_failed_download_is_one_line(root, hf_cache, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    wf = W.WeightFile("fake", "net.pth", url=(tmp_path / "absent.pth").as_uri())
    with pytest.raises(W.MissingWeightsError, match="download of net.pth .* failed") as err:
        W.resolve(wf, download=True)
    assert "\n" not in str(err.value)


def test_hf_download_is_verified(root, hf_cache, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE")

    def fake_hf_hub_download(repo, filename, *, revision=None, cache_dir=None):
        rev = "c" * 40
        return str(make_hf_snapshot(Path(cache_dir), repo, {filename: b"tampered"}, rev=rev) / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    wf = FakeMethod.required_weights({})[0]
    with pytest.raises(W.MissingWeightsError, match="does not match its published sha256"):
        W.resolve(wf, download=True)


# --------------------------------------------------------------------------- loading
@pytest.fixture
def tensors():
    g = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(4, 3, 3, 3, generator=g), "conv.bias": torch.randn(4, generator=g)}


def test_load_safetensors_returns_state_dict_and_sha256(tmp_path, tensors):
    path = tmp_path / "m.safetensors"
    save_file({"_orig_mod." + k: v for k, v in tensors.items()}, str(path))
    sd, digest = W.load_state_dict(path)
    assert digest == sha(path.read_bytes())
    assert sd.keys() == tensors.keys()
    for k in tensors:
        assert torch.equal(sd[k], tensors[k])


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", "module.module."])
def test_load_pth_strips_wrapper_prefixes(tmp_path, tensors, prefix):
    path = tmp_path / "m.pth"
    torch.save({"state_dict": {prefix + k: v for k, v in tensors.items()}, "iters": 7}, path)
    sd, digest = W.load_state_dict(path, subkey="state_dict")
    assert digest == sha(path.read_bytes()) and sd.keys() == tensors.keys()
    assert all(torch.equal(sd[k], tensors[k]) for k in tensors)


def test_orig_mod_inside_a_compiled_submodule_is_stripped():
    sd = W.strip_prefixes({"unet._orig_mod.conv.weight": 1, "module.head.bias": 2})
    assert sd == {"unet.conv.weight": 1, "head.bias": 2}


def test_nested_checkpoint_without_subkey_is_a_clear_error(tmp_path, tensors):
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": tensors, "iters": 7}, path)
    with pytest.raises(ValueError, match="subkey") as err:
        W.load_state_dict(path)
    assert "\n" not in str(err.value)


def test_pickled_python_objects_need_explicit_trust(tmp_path, tensors):
    path = tmp_path / "m.pth"
    torch.save({"model": tensors, "args": SimpleNamespace(lr=1)}, path)
    with pytest.raises(ValueError, match="allow_pickle=True") as err:
        W.load_state_dict(path, subkey="model")
    assert "\n" not in str(err.value)
    sd, _ = W.load_state_dict(path, subkey="model", allow_pickle=True)
    assert sd.keys() == tensors.keys()


def test_dir_sha256_lists_weight_files(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "w.safetensors").write_bytes(b"abc")
    (tmp_path / "unet" / "config.json").write_bytes(b"{}")
    assert W.dir_sha256(tmp_path) == {"unet/w.safetensors": sha(b"abc")}


# --------------------------------------------------------------------------- command
@pytest.fixture
def fake_registry(monkeypatch):
    entry = MethodEntry("fake", "tests:FakeMethod", "test", SimpleNamespace(load=lambda: FakeMethod))
    broken = MethodEntry("broken", "nowhere:Nothing", "test", SimpleNamespace(load=lambda: 1 / 0))
    monkeypatch.setattr(method_registry, "method_entries", lambda: {"broken": broken, "fake": entry})


def test_cli_list_shows_found_and_missing(fake_registry, root, hf_cache, capsys):
    make_hf_snapshot(hf_cache, "org/fake-net", {"net.pth": PAYLOAD})
    assert cmd.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "broken" in lines and any("cannot load method: division by zero" in ln for ln in lines)
    net = next(ln for ln in lines if "net.pth" in ln)
    assert "found" in net and str(hf_cache) in net and "licence: MIT" in net
    sd = next(ln for ln in lines if "tiny-sd/" in ln)
    assert "MISSING" in sd and "https://huggingface.co/org/tiny-sd" in sd


def test_cli_verify_detects_mismatch(fake_registry, root, hf_cache, capsys):
    make_hf_snapshot(hf_cache, "org/fake-net", {"net.pth": PAYLOAD})
    make_hf_snapshot(hf_cache, "org/tiny-sd", SD_FILES)
    assert cmd.main(["verify", "fake"]) == 0
    assert "net.pth: ok" in capsys.readouterr().out
    (root / "fake").mkdir(parents=True)
    (root / "fake" / "net.pth").write_bytes(b"bad")
    assert cmd.main(["verify", "fake"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_cli_download_reports_offline_in_one_line(fake_registry, root, hf_cache, capsys):
    assert cmd.main(["download", "fake"]) == 1
    out = capsys.readouterr().out
    failed = [ln for ln in out.splitlines() if "FAILED" in ln]
    assert len(failed) == 2 and all("HF_HUB_OFFLINE" in ln for ln in failed)


def test_cli_unknown_method(fake_registry, capsys):
    assert cmd.main(["list", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_unpublished_file_says_how_to_make_it_not_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path))
    wf = W.WeightFile(method="m", filename="m-small.pt", obtain="train it with `make train METHOD=m`")
    with pytest.raises(W.MissingWeightsError) as err:
        W.resolve(wf)
    msg = str(err.value)
    assert "make train METHOD=m" in msg and "weights download" not in msg and "\n" not in msg


class _MakesDirOnLoad:
    """Unpickling this calls os.makedirs(marker): stands in for any code a hostile file could run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.makedirs, (self.marker,))


def test_checkpoints_are_never_unpickled_as_code(tmp_path):
    """Regression: srbench-train checkpoints were read with weights_only=False, so any .pt given as
    weights/init/resume could run code. Now every reader refuses it in one line, and nothing runs."""
    from srbench import training

    marker = tmp_path / "payload_ran"
    path = tmp_path / "step_00000001.pt"
    torch.save({"format": training.CHECKPOINT_FORMAT, "modules": {}, "x": _MakesDirOnLoad(marker)}, path)
    for read in (W.load_checkpoint, training.load_checkpoint):
        with pytest.raises(ValueError, match="does not unpickle") as err:
            read(path)
        assert "\n" not in str(err.value)
    assert not marker.exists()


def test_numpy_arrays_load_without_trusting_the_file(tmp_path, tensors):
    """A srbench-train checkpoint keeps the numpy RNG state: arrays load under weights_only."""
    import numpy as np

    state = np.random.RandomState(3).get_state()
    path = tmp_path / "rng.pt"
    torch.save({"rng": state, "model": tensors}, path)
    obj, _ = W.load_checkpoint(path)
    assert obj["rng"][0] == "MT19937" and np.array_equal(obj["rng"][1], state[1])
