"""Specification of specrob.data: which datasets load, what they look like, and how bad
files are reported."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from specrob import data
from specrob.data import DataError, Dataset, load_data, read_idx, subset

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = data.IDX_FILES
REAL_FASHION = data.FASHION_MNIST_DIR


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes: 0, 0, type code, rank, big-endian uint32 dims, big-endian values."""
    header = struct.pack(">BBBB", 0, 0, IDX_CODES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write `array` as an IDX file, gzipped (with .gz appended to the name) when asked."""
    raw = encode_idx(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def idx_dataset(directory: Path, train: int = 12, test: int = 6, gz: bool = False,
                seed: int = 1) -> dict[str, np.ndarray]:
    """Write a small random 4x3-pixel, 3-class IDX dataset; return what was written."""
    rng = np.random.default_rng(seed)
    arrays = {TRAIN_IMAGES: rng.integers(0, 256, (train, 4, 3), dtype=np.uint8),
              TRAIN_LABELS: rng.integers(0, 3, train).astype(np.uint8),
              TEST_IMAGES: rng.integers(0, 256, (test, 4, 3), dtype=np.uint8),
              TEST_LABELS: rng.integers(0, 3, test).astype(np.uint8)}
    arrays[TRAIN_LABELS][:3] = [0, 1, 2]  # every class present
    for name, array in arrays.items():
        write_idx(directory / name, array, gz)
    return arrays


# --- digits ------------------------------------------------------------------------------

def test_digits_are_flattened_8x8_images_in_the_unit_interval_with_10_classes():
    ds = load_data("digits")
    assert isinstance(ds, Dataset) and ds.name == "digits"
    assert ds.shape == (8, 8) and ds.input_dim == 64 and ds.classes == 10
    assert ds.train_size + ds.test_size == 1797
    assert 0.19 < ds.test_size / 1797 < 0.21
    assert ds.x_train.shape == (ds.train_size, 64) and ds.x_test.shape == (ds.test_size, 64)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 1.0  # 0..16 divided by 16


def test_digits_split_is_stratified_every_class_in_both_splits():
    ds = load_data("digits")
    assert set(ds.y_train) == set(ds.y_test) == set(range(10))
    test_share = np.bincount(ds.y_test) / (np.bincount(ds.y_train) + np.bincount(ds.y_test))
    assert np.all(np.abs(test_share - 0.2) < 0.02)


def test_digits_split_is_deterministic():
    fresh = data._digits.__wrapped__  # bypass the in-process cache
    first, second = fresh(), fresh()
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))


def test_digits_are_cached_and_read_only():
    ds = load_data("digits")
    assert load_data("digits") is ds
    with pytest.raises(ValueError):
        ds.x_train[0, 0] = 0.5


def test_digits_are_sklearn_load_digits_scaled_by_one_sixteenth():
    # Fingerprint of sklearn.datasets.load_digits(): class counts, pixel sum, first image.
    # (specrob reads the CSV that scikit-learn ships instead of importing it, which is slow.)
    ds = load_data("digits")
    y = np.concatenate([ds.y_train, ds.y_test])
    x = np.concatenate([ds.x_train, ds.x_test]).astype(np.float64) * 16
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert x.sum() == 561718.0
    first = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0,
             0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0,
             0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]
    assert first in x.astype(int).tolist()


# --- IDX ---------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_idx_round_trip(tmp_path, gz):
    written = idx_dataset(tmp_path, gz=gz)
    ds = load_data(f"idx:{tmp_path}")
    assert ds.name == tmp_path.name and ds.shape == (4, 3) and ds.classes == 3
    np.testing.assert_allclose(ds.x_train, written[TRAIN_IMAGES].reshape(12, 12) / 255)
    np.testing.assert_allclose(ds.x_test, written[TEST_IMAGES].reshape(6, 12) / 255)
    np.testing.assert_array_equal(ds.y_train, written[TRAIN_LABELS])
    np.testing.assert_array_equal(ds.y_test, written[TEST_LABELS])
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64


def test_idx_plain_and_gzipped_files_can_be_mixed(tmp_path):
    written = idx_dataset(tmp_path)
    (tmp_path / TEST_LABELS).unlink()
    write_idx(tmp_path / TEST_LABELS, written[TEST_LABELS], gz=True)
    np.testing.assert_array_equal(load_data(f"idx:{tmp_path}").y_test, written[TEST_LABELS])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_read_idx_decodes_every_idx_type(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 100).astype(dtype)
    decoded = read_idx(write_idx(tmp_path / "a-idx3", array))
    assert decoded.dtype == np.dtype(dtype) and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, array)


def test_idx_float_pixels_are_kept_as_they_are(tmp_path):
    written = idx_dataset(tmp_path)
    pixels = (written[TRAIN_IMAGES] / 255).astype(np.float64)
    write_idx(tmp_path / TRAIN_IMAGES, pixels)
    np.testing.assert_allclose(load_data(f"idx:{tmp_path}").x_train, pixels.reshape(12, -1))


def _bad_magic(raw: bytes) -> bytes:
    return b"\x01" + raw[1:]


def _truncated(raw: bytes) -> bytes:
    return raw[:-5]


def _unknown_type(raw: bytes) -> bytes:
    return raw[:2] + b"\x42" + raw[3:]


def _short_header(raw: bytes) -> bytes:
    return raw[:9]


@pytest.mark.parametrize("corrupt, words", [
    (_bad_magic, "magic"), (_truncated, "truncated"), (_unknown_type, "type code"),
    (_short_header, "header")])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_corrupt_idx_file_is_reported_by_name(tmp_path, corrupt, words, gz):
    idx_dataset(tmp_path, gz=gz)
    path = tmp_path / (TRAIN_IMAGES + (".gz" if gz else ""))
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    bad = corrupt(raw)
    path.write_bytes(gzip.compress(bad) if gz else bad)
    with pytest.raises(DataError, match=words) as error:
        load_data(f"idx:{tmp_path}")
    assert TRAIN_IMAGES in str(error.value)


def test_truncated_gzip_stream_is_reported_by_name(tmp_path):
    idx_dataset(tmp_path, gz=True)
    path = tmp_path / f"{TEST_IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=TEST_IMAGES):
        load_data(f"idx:{tmp_path}")


def test_label_count_mismatch_names_both_files(tmp_path):
    written = idx_dataset(tmp_path)
    write_idx(tmp_path / TRAIN_LABELS, written[TRAIN_LABELS][:-1])
    with pytest.raises(DataError, match="12 images.*11 labels") as error:
        load_data(f"idx:{tmp_path}")
    assert TRAIN_IMAGES in str(error.value) and TRAIN_LABELS in str(error.value)


def test_train_and_test_images_must_have_the_same_shape(tmp_path):
    idx_dataset(tmp_path)
    write_idx(tmp_path / TEST_IMAGES, np.zeros((6, 3, 4), np.uint8))
    with pytest.raises(DataError, match=TEST_IMAGES):
        load_data(f"idx:{tmp_path}")


def test_missing_idx_file_is_named(tmp_path):
    idx_dataset(tmp_path)
    (tmp_path / TEST_LABELS).unlink()
    with pytest.raises(DataError, match=f"{TEST_LABELS}.*not found"):
        load_data(f"idx:{tmp_path}")


def test_missing_idx_directory_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere.*not found"):
        load_data(f"idx:{tmp_path / 'nowhere'}")


# --- Fashion-MNIST ------------------------------------------------------------------------

def test_fashion_mnist_reads_idx_files_from_a_given_directory(tmp_path):
    idx_dataset(tmp_path, gz=True)
    ds = load_data(f"fashion-mnist:{tmp_path}")
    assert ds.name == "fashion-mnist" and ds.train_size == 12 and ds.test_size == 6


def test_missing_fashion_mnist_directory_says_how_to_install(tmp_path):
    missing = tmp_path / "fashion"
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as error:
        load_data(f"fashion-mnist:{missing}")
    assert str(missing) in str(error.value) and "fashion-mnist:DIR" in str(error.value)


def test_without_the_debian_package_fashion_mnist_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        load_data("fashion-mnist")


def test_missing_fashion_mnist_file_says_how_to_install(tmp_path):
    idx_dataset(tmp_path)
    (tmp_path / TRAIN_IMAGES).unlink()
    with pytest.raises(DataError, match=f"{TRAIN_IMAGES}.*dataset-fashion-mnist"):
        load_data(f"fashion-mnist:{tmp_path}")


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason=f"{REAL_FASHION} is not installed")
def test_real_fashion_mnist():
    ds = load_data("fashion-mnist")
    assert (ds.train_size, ds.test_size, ds.shape, ds.classes) == (60000, 10000, (28, 28), 10)
    assert 0.0 <= ds.x_test.min() and ds.x_test.max() <= 1.0
    np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)


# --- npz -----------------------------------------------------------------------------------

def save_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_with_test_arrays_keeps_them_and_records_the_shape(tmp_path):
    rng = np.random.default_rng(0)
    x, x_test = rng.random((10, 2, 3)), rng.random((4, 2, 3))
    y, y_test = np.arange(10) % 4, np.arange(4)
    ds = load_data(str(save_npz(tmp_path / "toy.npz", x=x, y=y, x_test=x_test, y_test=y_test)))
    assert ds.name == "toy" and ds.shape == (2, 3) and ds.input_dim == 6 and ds.classes == 4
    np.testing.assert_allclose(ds.x_train, x.reshape(10, 6).astype(np.float32))
    np.testing.assert_allclose(ds.x_test, x_test.reshape(4, 6).astype(np.float32))
    np.testing.assert_array_equal(ds.y_train, y)
    assert ds.x_train.dtype == np.float32 and ds.y_test.dtype == np.int64


def test_npz_without_test_arrays_is_split_deterministically_and_stratified(tmp_path):
    n = 100
    x = (np.arange(n, dtype=np.float32) / n)[:, None]  # row i is identifiable by x = i/n
    y = np.repeat(np.arange(5), n // 5)  # sorted by class, as files often are
    path = str(save_npz(tmp_path / "sorted.npz", x=x, y=y))
    first, second = load_data(path), load_data(path)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.x_test, second.x_test)
    rows = np.round(np.concatenate([first.x_train, first.x_test])[:, 0] * n).astype(int)
    assert sorted(rows) == list(range(n))  # a partition: nothing lost, nothing doubled
    assert list(np.bincount(first.y_test)) == [4] * 5
    assert set(first.y_train[:10]) != {first.y_train[0]}  # classes are mixed, not sorted


def test_npz_integral_float_labels_and_bool_inputs_are_accepted(tmp_path):
    path = save_npz(tmp_path / "b.npz", x=np.eye(10, dtype=bool), y=np.arange(10.0) % 2)
    ds = load_data(str(path))
    assert ds.classes == 2 and ds.x_train.dtype == np.float32


@pytest.mark.parametrize("arrays, words", [
    (dict(x=np.zeros((4, 2))), "missing array.*y"),
    (dict(y=np.zeros(4, int)), "missing array.*x"),
    (dict(x=np.array([["a", "b"]] * 4), y=np.zeros(4, int)), "cannot be cast"),
    (dict(x=np.zeros((4, 2)), y=np.array([0.5, 1, 0, 1])), "integer class labels"),
    (dict(x=np.zeros((4, 2)), y=np.zeros(3, int)), "4 points but y has 3 labels"),
    (dict(x=np.full((4, 2), 255.0), y=np.zeros(4, int)), r"domain \[0, 1\]"),
    (dict(x=np.full((4, 2), -0.1), y=np.zeros(4, int)), r"domain \[0, 1\]"),
    (dict(x=np.full((4, 2), np.nan), y=np.zeros(4, int)), r"domain \[0, 1\]"),
    (dict(x=np.zeros((4, 2)), y=-np.ones(4, int)), ">= 0"),
    (dict(x=np.zeros(4), y=np.zeros(4, int)), r"shape \(N, \.\.\.\)"),
    (dict(x=np.zeros((4, 2)), y=np.zeros(4, int), x_test=np.zeros((2, 2))), "both or neither"),
    (dict(x=np.zeros((4, 2)), y=np.zeros(4, int), x_test=np.zeros((2, 3)),
          y_test=np.zeros(2, int)), "x_test has samples of shape"),
    (dict(x=np.zeros((1, 2)), y=np.zeros(1, int)), "too few points"),
])
def test_malformed_npz_is_reported_by_name(tmp_path, arrays, words):
    path = save_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=words) as error:
        load_data(str(path))
    assert "bad.npz" in str(error.value)


def test_npz_that_is_not_an_archive_is_reported(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="junk.npz"):
        load_data(str(path))


def test_missing_npz_is_reported(tmp_path):
    with pytest.raises(DataError, match="absent.npz.*not found"):
        load_data(str(tmp_path / "absent.npz"))


# --- spec strings and subsets --------------------------------------------------------------

@pytest.mark.parametrize("spec, suggestion", [
    ("digit", "'digits'"), ("fashion_mnist", "'fashion-mnist'"), ("idy:/data", "'idx:DIR'")])
def test_misspelt_spec_gets_a_suggestion(spec, suggestion):
    with pytest.raises(DataError, match=f"did you mean {suggestion}"):
        load_data(spec)


def test_unknown_spec_lists_the_accepted_forms():
    with pytest.raises(DataError) as error:
        load_data("banana")
    message = str(error.value)
    assert "did you mean" not in message
    for form in ("digits", "fashion-mnist:DIR", "idx:DIR", "PATH.npz"):
        assert form in message


@pytest.mark.parametrize("spec", ["idx:", "fashion-mnist:"])
def test_directory_forms_need_a_directory(spec):
    with pytest.raises(DataError, match="directory"):
        load_data(spec)


def test_subset_takes_the_first_points():
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    xs, ys = subset(x, y, 3)
    np.testing.assert_array_equal(xs, x[:3])
    np.testing.assert_array_equal(ys, y[:3])
    assert all(a is b for a, b in zip(subset(x, y, None), (x, y)))
    assert len(subset(x, y, 0)[0]) == 0 and len(subset(x, y, 99)[1]) == 10
    with pytest.raises(DataError):
        subset(x, y, -1)
