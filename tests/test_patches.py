"""Training patches (srbench/data/patches.py): crops, flips, on-the-fly LR, a restartable stream."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from srbench.data.base import DatasetError
from srbench.data.patches import EpochSampler, PairedPatchDataset, PatchCollator, patch_seed
from srbench.data.resize import imresize

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    """Three small 8-bit RGB PNGs of different sizes (random texture: every crop is unique)."""
    folder = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a": (40, 52), "b": (37, 45), "c": (48, 48)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def _source(folder: Path, name: str) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(folder / f"{name}.png"))).permute(2, 0, 1).float() / 255


def _undo_aug(x: torch.Tensor, flip: bool, k: int) -> torch.Tensor:
    x = torch.rot90(x, -k, dims=(-2, -1))
    return x.flip(-1) if flip else x


def test_patch_is_a_crop_of_the_source_and_lr_is_matlab_bicubic_of_it(image_dir):
    ds = PairedPatchDataset(hr_dir=image_dir, scale=4, patch_size=24, repeat=4, seed=3)
    assert len(ds) == 12
    for i in range(len(ds)):
        item = ds[(1, i)]
        assert item["hr"].shape == (3, 24, 24) and item["lr"].shape == (3, 6, 6)
        src = _source(image_dir, item["name"])
        (top, left), (flip, k) = item["crop"], item["aug"]
        crop = src[:, top:top + 24, left:left + 24]
        # the HR patch is the source crop under the reported flip/rotation (independent check)
        assert torch.equal(_undo_aug(item["hr"], flip, k), crop)
        # LR = MATLAB imresize of the un-augmented crop on uint8, then the same flip/rotation (ECDP order)
        assert torch.equal(_undo_aug(item["lr"], flip, k), imresize(crop, 0.25, quantize=True))
        assert torch.equal(item["lr"] * 255, (item["lr"] * 255).round())


def test_same_key_same_sample_and_epochs_differ(image_dir):
    ds = PairedPatchDataset(hr_dir=image_dir, scale=2, patch_size=16, seed=0)
    a, b = ds[(2, 1)], ds[(2, 1)]
    assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"])
    crops = {ds[(e, 1)]["crop"] + ds[(e, 1)]["aug"] for e in range(8)}
    assert len(crops) > 4  # fresh random choices every epoch
    other_seed = PairedPatchDataset(hr_dir=image_dir, scale=2, patch_size=16, seed=1)
    assert {other_seed[(e, 1)]["crop"] for e in range(8)} != {ds[(e, 1)]["crop"] for e in range(8)}


def test_crop_and_augmentation_statistics(image_dir):
    # crop offsets uniform on [0, H−P] (both ends reachable), flip p = 1/2, k uniform on {0..3}
    ds = PairedPatchDataset(hr_dir=image_dir, scale=2, patch_size=32, seed=0)
    g = torch.Generator().manual_seed(0)
    tops, flips, ks = [], [], []
    for e in range(600):
        # image "c" (48×48): offsets 0..16; only the random draws are needed, not the pixels
        g.manual_seed(patch_seed(0, e, 2))
        hr = torch.zeros(3, 48, 48)
        _, (top, _left) = ds._random_crop(hr, g, 2)
        _, _, (flip, k) = ds._augment(torch.zeros(3, 2, 2), torch.zeros(3, 1, 1), g)
        tops.append(top)
        flips.append(flip)
        ks.append(k)
    counts = np.bincount(tops, minlength=17)
    assert counts[0] > 0 and counts[16] > 0 and len(counts) == 17
    assert stats.chisquare(counts).pvalue > 1e-3
    assert stats.binomtest(sum(flips), len(flips), 0.5).pvalue > 1e-3
    assert stats.chisquare(np.bincount(ks, minlength=4)).pvalue > 1e-3


def test_flags_turn_augmentation_off(image_dir):
    ds = PairedPatchDataset(hr_dir=image_dir, scale=2, patch_size=16, hflip=False, rot90=False)
    assert all(ds[(e, 0)]["aug"] == (False, 0) for e in range(10))
    # same crop positions as with augmentation on: the flags do not shift the other draws
    on = PairedPatchDataset(hr_dir=image_dir, scale=2, patch_size=16)
    assert [ds[(e, 0)]["crop"] for e in range(10)] == [on[(e, 0)]["crop"] for e in range(10)]


def test_epoch_sampler_permutations_and_restart():
    sampler = EpochSampler(10, global_batch=4, seed=5)
    assert sampler.samples_per_epoch == 8  # drop_last per epoch
    stream = list(itertools.islice(iter(sampler), 40))
    for e in range(5):
        epoch = stream[8 * e: 8 * (e + 1)]
        assert {k[0] for k in epoch} == {e}
        indices = [k[1] for k in epoch]
        assert len(set(indices)) == 8 and set(indices) <= set(range(10))
    assert [k[1] for k in stream[:8]] != [k[1] for k in stream[8:16]]
    for start in (0, 3, 8, 13, 37):
        restarted = list(itertools.islice(iter(EpochSampler(10, global_batch=4, seed=5, start=start)), 40 - start))
        assert restarted == stream[start:]
    with pytest.raises(DatasetError, match="fewer than one batch"):
        EpochSampler(3, global_batch=4)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_stream_independent_of_workers(image_dir, workers):
    ds = PairedPatchDataset(hr_dir=image_dir, scale=2, patch_size=16, repeat=3, seed=7)

    def batches(num_workers: int, start: int = 0) -> list[dict]:
        loader = torch.utils.data.DataLoader(
            ds, batch_size=4, sampler=EpochSampler(len(ds), global_batch=4, seed=7, start=start),
            collate_fn=PatchCollator(2), num_workers=num_workers, generator=torch.Generator())
        return list(itertools.islice(iter(loader), 6))

    reference = batches(0)
    got = batches(workers)
    assert [b["keys"] for b in got] == [b["keys"] for b in reference]
    for a, b in zip(got, reference):
        assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"]) and a["scale"] == 2.0
    resumed = batches(workers, start=8)  # two batches consumed
    for a, b in zip(resumed, reference[2:]):
        assert a["keys"] == b["keys"] and torch.equal(a["hr"], b["hr"])


def test_small_images_error_or_reflect_pad(image_dir):
    ds = PairedPatchDataset(hr_dir=image_dir, scale=4, patch_size=44)
    with pytest.raises(DatasetError, match=r"image b is 45×37, smaller than patch_size 44"):
        ds[1]
    padded = PairedPatchDataset(hr_dir=image_dir, scale=4, patch_size=44, small_images="pad", hflip=False, rot90=False)
    item = padded[1]
    src = np.asarray(Image.open(image_dir / "b.png")).astype(np.float32) / 255
    # cv2.BORDER_REFLECT_101 = numpy "reflect" (edge not repeated), bottom/right only
    ref = np.pad(src, ((0, 44 - 37), (0, 0), (0, 0)), mode="reflect")
    top, left = item["crop"]
    expected = torch.from_numpy(ref[top:top + 44, left:left + 44]).permute(2, 0, 1)
    assert torch.equal(item["hr"], expected)


def test_square_crop_and_resize_to(image_dir):
    # ECDP ImageNet: random min(H, W) square, MATLAB bicubic to a fixed size, then the patch
    ds = PairedPatchDataset(hr_dir=image_dir, scale=4, patch_size=32, square_crop="random", resize_to=32,
                            hflip=False, rot90=False)
    item = ds[0]  # image "a" 52×40: squares of side 40 at x offsets 0..12
    src = _source(image_dir, "a")
    candidates = [imresize(src[:, :, x:x + 40], size=(32, 32), quantize=True) for x in range(13)]
    assert any(torch.equal(item["hr"], c) for c in candidates)


def test_config_errors_are_one_line(image_dir, tmp_path):
    with pytest.raises(DatasetError, match="not a multiple of scale"):
        PairedPatchDataset(hr_dir=image_dir, scale=4, patch_size=30)
    with pytest.raises(DatasetError, match=r"does not exist \(set dataset.hr_dir="):
        PairedPatchDataset(hr_dir=tmp_path / "nope")
    with pytest.raises(DatasetError, match="exactly one HR source"):
        PairedPatchDataset(hr_dir=image_dir, files=[image_dir / "a.png"])
    with pytest.raises(DatasetError, match="evaluation set, not a training patch set"):
        PairedPatchDataset.from_config({"name": "samples", "scale": 4}, seed=0)
    with pytest.raises(DatasetError, match="unknown degradation 'jpeg'"):
        PairedPatchDataset(hr_dir=image_dir, degradation="jpeg")


def test_files_list_and_hr_dataset_sources(image_dir):
    ds = PairedPatchDataset(files=[image_dir / "c.png"], scale=2, patch_size=16)
    assert ds[0]["name"] == "c" and len(ds) == 1
    samples = PairedPatchDataset(hr_dataset={"name": "samples", "scale": 4, "images": ["chelsea", "coffee"]},
                                 scale=4, patch_size=32, hflip=False, rot90=False)
    item = samples[1]
    assert item["name"] == "coffee" and item["hr"].shape == (3, 32, 32)


def test_train_folder_config_builds(image_dir):
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONF_DIR / "dataset" / "train_folder.yaml")
    cfg.hr_dir = str(image_dir)
    cfg.patch_size = 16
    ds = PairedPatchDataset.from_config(OmegaConf.to_container(cfg), seed=0)
    assert ds.name == "train_folder" and ds.degradation_name == "bicubic" and ds[0]["lr"].shape == (3, 4, 4)


@pytest.mark.parametrize("config", ["realesrgan", "stablesr"])
def test_realesrgan_degradation_on_the_fly(image_dir, config):
    if not (CONF_DIR / "degradation" / f"{config}.yaml").is_file():
        pytest.skip(f"conf/degradation/{config}.yaml not present")
    from srbench.data.degradations import RealESRGANDegradation

    ds = PairedPatchDataset(hr_dir=image_dir, scale=4, patch_size=32, degradation=config, hflip=False, rot90=False)
    item = ds[(0, 2)]
    assert item["lr"].shape == (3, 8, 8)
    assert torch.equal(item["lr"] * 255, (item["lr"] * 255).round())
    again = ds[(0, 2)]
    assert torch.equal(item["lr"], again["lr"])
    deg = RealESRGANDegradation.from_config(str(CONF_DIR / "degradation" / f"{config}.yaml"))
    lr, _ = deg.degrade(item["hr"], 4, patch_seed(0, 0, 2, "degradation"))
    assert torch.equal(item["lr"], lr)
    # not bicubic: the degradation actually ran
    assert not torch.equal(item["lr"], imresize(item["hr"], 0.25, quantize=True))


def test_lr_interior_matches_official_set5_lr(shared_data):
    # Real data: the on-the-fly LR of a patch aligned to the ×4 grid equals the authors' MATLAB LR
    # (Set5 LRbicx4) away from the patch border, where the crop does not change the kernel support.
    from srbench.data.io import modcrop, read_image

    ds = PairedPatchDataset(hr_dir=shared_data / "Set5" / "HR", scale=4, patch_size=64, repeat=40,
                            hflip=False, rot90=False, cache_hr=True)
    checked = 0
    for i in range(len(ds)):
        item = ds[(0, i)]
        top, left = item["crop"]
        if top % 4 or left % 4:
            continue
        official = read_image(shared_data / "Set5" / "LRbicx4" / f"{item['name']}x4.png").tensor
        hr = modcrop(read_image(shared_data / "Set5" / "HR" / f"{item['name']}.png").tensor, 4)
        if top + 64 > hr.shape[-2] or left + 64 > hr.shape[-1]:
            continue
        window = official[:, top // 4: top // 4 + 16, left // 4: left // 4 + 16]
        assert torch.equal(item["lr"][:, 3:-3, 3:-3], window[:, 3:-3, 3:-3]), item["name"]
        checked += 1
    assert checked >= 2


def test_train_folder_config_takes_a_file_list_alone(image_dir):
    """`dataset=train_folder dataset.files=[...]` must not also need `dataset.hr_dir=null`."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONF_DIR / "dataset" / "train_folder.yaml")
    cfg.files = [str(p) for p in sorted(image_dir.iterdir())[:2]]
    ds = PairedPatchDataset.from_config(OmegaConf.to_container(cfg, resolve=True), seed=0)
    assert len(ds.source) == 2
    cfg.files = None  # no source at all: one line naming the three ways to give one
    with pytest.raises(DatasetError, match=r"exactly one HR source .*given: none"):
        PairedPatchDataset.from_config(OmegaConf.to_container(cfg, resolve=True), seed=0)
