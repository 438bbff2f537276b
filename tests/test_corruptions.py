"""Corruption families: shapes, ranges and seeds kept; each checked against what it must
compute (a quarter turn against np.rot90, a whole-pixel shift against np.roll, the contrast
about the image mean, the noise levels' standard deviations)."""
from __future__ import annotations

import numpy as np
import pytest

from specrob.corruptions import (CORRUPTIONS, CorruptionError, _affine, corrupt,
                                 rotation_matrices)
from specrob.data import load_data

X = load_data("digits").x_test[:50]  # (50, 64): 8x8 images in [0, 1]


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_every_family_keeps_the_shape_and_range_and_is_seeded(kind):
    out = corrupt(X, kind, severity=3, seed=1)
    assert out.shape == X.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out, corrupt(X, kind, severity=3, seed=1))
    assert not np.allclose(out, X)  # it changes the images


@pytest.mark.parametrize("kind", ["gaussian-noise", "impulse-noise", "gaussian-blur",
                                  "contrast", "rotate", "scale"])
def test_a_higher_severity_moves_the_images_further(kind):
    moved = [np.abs(corrupt(X, kind, severity=s, seed=0) - X).mean() for s in (1, 3, 5)]
    assert moved[0] < moved[1] < moved[2]


def test_a_numpy_integer_severity_is_a_severity():
    np.testing.assert_array_equal(corrupt(X, "rotate", severity=np.int64(2)),
                                  corrupt(X, "rotate", severity=2))


def test_a_quarter_turn_is_np_rot90():
    img = np.random.default_rng(0).random((1, 7, 7))
    out = _affine(img, rotation_matrices(np.array([90.0])))
    np.testing.assert_allclose(out[0], np.rot90(img[0], k=1), atol=1e-12)


def test_translate_by_whole_pixels_is_a_shift_with_zeros_coming_in():
    from specrob.corruptions import translate

    class Right:  # a generator whose angle is 0: a shift along the columns
        @staticmethod
        def uniform(low, high, size):
            return np.zeros(size)
    img = np.random.default_rng(1).random((2, 28, 28))
    out = translate(img, 2, Right())  # severity 2: 2 pixels at side 28
    want = np.roll(img, 2, axis=2)
    want[:, :, :2] = 0.0
    np.testing.assert_allclose(out, want, atol=1e-12)


def test_contrast_keeps_each_image_mean_and_shrinks_its_spread():
    out = corrupt(X, "contrast", severity=5).astype(np.float64)
    np.testing.assert_allclose(out.mean(1), X.mean(1), atol=1e-6)
    np.testing.assert_allclose(out.std(1), 0.15 * X.std(1), rtol=1e-5, atol=1e-6)


def test_gaussian_noise_has_the_cifar_c_standard_deviation_before_clipping():
    mid = np.full((2000, 64), 0.5)
    noise = corrupt(mid, "gaussian-noise", severity=5, seed=3) - 0.5
    assert noise.std() == pytest.approx(0.10, rel=0.02)
    hits = (corrupt(mid, "impulse-noise", severity=5, seed=3) != 0.5).mean()
    assert hits == pytest.approx(0.07, rel=0.05)


@pytest.mark.parametrize("kind, severity, x, message", [
    ("fog", 3, X, "unknown corruption 'fog': choose one of gaussian-noise"),
    ("rotate", 0, X, "severity 0: give a whole number from 1 to 5"),
    ("rotate", True, X, "severity True"),
    ("rotate", 2.5, X, "severity 2.5"),
    ("rotate", 3, X[:, :60], "rows of 60 values are not square"),
    ("rotate", 3, X.reshape(-1, 8, 8), "rows of flattened images"),
    ("rotate", 3, X * 255, "in \\[0, 1\\] \\(scale 8-bit images by 1/255\\)"),
])
def test_bad_requests_are_refused_with_the_fix(kind, severity, x, message):
    with pytest.raises(CorruptionError, match=message):
        corrupt(x, kind, severity=severity)
