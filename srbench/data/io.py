"""Image files ↔ tensors: reading, 8/16-bit quantization, atomic PNG writing, folder listing.

Conventions (``protocols.md`` §7.4):

* Everything in memory is RGB, C×H×W, float32 in [0, 1]; an 8-bit value k is k/255, a 16-bit
  value k is k/65535 (read at full precision, never truncated to 8 bits first).
* Grayscale files are replicated to 3 channels and flagged (``was_gray``), so metrics that
  work on Y can still use the single channel.
* Alpha is dropped with a warning and never composited onto a background; ``strict_alpha``
  refuses such files instead.
* No EXIF auto-rotation: pixels are used in stored order, as every SR benchmark does; a file
  whose EXIF orientation tag asks viewers to rotate it is read as stored, with one warning.
* Images above :func:`max_image_pixels` (Pillow's decompression-bomb limit by default) are
  refused in one line naming their size and the setting that allows them.
* A file that cannot be decoded completely raises :class:`ImageReadError` (truncated files are
  never padded with grey, whatever ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` says elsewhere).

Decoding is Pillow's. Pillow reduces 16-bit-per-channel colour PNG/TIFF to 8 bits, so those
files (only those) are decoded again with OpenCV, which keeps all 16 bits.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile

from srbench.errors import UserError
from srbench.fsutil import atomic_write_bytes

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "LoadedImage",
    "image_size",
    "list_images",
    "max_image_pixels",
    "modcrop",
    "quantize",
    "read_image",
    "set_max_image_pixels",
    "to_uint8",
    "write_image",
]

#: Extensions :func:`list_images` picks up (compared lower-case).
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})

_GRAY_16BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


class ImageReadError(UserError, ValueError):
    """An image file cannot be used; ``str(err)`` is one line naming the file and the reason."""


@dataclass
class LoadedImage:
    """A decoded image file.

    Attributes:
        tensor: 3×H×W float32 in [0, 1] (grayscale replicated to 3 channels, alpha removed).
        bit_depth: 8 or 16 — bits per sample in the file (what PSNR's peak should refer to).
        was_gray: the file had one colour channel (L, I;16, LA, 1-bit).
        had_alpha: the file had an alpha channel (RGBA, LA, PA, palette transparency), dropped.
        path: the file read.
        orientation: the EXIF orientation tag (1: as stored; 2–8: viewers flip/rotate it), not applied.
    """

    tensor: torch.Tensor
    bit_depth: int
    was_gray: bool
    had_alpha: bool
    path: Path
    orientation: int = 1


#: Pillow raises DecompressionBombError above twice its MAX_IMAGE_PIXELS; srbench keeps that
#: default and checks it itself, so the error can say how to allow the image.
_DEFAULT_PIXEL_LIMIT = 2 * int(Image.MAX_IMAGE_PIXELS or 89_478_485)
_pixel_limit: int | None = _DEFAULT_PIXEL_LIMIT

#: EXIF orientation values → what a viewer does with the stored pixels
_ORIENTATIONS = {2: "mirrored", 3: "rotated 180°", 4: "flipped vertically", 5: "mirrored and rotated 90°",
                 6: "rotated 90° clockwise", 7: "mirrored and rotated 270°", 8: "rotated 90° counter-clockwise"}


def set_max_image_pixels(limit: int | None) -> None:
    """Largest image (width × height) read: ``None`` → Pillow's default limit, ``0`` → no limit."""
    global _pixel_limit
    _pixel_limit = _DEFAULT_PIXEL_LIMIT if limit is None else (None if int(limit) == 0 else int(limit))


def max_image_pixels() -> int | None:
    return _pixel_limit


def _check_size(im: Image.Image, path: Path) -> None:
    w, h = im.size
    if _pixel_limit is not None and w * h > _pixel_limit:
        raise ImageReadError(
            f"{path} is {w}×{h} = {w * h / 1e6:.1f} megapixels, above the limit of {_pixel_limit / 1e6:.1f} MP "
            f"(a guard against decompression bombs); allow it with max_image_pixels={w * h} "
            "(srbench-bench / srbench-train) or --max-image-pixels (srbench score); 0 means no limit")


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file header, whatever its size (the pixel limit applies to reading
    pixels, in :func:`read_image`). Raises OSError/ValueError for an unreadable header."""
    with _own_size_check(), Image.open(path) as im:
        return im.size


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is not a reason to refuse the pixels
        return 1


@contextlib.contextmanager
def _refuse_truncated() -> Iterator[None]:
    # Another library may have switched Pillow to padding truncated files with grey; a benchmark
    # must never score such a half image, so force the strict behaviour while we decode.
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


@contextlib.contextmanager
def _own_size_check() -> Iterator[None]:
    # Pillow's own limit would raise (or warn) inside Image.open, before _check_size can name the setting
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _one_line(err: BaseException) -> str:
    if isinstance(err, Image.UnidentifiedImageError):
        return "not a recognised image file (unknown format or corrupt header)"
    if isinstance(err, FileNotFoundError):
        return "no such file"
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _raw_mode(im: Image.Image) -> str:
    """Pillow's raw mode of the first tile (e.g. 'RGB;16B'); only available before ``load()``."""
    if not im.tile:
        return ""
    args = im.tile[0][3]  # (codec, extents, offset, args); args is the raw mode or starts with it
    if isinstance(args, str):
        return args
    return str(args[0]) if isinstance(args, tuple) and args else ""


def _is_deep_color(im: Image.Image, raw_mode: str) -> bool:
    """16-bit-per-channel colour (or gray+alpha) data that Pillow would cut to 8 bits."""
    return ";16" in raw_mode and im.mode not in _GRAY_16BIT_MODES and im.mode != "I"


def _decode_deep_color(path: Path) -> np.ndarray:
    """H×W×C uint16 array (RGB/RGBA order) of a 16-bit colour PNG/TIFF, via OpenCV."""
    try:
        import cv2
    except ImportError:
        raise ImageReadError(
            f"{path}: 16-bit colour image needs OpenCV to be read at full precision "
            "(pip install opencv-python-headless)"
        ) from None
    array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16:
        raise ImageReadError(f"{path}: cannot decode the 16-bit colour data")
    if array.ndim == 2:
        return array[:, :, None]
    # OpenCV returns BGR(A); 16-bit gray+alpha comes back as BGRA with three equal colour channels.
    order = [2, 1, 0, 3] if array.shape[2] == 4 else [2, 1, 0]
    return array[:, :, order]


def _pixels(im: Image.Image, path: Path, raw_mode: str) -> tuple[np.ndarray, int, bool, bool]:
    """(H×W×C array, bit depth, was_gray, had_alpha) from a loaded Pillow image; C ∈ {1, 2, 3, 4}.

    Mode handling: 1/L/LA → gray; I;16* (and mode I within [0, 65535]) → 16-bit gray;
    RGB/RGBA → as is; P/PA → RGB(A) (palette transparency counts as alpha);
    CMYK, YCbCr, LAB, HSV, RGBX → RGB via Pillow's ``convert``.
    """
    mode = im.mode
    if _is_deep_color(im, raw_mode):
        array = _decode_deep_color(path)
        was_gray = raw_mode.startswith("LA;")  # Pillow calls 16-bit gray+alpha "RGBA"
        has_alpha = array.shape[2] == 4
        if was_gray:
            array = array[:, :, [0, 3]] if has_alpha else array[:, :, :1]
        return array, 16, was_gray, has_alpha
    if mode == "F":
        raise ImageReadError(
            f"{path}: floating-point image (mode F) has no defined range; convert it to 8/16-bit PNG"
        )
    if mode in _GRAY_16BIT_MODES or mode == "I":
        array = np.asarray(im)
        if array.min() < 0 or array.max() > 65535:
            raise ImageReadError(
                f"{path}: 32-bit integer image (mode {mode}) is not supported; convert it to 8/16-bit PNG"
            )
        return array.astype(np.uint16)[:, :, None], 16, True, False
    if mode == "1":
        im, mode = im.convert("L"), "L"
    elif mode == "P":
        has_alpha = "transparency" in im.info
        im, mode = im.convert("RGBA" if has_alpha else "RGB"), ("RGBA" if has_alpha else "RGB")
    elif mode == "PA":
        im, mode = im.convert("RGBA"), "RGBA"
    elif mode in ("La", "RGBa"):  # premultiplied alpha: undo it, then treat as straight alpha
        mode = "LA" if mode == "La" else "RGBA"
        im = im.convert(mode)
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        try:
            im, mode = im.convert("RGB"), "RGB"
        except (ValueError, OSError) as err:
            raise ImageReadError(f"{path}: unsupported image mode {mode} ({_one_line(err)})") from None
    array = np.asarray(im)
    if array.ndim == 2:
        array = array[:, :, None]
    return array, 8, mode in ("L", "LA"), mode in ("LA", "RGBA")


def read_image(path: str | os.PathLike, *, strict_alpha: bool = False) -> LoadedImage:
    """Read an image file (PNG 8/16-bit, JPEG, BMP, TIFF, WebP) as RGB float32 in [0, 1].

    Args:
        path: the file.
        strict_alpha: raise :class:`ImageReadError` for images with an alpha channel instead
            of dropping it with a warning.

    Returns:
        :class:`LoadedImage` with a 3×H×W float32 tensor (8-bit values k/255, 16-bit k/65535).

    Raises:
        ImageReadError: missing, unreadable, corrupt or truncated file, unsupported mode.
    """
    path = Path(path)
    try:
        with _refuse_truncated(), _own_size_check(), Image.open(path) as im:
            _check_size(im, path)
            raw_mode = _raw_mode(im)  # before anything else reads the file: getexif() may consume the tile list
            im.load()  # decode everything now, so truncation raises here (also for the OpenCV path)
            orientation = _orientation(im)
            array, bit_depth, was_gray, had_alpha = _pixels(im, path, raw_mode)
    except ImageReadError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure means the file is unusable
        raise ImageReadError(f"cannot read image {path}: {_one_line(err)}") from None
    if orientation not in (0, 1):
        warnings.warn(f"{path}: EXIF orientation {orientation} ({_ORIENTATIONS.get(orientation, 'unknown')}) is "
                      "not applied: the image is read as stored, not as viewers show it", stacklevel=2)
    if had_alpha:
        if strict_alpha:
            raise ImageReadError(
                f"{path}: image has an alpha channel and strict_alpha is set; remove the alpha channel"
            )
        warnings.warn(f"{path}: alpha channel dropped (not composited onto a background)", stacklevel=2)
        array = array[:, :, :-1]
    peak = 65535.0 if bit_depth == 16 else 255.0
    tensor = torch.from_numpy(array.astype(np.float32) / np.float32(peak)).permute(2, 0, 1)
    if was_gray:
        tensor = tensor.expand(3, -1, -1)
    return LoadedImage(tensor.contiguous(), bit_depth, was_gray, had_alpha, path, orientation)


def quantize(x: torch.Tensor, bit_depth: int = 8) -> torch.Tensor:
    """Snap to the b-bit grid as saving a PNG does: ``round(clamp(x, 0, 1)·(2^b − 1)) / (2^b − 1)``.

    ``x`` is any float tensor in (about) [0, 1]; returns the same shape and dtype. The product
    is formed in float64, where it is exact for float32/bf16/fp16 inputs, so the only possible
    tie is x = 0.5 and the half-to-even rule of ``torch.round`` (BasicSR's ``np.round``) never
    decides a value. NaN stays NaN.
    """
    levels = float(2**bit_depth - 1)
    v = x.to(torch.float64).clamp(0, 1).mul_(levels).round_()
    return v.div_(levels).to(x.dtype)


def _levels(x: torch.Tensor, bit_depth: int, what: str) -> np.ndarray:
    """Integer levels of a [0, 1] image as an H×W or H×W×3 numpy array (uint8/uint16)."""
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)
    elif x.ndim != 2:
        raise ValueError(f"{what}: expected a 3×H×W, 1×H×W or H×W tensor, got shape {tuple(x.shape)}")
    v = x.detach().to("cpu", torch.float64)
    if torch.isnan(v).any():
        raise ValueError(f"{what}: image contains NaN values")
    levels = 2**bit_depth - 1
    v = v.clamp(0, 1).mul_(levels).round_()
    return v.numpy().astype(np.uint8 if bit_depth == 8 else np.uint16)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """3×H×W float tensor in [0, 1] → H×W×3 uint8 array (1×H×W or H×W → H×W).

    Values are clamped to [0, 1] and rounded as :func:`quantize` does; NaN raises ``ValueError``.
    """
    return _levels(x, 8, "to_uint8")


