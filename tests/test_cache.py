"""LR cache: stored once, reused, and rebuilt when stale or corrupt (srbench.data.cache)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from test_datasets_oracles import matlab_downscale_uint8, save_png, synthetic_image

from srbench.data.benchmarks import Set5
from srbench.data.cache import LRCache, key_hash


def hr_image(seed: int = 0, h: int = 24, w: int = 32) -> torch.Tensor:
    return torch.from_numpy(synthetic_image(h, w, seed).astype(np.float32) / 255).permute(2, 0, 1).contiguous()


class CountingMaker:
    """A deterministic LR maker (2× subsample) that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, hr: torch.Tensor):
        self.calls += 1
        return hr[:, ::2, ::2].clone(), {"drawn": 0.25, "calls_so_far": self.calls}


KEY = {"degradation": "toy", "seed": 3, "scale": 2}


def test_miss_then_hit_returns_identical_lr(tmp_path):
    cache, make, hr = LRCache(tmp_path, "toyset", KEY), CountingMaker(), hr_image()
    first = cache.get("img1", hr, make)
    second = LRCache(tmp_path, "toyset", dict(KEY)).get("img1", hr, make)  # a new process would do this
    assert (first.hit, second.hit, make.calls) == (False, True, 1)
    assert torch.equal(first.lr, second.lr) and torch.equal(second.lr, hr[:, ::2, ::2])
    assert second.params == {"drawn": 0.25, "calls_so_far": 1}
    assert cache.dir == tmp_path / "toyset" / cache.hash and (cache.dir / "img1.png").is_file()
    assert json.loads((cache.dir / "key.json").read_text())["seed"] == 3


def test_key_decides_the_folder():
    a, b = LRCache("/c", "d", KEY), LRCache("/c", "d", {**KEY, "seed": 4})
    assert a.dir != b.dir and a.hash == LRCache("/c", "d", dict(reversed(list(KEY.items())))).hash
    assert key_hash({"x": [1, 2]}) != key_hash({"x": [2, 1]})


def test_changed_hr_is_detected_and_rebuilt(tmp_path):
    cache, make = LRCache(tmp_path, "toyset", KEY), CountingMaker()
    cache.get("img1", hr_image(0), make)
    with pytest.warns(UserWarning, match="HR it was made from has changed"):
        entry = cache.get("img1", hr_image(1), make)
    assert not entry.hit and make.calls == 2 and torch.equal(entry.lr, hr_image(1)[:, ::2, ::2])
    assert cache.rebuilt == ["img1"]
    assert cache.get("img1", hr_image(1), make).hit  # and the rebuilt entry is valid


@pytest.mark.parametrize("damage", ["truncate", "garbage", "edit_pixels", "delete_record"])
def test_corrupt_entry_is_detected_and_rebuilt(tmp_path, damage):
    cache, make, hr = LRCache(tmp_path, "toyset", KEY), CountingMaker(), hr_image()
    cache.get("img1", hr, make)
    png = cache.png_path("img1")
    original = png.read_bytes()
    if damage == "truncate":
        png.write_bytes(original[: len(original) // 2])
    elif damage == "garbage":
        png.write_bytes(b"not a png at all")
    elif damage == "edit_pixels":  # a valid PNG with other pixels
        arr = np.asarray(Image.open(png)).copy()
        arr[0, 0] ^= 1
        Image.fromarray(arr).save(png)
    else:
        cache.record_path("img1").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entry = cache.get("img1", hr, make)
    assert not entry.hit and make.calls == 2
    assert png.read_bytes() == original  # deterministic maker → the same bytes again
    if damage != "delete_record":  # a missing record is a plain miss, not a warning
        assert any("regenerating" in str(w.message) for w in caught)


def test_lr_off_the_8bit_grid_is_refused(tmp_path):
    cache = LRCache(tmp_path, "toyset", KEY)
    with pytest.raises(ValueError, match="not on the 8-bit grid"):
        cache.put("x", torch.full((3, 4, 4), 0.5 / 255), {}, "hr")


def test_manifest_completeness_and_hash(tmp_path):
    a, b = LRCache(tmp_path / "a", "s", KEY), LRCache(tmp_path / "b", "s", KEY)
    for cache in (a, b):
        make = CountingMaker()
        for name, seed in (("p", 0), ("q", 1)):
            cache.get(name, hr_image(seed), make)
    ma, mb = a.manifest(["p", "q"]), b.manifest(["p", "q"])
    assert ma["complete"] and ma["sha256"] == mb["sha256"] and set(ma["entries"]) == {"p", "q"}
    assert a.manifest(["p", "q", "r"])["missing"] == ["r"]
    path = a.write_manifest(["p", "q"])
    assert json.loads(path.read_text())["sha256"] == ma["sha256"]


def test_dataset_lr_is_generated_once_and_reused(tmp_path):
    """Through a dataset: the first run makes the MATLAB LR, a second instance only reads it."""
    root = tmp_path / "set5"
    imgs = {n: synthetic_image(37 + 4 * k, 41 + 2 * k, k) for k, n in enumerate(("baby", "bird", "butterfly", "head", "woman"))}
    for n, img in imgs.items():
        save_png(root / "HR" / f"{n}.png", img)
    cache_dir = tmp_path / "cache"
    first = Set5(root, scale=4, lr_source="matlab", cache_dir=cache_dir)
    samples = [first[i] for i in range(len(first))]
    assert {s.meta["lr_cache"] for s in samples} == {"miss"}
    second = Set5(root, scale=4, lr_source="matlab", cache_dir=cache_dir)
    again = [second[i] for i in range(len(second))]
    assert {s.meta["lr_cache"] for s in again} == {"hit"}
    for s, t in zip(samples, again):
        expected = matlab_downscale_uint8(imgs[s.name], 4)
        np.testing.assert_array_equal((t.lr.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), expected)
        assert torch.equal(s.lr, t.lr)
    assert second.describe()["lr_cache"]["complete"] is True
    # A different scale is a different key: nothing is shared with the ×4 LR.
    third = Set5(root, scale=2, lr_source="matlab", cache_dir=cache_dir)
    assert third.cache.dir != second.cache.dir and third[0].meta["lr_cache"] == "miss"
