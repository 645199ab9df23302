"""Blur kernels of the Real-ESRGAN degradation model, and their seeded sampling.

Real-ESRGAN: Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure
Synthetic Data", ICCVW 2021, Sec. 3.2 ("Blur"); definitions as in XPixelGroup/BasicSR
``basicsr/data/degradations.py`` (``bivariate_Gaussian``, ``bivariate_generalized_Gaussian``,
``bivariate_plateau``, ``circular_lowpass_kernel``, ``random_mixed_kernels``) and
``basicsr/data/realesrgan_dataset.py`` (kernel sizes, sinc cut-off ranges, pad to 21, pulse).

A kernel is described by a small JSON-able dict (a *kernel spec*): ``{"type", "size", ...}``.
:func:`sample_blur_kernel` / :func:`sample_final_sinc` draw specs from explicitly passed RNGs
(no global RNG); :func:`build_kernel` turns a spec into a float64 array. Keeping the spec and not
the array makes the per-image parameter sidecar small and readable.

Notation (Real-ESRGAN Sec. 3.2): ``k(i, j) = f(x) / Σ f`` over a ``size × size`` grid of
integer offsets ``x = (i, j)`` centred on zero, with the rotated covariance
``Σ = R(θ) diag(σ_x², σ_y²) R(θ)ᵀ``. ``i`` runs along columns (x, rightwards) and ``j`` along
rows (y, downwards), as in BasicSR's ``mesh_grid``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

#: Kernel families of ``random_mixed_kernels``, in BasicSR's ``kernel_list`` order.
KERNEL_TYPES: tuple[str, ...] = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)

#: Kernels are zero-padded to this size so that a batch shares one shape (realesrgan_dataset.py).
KERNEL_PAD_TO = 21

#: Below this size the sinc cut-off is drawn from U(π/3, π), otherwise from U(π/5, π): a small
#: support cannot represent a very low cut-off (realesrgan_dataset.py, "this sinc filter setting
#: is for kernels ranging from [7, 21]").
SINC_SMALL_SIZE = 13


# ----------------------------------------------------------------------------- closed forms


def mesh_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer offsets ``(xx, yy)``, each ``size × size``, centred on zero (``size`` odd)."""
    if size % 2 != 1 or size < 1:
        raise ValueError(f"kernel size must be a positive odd number, got {size}")
    ax = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)  # xx varies along columns, yy along rows
    return xx, yy


