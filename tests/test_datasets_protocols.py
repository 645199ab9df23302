"""HR preparation rules (srbench.data.protocols) against independent oracles of the authors' code."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from test_datasets_oracles import matlab_imresize_uint8, synthetic_image

from srbench.data.base import DatasetError
from srbench.data.protocols import (
    EcdpCelebAHR,
    EcdpImageNetHR,
    InvSRImageNetHR,
    PilFacePair,
    ecdp_center_square,
    invsr_image_list,
    random_crop_positions,
)


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)


def coordinate_image(h: int, w: int) -> np.ndarray:
    """Pixel (i, j) = (i mod 256, j mod 256, (i // 256) * 16 + j // 256): a crop reveals its offset."""
    i, j = np.mgrid[0:h, 0:w]
    return np.stack([i % 256, j % 256, (i // 256) * 16 + j // 256], -1).astype(np.uint8)


# ------------------------------------------------------------------------------ ECDP / SR3
@pytest.mark.parametrize("h, w, top, left", [
    (256, 381, 0, 62),   # (381 − 256) / 2 = 62.5 → 62: Python round is half-to-even (half-up would give 63)
    (381, 256, 62, 0),
    (256, 383, 0, 64),   # 63.5 → 64
    (300, 300, 0, 0),
])
def test_ecdp_center_square_rounds_half_to_even(h, w, top, left):
    assert ecdp_center_square(h, w) == (top, left, min(h, w))


def test_ecdp_imagenet_crop_offset_on_pixels():
    """At hr_size == side the MATLAB resize is the identity, so the HR is exactly the crop."""
    img = coordinate_image(256, 381)
    hr = EcdpImageNetHR(size=256)(to_tensor(img))
    np.testing.assert_array_equal(to_uint8(hr), img[:, 62:318])


def test_ecdp_imagenet_hr_matches_matlab_oracle():
    img = synthetic_image(375, 500, seed=3)  # the commonest ImageNet size
    hr = EcdpImageNetHR()(to_tensor(img))
    assert hr.shape == (3, 256, 256)
    top, left, side = 0, round(125 / 2.0), 375
    expected = matlab_imresize_uint8(img[top:top + side, left:left + side], (256, 256))
    np.testing.assert_array_equal(to_uint8(hr), expected)


@pytest.mark.parametrize("hw", [(218, 178), (178, 218)])
def test_ecdp_celeba_squeezes_whole_image_to_160(hw):
    """No crop: the aligned 178×218 face is resized to 160×160 (smaller-scale axis first)."""
    img = synthetic_image(*hw, seed=5)
    hr = EcdpCelebAHR()(to_tensor(img))
    np.testing.assert_array_equal(to_uint8(hr), matlab_imresize_uint8(img, (160, 160)))


# ------------------------------------------------------------------------------- IDM / SR3
def pil_oracle(img: Image.Image, size: int) -> Image.Image:
    """Ree1s/IDM prepare_data.resize_and_convert written with PIL only (torchvision's rules by hand)."""
    w, h = img.size
    if w == size:
        return img
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    img = img.resize((new_w, new_h), Image.BICUBIC)
    top, left = round((new_h - size) / 2.0), round((new_w - size) / 2.0)
    return img.crop((left, top, left + size, top + size))


@pytest.mark.parametrize("hw", [(240, 200), (256, 256), (199, 301)])
def test_idm_lr_and_hr_are_independent_pil_resizes_of_the_source(hw):
    src = synthetic_image(*hw, seed=7)
    lr, hr = PilFacePair(16, 128)(to_tensor(src))
    assert lr.shape == (3, 16, 16) and hr.shape == (3, 128, 128)
    pil = Image.fromarray(src)
    np.testing.assert_array_equal(to_uint8(hr), np.asarray(pil_oracle(pil, 128)))
    np.testing.assert_array_equal(to_uint8(lr), np.asarray(pil_oracle(pil, 16)))
    # The LR is not a downscale of the HR (that would be another protocol).
    from_hr = np.asarray(Image.fromarray(to_uint8(hr)).resize((16, 16), Image.BICUBIC))
    assert np.abs(from_hr.astype(int) - to_uint8(lr).astype(int)).max() > 0


def test_idm_width_only_check_is_reproduced():
    """Upstream tests ``img.size[0] != size``: a source already 128 wide is used as it is."""
    src = synthetic_image(150, 128, seed=8)
    _, hr = PilFacePair(16, 128)(to_tensor(src))
    np.testing.assert_array_equal(to_uint8(hr), src)


# ------------------------------------------------------------------------------------ InvSR
def invsr_oracle(img: np.ndarray, new_hw: tuple[int, int] | None, size: int = 512) -> np.ndarray:
    x = img.astype(np.float32) / 255.0
    if new_hw is not None:
        x = cv2.resize(x, (new_hw[1], new_hw[0]), interpolation=cv2.INTER_AREA)
    top, left = (x.shape[0] - size) // 2, (x.shape[1] - size) // 2
    return np.clip(np.round(x[top:top + size, left:left + size] * 255.0), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("hw, new_hw", [
    ((375, 500), (512, 683)),     # 500·512/375 = 682.67 → 683, crop left (683 − 512) // 2 = 85
    ((1024, 1025), (512, 512)),   # 1025/2 = 512.5 → 512 (half-to-even; half-up would be 513)
    ((512, 643), None),           # short side already 512: no resize; left = 131 // 2 = 65 (floor, not round)
])
def test_invsr_hr_area_resize_then_floor_crop(hw, new_hw):
    img = synthetic_image(*hw, seed=9)
    hr = InvSRImageNetHR()(to_tensor(img))
    assert hr.shape == (3, 512, 512)
    np.testing.assert_array_equal(to_uint8(hr), invsr_oracle(img, new_hw))


def test_invsr_image_list_matches_upstream_script():
    """prepare_sr_testing_syn.py: sorted glob, random.seed(10000), shuffle, sample(k)."""
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 301)]
    state = random.getstate()
    try:
        expected = sorted(names)
        random.seed(10000)
        random.shuffle(expected)
        expected = random.sample(expected, k=40)
    finally:
        random.setstate(state)
    shuffled_input = list(reversed(names))
    assert invsr_image_list(shuffled_input, 40) == expected
    assert invsr_image_list(names, None)[:5] == invsr_image_list(names, -1)[:5]
    with pytest.raises(DatasetError, match="only 300"):
        invsr_image_list(names, 301)


# ------------------------------------------------------------------------ random HR crops
def test_random_crop_positions_are_seeded_uniform_and_inclusive():
    a = random_crop_positions(513, 515, 512, 400, seed=1)
    assert a == random_crop_positions(513, 515, 512, 400, seed=1)
    assert a != random_crop_positions(513, 515, 512, 400, seed=2)
    tops, lefts = {t for t, _ in a}, {l for _, l in a}
    assert tops == {0, 1} and lefts == {0, 1, 2, 3}  # both ends reachable, nothing outside
    counts = np.bincount([l for _, l in a], minlength=4)
    assert counts.min() > 60  # ~100 each of 400 draws


def test_random_crop_smaller_image_is_an_error():
    with pytest.raises(DatasetError, match=r"500×400, smaller than the 512×512 crop"):
        random_crop_positions(400, 500, 512, 1, seed=0, where="HR x.png")
