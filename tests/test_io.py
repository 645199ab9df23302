"""srbench.data.io: files are written by Pillow/OpenCV directly and read back by them, so
every check compares against a decoder or encoder other than the code under test."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from srbench.data.io import (
    ImageReadError,
    LoadedImage,
    list_images,
    modcrop,
    quantize,
    read_image,
    to_uint8,
    write_image,
)

RNG = np.random.default_rng(0)


def random_rgb(h: int = 13, w: int = 17) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def as_hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------------------------
# Reading


def test_png_8bit_exact(tmp_path: Path) -> None:
    pixels = random_rgb()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert isinstance(img, LoadedImage) and img.path == tmp_path / "a.png"
    assert img.tensor.dtype == torch.float32 and img.tensor.shape == (3, 13, 17)
    assert (img.bit_depth, img.was_gray, img.had_alpha) == (8, False, False)
    assert np.array_equal(as_hwc(img.tensor), pixels.astype(np.float32) / np.float32(255))


def test_png_16bit_gray_full_precision(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (9, 11), dtype=np.uint16)
    values[0, :4] = [0, 1, 65534, 65535]
    Image.fromarray(values).save(tmp_path / "g16.png")  # Pillow writes mode I;16
    img = read_image(tmp_path / "g16.png")
    assert (img.bit_depth, img.was_gray, img.had_alpha) == (16, True, False)
    expected = values.astype(np.float64) / 65535
    for c in range(3):
        assert np.abs(img.tensor[c].numpy() - expected).max() <= 2**-25  # float32 rounding only
        assert np.array_equal(np.round(img.tensor[c].double().numpy() * 65535), values)
    # 16 bits survive: values that share their top 8 bits stay distinct
    assert img.tensor[0, 0, 0] != img.tensor[0, 0, 1]


def test_png_16bit_rgb_full_precision(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (7, 10, 3), dtype=np.uint16)
    values[0, 0] = [1, 2, 3]  # would all be 0 if cut to 8 bits
    cv2.imwrite(str(tmp_path / "c16.png"), values[:, :, ::-1])  # OpenCV stores BGR
    img = read_image(tmp_path / "c16.png")
    assert (img.bit_depth, img.was_gray, img.had_alpha) == (16, False, False)
    assert np.array_equal(np.round(as_hwc(img.tensor).astype(np.float64) * 65535), values)


def test_png_16bit_rgba_drops_alpha(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (5, 6, 4), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c16a.png"), values[:, :, [2, 1, 0, 3]])
    with pytest.warns(UserWarning, match="c16a.png"):
        img = read_image(tmp_path / "c16a.png")
    assert (img.bit_depth, img.had_alpha) == (16, True)
    assert np.array_equal(np.round(as_hwc(img.tensor).astype(np.float64) * 65535), values[:, :, :3])


def _png_16bit_gray_alpha(path: Path, gray_alpha: np.ndarray) -> None:
    """Minimal PNG encoder (PNG spec: IHDR colour type 4, 16 bits; filter 0 per row), because
    neither Pillow nor OpenCV writes 16-bit gray+alpha."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w, _ = gray_alpha.shape
    rows = b"".join(b"\x00" + gray_alpha[i].astype(">u2").tobytes() for i in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_png_16bit_gray_alpha(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (5, 6, 2), dtype=np.uint16)
    _png_16bit_gray_alpha(tmp_path / "la16.png", values)
    with pytest.warns(UserWarning, match="la16.png"):
        img = read_image(tmp_path / "la16.png")
    assert (img.bit_depth, img.was_gray, img.had_alpha) == (16, True, True)
    for c in range(3):
        assert np.array_equal(np.round(img.tensor[c].double().numpy() * 65535), values[:, :, 0])


def test_grayscale_replicated_to_three_channels(tmp_path: Path) -> None:
    gray = RNG.integers(0, 256, (8, 12), dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.was_gray and img.tensor.shape == (3, 8, 12)
    for c in range(3):
        assert np.array_equal(img.tensor[c].numpy(), gray.astype(np.float32) / np.float32(255))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_dropped_with_warning_not_composited(tmp_path: Path, mode: str) -> None:
    pixels = random_rgb(6, 7)
    alpha = np.zeros((6, 7), np.uint8)  # fully transparent: compositing would change every pixel
    if mode == "RGBA":
        array = np.dstack([pixels, alpha])
        expected = pixels
    else:
        array = np.dstack([pixels[:, :, 0], alpha])
        expected = np.repeat(pixels[:, :, :1], 3, axis=2)
    Image.fromarray(array, mode=mode).save(tmp_path / "alpha.png")
    with pytest.warns(UserWarning, match=r"alpha\.png.*alpha channel dropped"):
        img = read_image(tmp_path / "alpha.png")
    assert img.had_alpha and img.was_gray == (mode == "LA")
    assert np.array_equal(np.round(as_hwc(img.tensor) * 255).astype(np.uint8), expected)


def test_strict_alpha_raises(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), mode="RGBA").save(tmp_path / "rgba.png")
    with pytest.raises(ImageReadError, match="rgba.png.*alpha"):
        read_image(tmp_path / "rgba.png", strict_alpha=True)


def test_palette_image_converted_to_rgb(tmp_path: Path) -> None:
    im = Image.fromarray(random_rgb(10, 10)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.save(tmp_path / "p.png")
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    img = read_image(tmp_path / "p.png")
    assert (img.was_gray, img.had_alpha, img.bit_depth) == (False, False, 8)
    assert np.array_equal(np.round(as_hwc(img.tensor) * 255).astype(np.uint8), expected)
    im.save(tmp_path / "pt.png", transparency=0)
    with pytest.warns(UserWarning, match="pt.png"):
        assert read_image(tmp_path / "pt.png").had_alpha


def test_jpeg_read_without_exif_rotation(tmp_path: Path) -> None:
    pixels = random_rgb(10, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° CW to display"
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=95, exif=exif)
    stored = np.asarray(Image.open(tmp_path / "a.jpg"))  # Pillow decodes without rotating
    # read as stored, and said once: a viewer shows this image rotated (regression: it was silent)
    with pytest.warns(UserWarning, match=r"a.jpg: EXIF orientation 6 \(rotated 90° clockwise\) is not applied"):
        img = read_image(tmp_path / "a.jpg")
    assert img.tensor.shape == (3, 10, 30) and img.orientation == 6  # not transposed
    assert np.array_equal(np.round(as_hwc(img.tensor) * 255).astype(np.uint8), stored)
    Image.fromarray(pixels).save(tmp_path / "b.jpg", quality=95)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no tag, no warning
        assert read_image(tmp_path / "b.jpg").orientation == 1


def test_cmyk_jpeg_converted_by_pillow(tmp_path: Path) -> None:
    Image.fromarray(RNG.integers(0, 256, (8, 8, 4), dtype=np.uint8), mode="CMYK").save(tmp_path / "c.jpg")
    expected = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB"))
    img = read_image(tmp_path / "c.jpg")
    assert np.array_equal(np.round(as_hwc(img.tensor) * 255).astype(np.uint8), expected)


@pytest.mark.parametrize("name, kwargs", [("a.bmp", {}), ("a.tiff", {}), ("a.webp", {"lossless": True})])
def test_lossless_formats(tmp_path: Path, name: str, kwargs: dict) -> None:
    pixels = random_rgb()
    Image.fromarray(pixels).save(tmp_path / name, **kwargs)
    img = read_image(tmp_path / name)
    assert np.array_equal(np.round(as_hwc(img.tensor) * 255).astype(np.uint8), pixels)


# --------------------------------------------------------------------------------------------
# Unreadable files


def _noise_file(path: Path, **kwargs) -> bytes:
    Image.fromarray(random_rgb(64, 64)).save(path, **kwargs)  # noise: compresses badly, long data
    return path.read_bytes()


def _assert_one_line_naming(err: pytest.ExceptionInfo, path: Path) -> None:
    message = str(err.value)
    assert str(path) in message and "\n" not in message


@pytest.mark.parametrize("name, kwargs", [("t.png", {}), ("t.jpg", {"quality": 95})])
@pytest.mark.parametrize("lenient_global", [False, True])
def test_truncated_file_raises(
    tmp_path: Path, monkeypatch, name: str, kwargs: dict, lenient_global: bool
) -> None:
    path = tmp_path / name
    data = _noise_file(path, **kwargs)
    path.write_bytes(data[: len(data) // 2])
    # even when some other library told Pillow to pad truncated images with grey
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", lenient_global)
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    _assert_one_line_naming(err, path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is lenient_global  # the global setting is restored


def test_truncated_16bit_rgb_png_raises(tmp_path: Path) -> None:
    path = tmp_path / "t16.png"
    cv2.imwrite(str(path), RNG.integers(0, 65536, (64, 64, 3), dtype=np.uint16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    _assert_one_line_naming(err, path)


def test_garbage_and_missing_files_raise(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(RNG.integers(0, 256, 1000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError) as err:
        read_image(garbage)
    _assert_one_line_naming(err, garbage)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError) as err:
        read_image(empty)
    _assert_one_line_naming(err, empty)
    missing = tmp_path / "missing.png"
    with pytest.raises(ImageReadError, match="no such file") as err:
        read_image(missing)
    _assert_one_line_naming(err, missing)
    assert issubclass(ImageReadError, ValueError)


def test_shared_data_reads_like_pillow(shared_data: Path) -> None:
    """Real files: the grayscale Set14 bridge and RGBA KAIR faces are flagged as documented."""
    bridge = read_image(shared_data / "Set14" / "HR" / "bridge.png")
    assert bridge.was_gray and bridge.bit_depth == 8
    expected = np.asarray(Image.open(shared_data / "Set14" / "HR" / "bridge.png"))
    assert np.array_equal(np.round(bridge.tensor[1].numpy() * 255).astype(np.uint8), expected)
    face = min((shared_data / "faces" / "KAIR_real_faces").glob("*.png"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = read_image(face)
    with Image.open(face) as im:
        assert loaded.had_alpha == (im.mode in ("RGBA", "LA", "PA"))
    assert loaded.had_alpha == any(face.name in str(w.message) for w in caught)


# --------------------------------------------------------------------------------------------
# Quantization and writing


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_quantize_matches_definition(bit_depth: int) -> None:
    x = torch.from_numpy(RNG.uniform(-0.2, 1.2, (3, 16, 16)).astype(np.float32))
    levels = 2**bit_depth - 1
    expected = np.round(np.clip(x.double().numpy(), 0, 1) * levels) / levels
    got = quantize(x, bit_depth)
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert np.array_equal(got.numpy(), expected.astype(np.float32))


def test_quantize_equals_png_round_trip(tmp_path: Path) -> None:
    x = torch.from_numpy(RNG.uniform(-0.1, 1.1, (3, 9, 9)).astype(np.float32))
    write_image(tmp_path / "q.png", x)
    assert torch.equal(read_image(tmp_path / "q.png").tensor, quantize(x))


def test_to_uint8() -> None:
    x = torch.tensor(
        [[[0.0, 0.5, 1.0, 1.7]], [[-0.3, 1 / 255, 2.5 / 255, 254.4 / 255]], [[0.2, 0.4, 0.6, 0.8]]]
    )
    got = to_uint8(x)
    assert got.dtype == np.uint8 and got.shape == (1, 4, 3)
    assert got[0, :, 0].tolist() == [0, 128, 255, 255]
    # 2.5/255 is not a float32, its nearest float32 times 255 is just above 2.5
    assert got[0, :, 1].tolist() == [0, 1, 3, 254]
    assert np.array_equal(got, np.round(np.clip(x.double().numpy(), 0, 1) * 255).transpose(1, 2, 0))
    assert to_uint8(x[0]).shape == (1, 4)
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(torch.full((3, 2, 2), float("nan")))


def test_write_8bit_read_by_pillow(tmp_path: Path) -> None:
    pixels = random_rgb()
    write_image(tmp_path / "out" / "w.png", torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    im = Image.open(tmp_path / "out" / "w.png")
    assert im.mode == "RGB" and np.array_equal(np.asarray(im), pixels)


def test_write_16bit_read_by_opencv_and_pillow(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (6, 8, 3), dtype=np.uint16)
    write_image(
        tmp_path / "w16.png",
        torch.from_numpy(values.astype(np.float64) / 65535).permute(2, 0, 1),
        bit_depth=16,
    )
    back = cv2.imread(str(tmp_path / "w16.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back[:, :, ::-1], values)
    gray = values[:, :, 0]
    write_image(tmp_path / "g16.png", torch.from_numpy(gray.astype(np.float64) / 65535)[None], bit_depth=16)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g16.png")), gray)


def test_write_is_atomic(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "a.png"
    write_image(target, torch.zeros(3, 4, 4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no temporary file left
    original = target.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_image(target, torch.ones(3, 4, 4))
    assert target.read_bytes() == original  # old file untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # temporary file cleaned up


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="png"):
        write_image(tmp_path / "a.jpg", torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="bit_depth"):
        write_image(tmp_path / "a.png", torch.zeros(3, 2, 2), bit_depth=12)
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "a.png", torch.full((3, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="shape"):
        write_image(tmp_path / "a.png", torch.zeros(2, 3, 2, 2))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Folders and cropping


def test_list_images(tmp_path: Path) -> None:
    for name in [
        "b.png",
        "A.JPG",
        "c.Jpeg",
        "d.webp",
        "e.tif",
        "f.BMP",
        "notes.txt",
        ".hidden.png",
        "._mac.png",
    ]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "g.png").write_bytes(b"x")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "h.png").write_bytes(b"x")
    expected = ["A.JPG", "b.png", "c.Jpeg", "d.webp", "e.tif", "f.BMP"]
    assert [p.name for p in list_images(tmp_path)] == expected
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)] == expected + [
        "sub/g.png"
    ]
    assert all(isinstance(p, Path) for p in list_images(str(tmp_path)))


def test_list_images_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope") as err:
        list_images(tmp_path / "nope")
    assert "\n" not in str(err.value)
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        list_images(tmp_path / "file.png")


def test_modcrop() -> None:
    x = torch.arange(3 * 37 * 53).reshape(3, 37, 53)
    y = modcrop(x, 4)
    assert y.shape == (3, 36, 52) and torch.equal(y, x[:, :36, :52])  # top-left origin
    assert modcrop(x, 3).shape == (3, 36, 51)
    assert modcrop(x, 1).shape == x.shape
    assert modcrop(torch.zeros(2, 3, 17, 16), 8).shape == (2, 3, 16, 16)
    assert modcrop(torch.zeros(10, 11), 2.0).shape == (10, 10)
    with pytest.raises(ValueError):
        modcrop(x, 2.5)
    with pytest.raises(ValueError):
        modcrop(x, 0)