def sigma_matrix(sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """Rotated covariance ``Σ = R(θ) diag(σ_x², σ_y²) R(θ)ᵀ`` (Real-ESRGAN Eq. 2)."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T


def _mahalanobis_sq(size: int, sigma_x: float, sigma_y: float, theta: float, isotropic: bool) -> np.ndarray:
    """``xᵀ Σ⁻¹ x`` on the kernel grid; isotropic kernels use ``σ_y = σ_x`` and ``θ = 0``."""
    if isotropic:
        sigma_y, theta = sigma_x, 0.0
    inv = np.linalg.inv(sigma_matrix(sigma_x, sigma_y, theta))
    xx, yy = mesh_grid(size)
    return inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy


def bivariate_gaussian(
    size: int, sigma_x: float, sigma_y: float = 0.0, theta: float = 0.0, *, isotropic: bool = True
) -> np.ndarray:
    """Gaussian kernel ``k ∝ exp(-½ xᵀ Σ⁻¹ x)`` (Real-ESRGAN Eq. 2), normalised to sum 1."""
    k = np.exp(-0.5 * _mahalanobis_sq(size, sigma_x, sigma_y, theta, isotropic))
    return k / k.sum()


def bivariate_generalized_gaussian(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float, *, isotropic: bool = True
) -> np.ndarray:
    """Generalized Gaussian ``k ∝ exp(-½ (xᵀ Σ⁻¹ x)^β)`` (Real-ESRGAN Sec. 3.2; β = 1: Gaussian)."""
    k = np.exp(-0.5 * np.power(_mahalanobis_sq(size, sigma_x, sigma_y, theta, isotropic), beta))
    return k / k.sum()


def bivariate_plateau(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float, *, isotropic: bool = True
) -> np.ndarray:
    """Plateau kernel ``k ∝ 1 / (1 + (xᵀ Σ⁻¹ x)^β)`` (Real-ESRGAN Sec. 3.2)."""
    k = np.reciprocal(np.power(_mahalanobis_sq(size, sigma_x, sigma_y, theta, isotropic), beta) + 1.0)
    return k / k.sum()


def circular_lowpass_kernel(omega_c: float, size: int, pad_to: int = 0) -> np.ndarray:
    """Ideal circular low-pass (2-D sinc) kernel, Real-ESRGAN Eq. 3, normalised to sum 1.

    ``k(r) = ω_c J₁(ω_c r) / (2π r)`` with ``r`` the distance to the centre and ``J₁`` the
    first-order Bessel function of the first kind; the centre takes the limit ``ω_c² / (4π)``.
    ``omega_c`` is the cut-off in radians per pixel (π is Nyquist). Zero-padded to ``pad_to``.
    """
    xx, yy = mesh_grid(size)
    r = np.hypot(xx, yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = omega_c * special.j1(omega_c * r) / (2.0 * np.pi * r)
    k[size // 2, size // 2] = omega_c**2 / (4.0 * np.pi)
    k = k / k.sum()
    return pad_kernel(k, pad_to) if pad_to > size else k


def pad_kernel(kernel: np.ndarray, size: int = KERNEL_PAD_TO) -> np.ndarray:
    """Zero-pad a square odd kernel symmetrically to ``size × size`` (a no-op if already that big)."""
    pad = (size - kernel.shape[-1]) // 2
    if pad < 0:
        raise ValueError(f"kernel of size {kernel.shape[-1]} does not fit in {size}×{size}")
    return np.pad(kernel, ((pad, pad), (pad, pad)))


def delta_kernel(size: int = KERNEL_PAD_TO) -> np.ndarray:
    """The pulse kernel (identity filter), BasicSR's ``pulse_tensor``."""
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1.0
    return k


def build_kernel(spec: dict[str, Any], pad_to: int = KERNEL_PAD_TO) -> np.ndarray:
    """The float64 ``pad_to × pad_to`` kernel described by a kernel spec (see module docstring)."""
    kind = spec["type"]
    if kind == "delta":
        return delta_kernel(pad_to)
    size = int(spec["size"])
    if kind == "sinc":
        k = circular_lowpass_kernel(spec["omega_c"], size)
    elif kind in ("iso", "aniso"):
        k = bivariate_gaussian(size, spec["sigma_x"], spec["sigma_y"], spec["theta"], isotropic=kind == "iso")
    elif kind in ("generalized_iso", "generalized_aniso"):
        k = bivariate_generalized_gaussian(
            size,
            spec["sigma_x"],
            spec["sigma_y"],
            spec["theta"],
            spec["beta"],
            isotropic=kind == "generalized_iso",
        )
    elif kind in ("plateau_iso", "plateau_aniso"):
        k = bivariate_plateau(
            size,
            spec["sigma_x"],
            spec["sigma_y"],
            spec["theta"],
            spec["beta"],
            isotropic=kind == "plateau_iso",
        )
    else:
        raise ValueError(f"unknown kernel type {kind!r}; expected one of {KERNEL_TYPES + ('sinc', 'delta')}")
    return pad_kernel(k, pad_to)


# ----------------------------------------------------------------------------- sampling


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _sample_beta(rng: np.random.Generator, beta_range: Sequence[float]) -> float:
    """β ~ U(β_min, 1) or U(1, β_max) with probability ½ each (``random_bivariate_*``)."""
    if rng.uniform() < 0.5:
        return _uniform(rng, beta_range[0], 1.0)
    return _uniform(rng, 1.0, beta_range[1])


def sample_sinc_cutoff(rng: np.random.Generator, size: int) -> float:
    """ω_c ~ U(π/3, π) for sizes < 13, else U(π/5, π) (realesrgan_dataset.py)."""
    low = math.pi / 3 if size < SINC_SMALL_SIZE else math.pi / 5
    return _uniform(rng, low, math.pi)


def sample_mixed_kernel(
    rng: np.random.Generator,
    py_rng: random.Random,
    size: int,
    kernel_list: Sequence[str],
    kernel_prob: Sequence[float],
    sigma_range: Sequence[float],
    betag_range: Sequence[float],
    betap_range: Sequence[float],
) -> dict[str, Any]:
    """Spec of one kernel from ``random_mixed_kernels``: family by ``kernel_prob``, then its parameters.

    σ_x ~ U(sigma_range); anisotropic kernels also draw σ_y ~ U(sigma_range) and θ ~ U(-π, π)
    (BasicSR passes the same range for x and y); β per :func:`_sample_beta`.
    """
    kind = py_rng.choices(list(kernel_list), weights=list(kernel_prob))[0]
    isotropic = kind.endswith("iso") and not kind.endswith("aniso")
    sigma_x = _uniform(rng, *sigma_range)
    if isotropic:
        sigma_y, theta = sigma_x, 0.0
    else:
        sigma_y = _uniform(rng, *sigma_range)
        theta = _uniform(rng, -math.pi, math.pi)
    spec: dict[str, Any] = {
        "type": kind,
        "size": size,
        "sigma_x": sigma_x,
        "sigma_y": sigma_y,
        "theta": theta,
    }
    if kind.startswith("generalized"):
        spec["beta"] = _sample_beta(rng, betag_range)
    elif kind.startswith("plateau"):
        spec["beta"] = _sample_beta(rng, betap_range)
    return spec


def sample_blur_kernel(
    rng: np.random.Generator,
    py_rng: random.Random,
    *,
    sizes: Sequence[int],
    sinc_prob: float,
    kernel_list: Sequence[str],
    kernel_prob: Sequence[float],
    sigma_range: Sequence[float],
    betag_range: Sequence[float],
    betap_range: Sequence[float],
) -> dict[str, Any]:
    """Spec of a first- or second-order blur kernel (realesrgan_dataset.py ``__getitem__``).

    size ~ uniform over ``sizes``; with ``sinc_prob`` a sinc kernel (:func:`sample_sinc_cutoff`),
    otherwise a mixed kernel (:func:`sample_mixed_kernel`).
    """
    size = int(py_rng.choice(list(sizes)))
    if rng.uniform() < sinc_prob:
        return {"type": "sinc", "size": size, "omega_c": sample_sinc_cutoff(rng, size)}
    return sample_mixed_kernel(
        rng, py_rng, size, kernel_list, kernel_prob, sigma_range, betag_range, betap_range
    )


def sample_final_sinc(
    rng: np.random.Generator, py_rng: random.Random, *, sizes: Sequence[int], prob: float
) -> dict[str, Any]:
    """Spec of the final filter: with ``prob`` a sinc kernel, ω_c ~ U(π/3, π); else the pulse."""
    if rng.uniform() < prob:
        size = int(py_rng.choice(list(sizes)))
        return {"type": "sinc", "size": size, "omega_c": _uniform(rng, math.pi / 3, math.pi)}
    return {"type": "delta"}
