"""Common corruptions of grayscale images, made offline with numpy and scipy: the shifted
distributions of Tibo et al.'s transfer experiment (seed 001, section 4, on C-MNIST) for data
that has no corrupted test set of its own (Fashion-MNIST, digits).

Each family takes a severity 1..5 with the constants CIFAR-10-C uses for its 32x32 images
(Hendrycks & Dietterich, ICLR 2019; their released `make_cifar_c.py`), where that family is in
CIFAR-10-C; the geometric families (rotate, shear, scale, translate: MNIST-C's, Mu & Gilmer
2019) take the ranges named at each function. Everything works on flat rows of square images
with pixels in [0, 1] and returns rows of the same shape, clipped to [0, 1]; the same seed gives
the same corrupted images.

scipy.ndimage does the filtering and the resampling (a well-kept library; the noise families are
one line of numpy each).
"""
from __future__ import annotations

import math
import numbers
from typing import Callable

import numpy as np

from specrob.errors import SpecrobError


class CorruptionError(SpecrobError):
    """An unknown corruption, a severity outside 1..5, or rows that are not square images."""


Family = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
"""(images (N, side, side) in [0, 1], severity 1..5, generator) -> images (N, side, side)."""


def _level(values, severity: int):
    return values[severity - 1]


def gaussian_noise(x, severity, rng):
    """x + N(0, c^2), c in (0.04, 0.06, 0.08, 0.09, 0.10) (CIFAR-10-C)."""
    return x + rng.normal(scale=_level((0.04, 0.06, 0.08, 0.09, 0.10), severity), size=x.shape)


def shot_noise(x, severity, rng):
    """Poisson(x c) / c, c in (500, 250, 100, 75, 50) (CIFAR-10-C)."""
    c = _level((500, 250, 100, 75, 50), severity)
    return rng.poisson(x * c) / c


def impulse_noise(x, severity, rng):
    """Salt and pepper: a share c of the pixels set to 0 or 1 (half each), c in (0.01, 0.02,
    0.03, 0.05, 0.07) (CIFAR-10-C)."""
    amount = _level((0.01, 0.02, 0.03, 0.05, 0.07), severity)
    hit = rng.random(x.shape) < amount
    salt = rng.random(x.shape) < 0.5
    return np.where(hit, salt.astype(x.dtype), x)


def speckle_noise(x, severity, rng):
    """x + x N(0, c^2), c in (0.06, 0.1, 0.12, 0.16, 0.2) (CIFAR-10-C)."""
    c = _level((0.06, 0.1, 0.12, 0.16, 0.2), severity)
    return x + x * rng.normal(scale=c, size=x.shape)


def gaussian_blur(x, severity, rng):
    """A Gaussian filter of standard deviation c pixels, c in (0.4, 0.6, 0.7, 0.8, 1)
    (CIFAR-10-C)."""
    from scipy import ndimage
    sigma = _level((0.4, 0.6, 0.7, 0.8, 1.0), severity)
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma), mode="nearest")


def contrast(x, severity, rng):
    """(x - mean) c + mean per image, c in (0.75, 0.5, 0.4, 0.3, 0.15) (CIFAR-10-C)."""
    c = _level((0.75, 0.5, 0.4, 0.3, 0.15), severity)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) * c + mean


def brightness(x, severity, rng):
    """x + c, c in (0.05, 0.1, 0.15, 0.2, 0.3) (CIFAR-10-C's value shift, on gray levels)."""
    return x + _level((0.05, 0.1, 0.15, 0.2, 0.3), severity)