def _png_bytes(levels: np.ndarray) -> bytes:
    if levels.dtype == np.uint16 and levels.ndim == 3:
        import cv2  # Pillow cannot write 16-bit colour PNG

        ok, buf = cv2.imencode(".png", np.ascontiguousarray(levels[:, :, ::-1]))
        if not ok:
            raise OSError("OpenCV could not encode the 16-bit PNG")
        return buf.tobytes()
    buffer = io.BytesIO()
    Image.fromarray(levels).save(buffer, format="PNG")  # uint16 H×W becomes mode I;16
    return buffer.getvalue()


def write_image(path: str | os.PathLike, x: torch.Tensor, bit_depth: int = 8) -> None:
    """Write a 3×H×W (or 1×H×W / H×W gray) tensor in [0, 1] as an 8- or 16-bit PNG, atomically.

    Values are clamped and rounded as :func:`quantize` does. The file appears complete or not
    at all: the PNG goes to a temporary file in the same folder, is fsynced and then
    ``os.replace``-d onto ``path``. Missing parent folders are created.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"write_image writes PNG files; {path} should end in .png")
    if bit_depth not in (8, 16):
        raise ValueError(f"write_image: bit_depth must be 8 or 16, got {bit_depth} (for {path})")
    data = _png_bytes(_levels(x, bit_depth, f"write_image({path})"))
    atomic_write_bytes(path, data)


def list_images(directory: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Image files in ``directory`` (extensions in :data:`IMAGE_EXTENSIONS`, any case), sorted.

    Hidden files and folders (name starting with '.') are skipped. Order is by the path
    relative to ``directory`` (POSIX form, case-sensitive), so it is the same on every OS.

    Raises:
        FileNotFoundError: the folder does not exist (or is not a folder).
    """
    root = Path(directory)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "not found"
        raise FileNotFoundError(f"image folder {what}: {root}")
    candidates = root.rglob("*") if recursive else root.iterdir()
    found = [
        p
        for p in candidates
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def modcrop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the last two axes (…×H×W) to multiples of ``scale``, keeping the top-left corner.

    Drops the last ``H mod s`` rows and ``W mod s`` columns (BasicSR's ``mod_crop``); returns
    a view.
    """
    s = int(scale)
    if s != scale or s < 1:
        raise ValueError(f"modcrop: scale must be a positive integer, got {scale}")
    h, w = x.shape[-2], x.shape[-1]
    return x[..., : h - h % s, : w - w % s]