def _affine(x: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Each image resampled (bilinear, zeros outside) under its own 2x2 map about the centre."""
    from scipy import ndimage
    centre = (np.array(x.shape[1:]) - 1) / 2.0
    out = np.empty_like(x)
    for k, m in enumerate(matrices):
        # output pixel o reads input m (o - c) + c
        out[k] = ndimage.affine_transform(x[k], m, offset=centre - m @ centre, order=1,
                                          mode="constant", cval=0.0)
    return out


def rotation_matrices(degrees: np.ndarray) -> np.ndarray:
    """(N, 2, 2) maps that rotate images by `degrees` (counter-clockwise on screen)."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    return np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], -2)


def rotate(x, severity, rng):
    """Rotation by c degrees in a random direction, c in (5, 10, 15, 20, 30) (MNIST-C rotates
    by up to 30 degrees)."""
    angle = _level((5, 10, 15, 20, 30), severity) * rng.choice((-1.0, 1.0), size=len(x))
    return _affine(x, rotation_matrices(angle))


def shear(x, severity, rng):
    """Horizontal shear by a factor c in a random direction, c in (0.1, 0.2, 0.3, 0.4, 0.5)
    (MNIST-C shears by up to 0.5)."""
    c = _level((0.1, 0.2, 0.3, 0.4, 0.5), severity) * rng.choice((-1.0, 1.0), size=len(x))
    m = np.zeros((len(x), 2, 2))
    m[:, 0, 0] = m[:, 1, 1] = 1.0
    m[:, 1, 0] = c
    return _affine(x, m)


def scale(x, severity, rng):
    """Zoom out about the centre by a factor c in (0.9, 0.8, 0.7, 0.6, 0.5) (MNIST-C scales
    down to 0.5)."""
    c = _level((0.9, 0.8, 0.7, 0.6, 0.5), severity)
    return _affine(x, np.broadcast_to(np.eye(2) / c, (len(x), 2, 2)))


def translate(x, severity, rng):
    """A shift by c pixels in a random direction (angle uniform), c in (1, 2, 3, 4, 5) for
    28-pixel images (scaled with the side; MNIST-C translates by up to a few pixels)."""
    from scipy import ndimage
    c = _level((1, 2, 3, 4, 5), severity) * x.shape[1] / 28.0
    angles = rng.uniform(0, 2 * math.pi, size=len(x))
    out = np.empty_like(x)
    for k, a in enumerate(angles):
        out[k] = ndimage.shift(x[k], (c * math.sin(a), c * math.cos(a)), order=1,
                               mode="constant", cval=0.0)
    return out


CORRUPTIONS: dict[str, Family] = {
    "gaussian-noise": gaussian_noise, "shot-noise": shot_noise,
    "impulse-noise": impulse_noise, "speckle-noise": speckle_noise,
    "gaussian-blur": gaussian_blur, "contrast": contrast, "brightness": brightness,
    "rotate": rotate, "shear": shear, "scale": scale, "translate": translate,
}


def corrupt(x: np.ndarray, kind: str, *, severity: int = 3, seed: int = 0) -> np.ndarray:
    """The rows of `x` corrupted by one family of `CORRUPTIONS`.

    Shape: x (N, side * side) in [0, 1] -> (N, side * side) float32 in [0, 1].
    Raises CorruptionError for an unknown family (the choices named), a severity outside
    1..5, pixels outside [0, 1], or rows that are not square images. Source: Hendrycks & Dietterich 2019 (CIFAR-10-C
    constants), Mu & Gilmer 2019 (MNIST-C's geometric families); used as Tibo et al.'s shifted
    distributions (seed 001, section 4)."""
    if kind not in CORRUPTIONS:
        raise CorruptionError(f"unknown corruption '{kind}': choose one of "
                              f"{', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) \
            or not 1 <= severity <= 5:
        raise CorruptionError(f"severity {severity!r}: give a whole number from 1 to 5")
    severity = int(severity)  # numpy integers too
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise CorruptionError(f"corrupt takes rows of flattened images (N, side * side), got "
                              f"shape {x.shape}")
    if x.size and (not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1):
        raise CorruptionError("pixels must be finite numbers in [0, 1] (scale 8-bit images "
                              "by 1/255)")
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise CorruptionError(f"rows of {x.shape[1]} values are not square grayscale images")
    rng = np.random.default_rng(seed)
    images = CORRUPTIONS[kind](x.reshape(-1, side, side), severity, rng)
    return np.clip(images, 0.0, 1.0).reshape(x.shape).astype(np.float32)
