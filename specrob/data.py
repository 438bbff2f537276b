"""Datasets for training, evaluating and verifying classifiers, loaded with numpy alone.

`load_data(spec)` accepts:

    digits                 scikit-learn's 8x8 digits (embedded, the default)
    fashion-mnist[:DIR]    Fashion-MNIST IDX files (Debian package `dataset-fashion-mnist`)
    idx:DIR                any dataset in the IDX layout of MNIST
    PATH.npz               arrays x, y and optionally x_test, y_test (or x_train, y_train,
                           x_test, y_test)

An .npz of x and y alone is split 80/20 for training (`split=True`, the default); with
`split=False` (evaluation, verification, export: `specrob eval/verify/export`) it is the list
of points as given, in the file's order: both splits are the whole file, so a centre's index
is its index in the file.

Inputs are float32 in the input domain [0, 1], flattened to (N, n); labels are int64.
Every array is read-only, so a cached dataset cannot be changed behind its users' backs.
"""
from __future__ import annotations

from specrob.errors import SpecrobError

import difflib
import gzip
import importlib.util
import math
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import cast

import numpy as np

__all__ = ["Dataset", "DataError", "load_data", "subset", "read_idx", "check_labels",
           "FASHION_MNIST_DIR"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's `dataset-fashion-mnist` installs the files."""

FORMS = {
    "digits": "scikit-learn's 8x8 digits (embedded)",
    "fashion-mnist": f"Fashion-MNIST from {FASHION_MNIST_DIR}",
    "fashion-mnist:DIR": "Fashion-MNIST IDX files in DIR",
    "idx:DIR": "any IDX dataset (e.g. MNIST) in DIR",
    "PATH.npz": "arrays x, y (and optionally x_test, y_test)",
}

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# IDX type code -> big-endian numpy dtype.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

TEST_FRACTION = 0.2
SPLIT_SEED = 0


class DataError(SpecrobError):
    """A dataset could not be loaded; the message names the file and how to fix it."""


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A classification dataset: flattened inputs in [0, 1], int labels, a fixed test split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    shape: tuple[int, ...]
    classes: int  # 1 + the largest label present (a model may have more outputs)
    given: bool = False  # an .npz of x, y read as given: x_train is x_test is the file
    label_names: tuple[str, str] = ("training labels", "test labels")  # in messages

    @property
    def input_dim(self) -> int:
        """Length n of a flattened input, the product of `shape`."""
        return self.x_train.shape[1]

    @property
    def train_size(self) -> int:
        """Number of training points."""
        return len(self.y_train)

    @property
    def test_size(self) -> int:
        """Number of test points."""
        return len(self.y_test)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={self.train_size}, test={self.test_size}, "
                f"shape={self.shape}, classes={self.classes})")


def load_data(spec: str, split: bool = True) -> Dataset:
    """Load the dataset named by `spec` (see the module docstring for the forms). `split`:
    whether an .npz of x and y alone is split into training and test points (for training)
    or read as the list of points as given (for evaluation and verification)."""
    spec = spec.strip()
    head, sep, rest = spec.partition(":")
    if spec == "digits":
        return _digits()
    if head == "fashion-mnist":
        if sep and not rest:
            raise DataError("fashion-mnist: needs a directory after the colon, "
                            "e.g. fashion-mnist:/data/fashion-mnist")
        directory = Path(rest).expanduser() if sep else FASHION_MNIST_DIR
        return _load_idx_dir(directory, "fashion-mnist", fashion=True)
    if head == "idx" and sep:
        if not rest:
            raise DataError("idx: needs a directory, e.g. idx:/data/mnist")
        directory = Path(rest).expanduser()
        return _load_idx_dir(directory, directory.name or "idx", fashion=False)
    if spec.lower().endswith(".npz"):
        return _load_npz(Path(spec).expanduser(), split)
    raise DataError(_unknown_spec_message(spec))


def check_labels(y, classes: int, what: str) -> None:
    """Labels must be classes of the model: 0 <= label < `classes` (its number of outputs).
    Raises DataError naming the first bad index; `what` names the labels (e.g. "pts.npz: y")."""
    y = np.asarray(y)
    bad = np.flatnonzero((y < 0) | (y >= classes))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{what}[{i}] = {int(y[i])} is not a class of the model, which has "
                        f"{classes} outputs (labels 0..{classes - 1}); {len(bad)} label"
                        f"{'s' if len(bad) > 1 else ''} out of range in all")


def subset(x: np.ndarray, y: np.ndarray, count: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` points (all when None or when fewer exist), so runs are repeatable."""
    if count is None:
        return x, y
    if count < 0:
        raise DataError(f"the number of points must be >= 0, got {count}")
    return x[:count], y[:count]


def _unknown_spec_message(spec: str) -> str:
    """Explain the accepted forms, suggesting the nearest one for a misspelling."""
    forms = "\n".join(f"  {form:<19} {what}" for form, what in FORMS.items())
    head = spec.partition(":")[0].lower()
    close = difflib.get_close_matches(head, ["digits", "fashion-mnist", "idx"], n=1, cutoff=0.6)
    suggestion = {"idx": "idx:DIR"}.get(close[0], close[0]) if close else None
    hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
    return f"unknown dataset {spec!r}{hint}; the accepted forms are:\n{forms}"


# --- digits ----------------------------------------------------------------------------------

@cache
def _digits() -> Dataset:
    """scikit-learn's digits scaled to [0, 1], split once; cached because it is used a lot."""
    flat, target = _digits_arrays()
    x = flat.reshape(-1, 8, 8).astype(np.float32) / np.float32(16.0)
    y = target.astype(np.int64)
    train, test = _split(y)
    return _dataset("digits", x[train], y[train], x[test], y[test])


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits (values 0..16) and labels that `sklearn.datasets.load_digits` returns.

    Importing sklearn takes seconds, so the CSV it ships is read directly when found.
    """
    sklearn = importlib.util.find_spec("sklearn")
    if sklearn is None or sklearn.origin is None:
        raise DataError("the digits dataset needs scikit-learn: pip install scikit-learn")
    csv = Path(sklearn.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if csv.is_file():
        table = np.loadtxt(csv, delimiter=",")
        return table[:, :-1], table[:, -1]
    from sklearn.datasets import load_digits
    from sklearn.utils import Bunch
    bunch = cast(Bunch, load_digits())  # a Bunch: return_X_y is not set
    return bunch.data, bunch.target


def _split(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A fixed stratified split (indices of train, test): TEST_FRACTION of every class held out.

    Orders come from argsort of `default_rng(SPLIT_SEED).random`, whose plain float stream
    is far less likely to change across numpy versions than `permutation`'s algorithm.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        members = members[np.argsort(rng.random(len(members)), kind="stable")]
        held = round(len(members) * TEST_FRACTION) if len(members) > 1 else 0
        test.append(members[:held])
        train.append(members[held:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    # Mix the classes, so that the first `count` points (see `subset`) cover all of them.
    train_idx = train_idx[np.argsort(rng.random(len(train_idx)), kind="stable")]
    test_idx = test_idx[np.argsort(rng.random(len(test_idx)), kind="stable")]
    return train_idx, test_idx


# --- IDX ---------------------------------------------------------------------------------------

def _load_idx_dir(directory: Path, name: str, fashion: bool) -> Dataset:
    """Read the four MNIST-layout IDX files (plain or .gz) from `directory`."""
    hint = ("; install it with `apt-get install dataset-fashion-mnist` "
            "or pass fashion-mnist:DIR" if fashion else "")
    if not directory.is_dir():
        raise DataError(f"{name}: directory {directory} not found{hint}")
    paths = [_find_idx_file(directory, stem, name, hint) for stem in IDX_FILES]
    x_train, y_train = _idx_pair(paths[0], paths[1])
    x_test, y_test = _idx_pair(paths[2], paths[3])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{paths[2]}: test images have shape {x_test.shape[1:]} but the "
                        f"training images in {paths[0]} have shape {x_train.shape[1:]}")
    return _dataset(name, x_train, y_train, x_test, y_test)


def _find_idx_file(directory: Path, stem: str, name: str, hint: str) -> Path:
    """The plain or gzipped file `stem` in `directory`."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{name}: {directory / stem} (or {stem}.gz) not found{hint}")


def _idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images scaled to [0, 1] and their labels, checked to be equally many."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim < 2:
        raise DataError(f"{images_path}: expected images of shape (N, ...), "
                        f"got a {images.ndim}-dimensional array")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected labels of shape (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} "
                        f"holds {len(labels)} labels")
    return _pixels(images, images_path), _labels(labels, labels_path)


def read_idx(path: Path) -> np.ndarray:
    """Decode one IDX file (plain or .gz) into a native-endian array, checking its header."""
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number 0x{data[:4].hex()}; "
                        f"an IDX file starts with two zero bytes, a type code and a rank)")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x} (known: "
                        + ", ".join(f"0x{c:02x}" for c in _IDX_TYPES) + ")")
    if ndim == 0:
        raise DataError(f"{path}: the IDX header gives rank 0; expected at least 1 dimension")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, "
                        f"rank {ndim} needs {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{path}: the header promises {dims} values of {dtype.name} "
                        f"({expected} bytes) but the file holds {len(data) - header} bytes "
                        f"of data; it is truncated or corrupt")
    array = np.frombuffer(data, dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def _read_bytes(path: Path) -> bytes:
    """The file's contents, decompressed when it ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot be read ({error})") from error


def _pixels(images: np.ndarray, path: Path) -> np.ndarray:
    """Integer pixels 0..255 divided by 255; float pixels kept, which must lie in [0, 1]."""
    if images.size == 0:
        raise DataError(f"{path}: holds no images")
    if images.dtype.kind in "iu":
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise DataError(f"{path}: integer pixels must lie in 0..255 (scaled by 1/255 "
                            f"into the input domain [0, 1]), found {low}..{high}")
        pixels = images.astype(np.float32)
        pixels /= np.float32(255.0)  # in place: Fashion-MNIST's pixels take 190 MB
        return pixels
    images = images.astype(np.float32)
    _check_domain(images, path, "pixels")
    return images


# --- npz ---------------------------------------------------------------------------------------

def _load_npz(path: Path, split: bool = True) -> Dataset:
    """Read x, y (and optionally x_test, y_test) from an .npz archive; x, y alone are split
    (`split`) or taken as given."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        archive = np.load(path, allow_pickle=False)
        if isinstance(archive, np.ndarray):
            raise DataError(f"{path}: holds a single .npy array, not an .npz archive of "
                            f"x and y (save one with numpy.savez)")
        with archive:
            arrays = {key: archive[key] for key in ("x", "y", "x_test", "y_test")
                      if key in archive.files}
            train_keys = ("x", "y")
            if not {"x", "y"} & set(archive.files) and {"x_train", "y_train"} <= set(
                    archive.files):  # the x_train, y_train, x_test, y_test spelling
                arrays.update(x=archive["x_train"], y=archive["y_train"])
                train_keys = ("x_train", "y_train")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        why = str(error)
        if "pickle" in why:  # numpy suggests allow_pickle: never for a dataset
            why = "not an .npz archive of numeric arrays (object or pickled data is refused)"
        raise DataError(f"{path}: cannot be read as an .npz archive ({why}); save it with "
                        f"numpy.savez(path, x=..., y=...)") from None
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}; an .npz dataset "
                        f"needs x (inputs in [0, 1]) and y (integer labels), "
                        f"optionally x_test and y_test")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: has only one of x_test, y_test; give both or neither")
    x, y = _npz_pair(arrays["x"], arrays["y"], path, *train_keys)
    if "x_test" in arrays:
        x_test, y_test = _npz_pair(arrays["x_test"], arrays["y_test"], path, "x_test", "y_test")
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"{path}: x_test has samples of shape {x_test.shape[1:]} but x "
                            f"has {x.shape[1:]}")
        return _dataset(path.stem, x, y, x_test, y_test,
                        label_names=(f"{path}: {train_keys[1]}", f"{path}: y_test"))
    if not split:
        return _dataset(path.stem, x, y, x, y, given=True,
                        label_names=(f"{path}: y", f"{path}: y"))
    train, test = _split(y)
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{path}: too few points ({len(y)}) to split off a test set; "
                        f"add x_test and y_test")
    return _dataset(path.stem, x[train], y[train], x[test], y[test])


def _npz_pair(x: np.ndarray, y: np.ndarray, path: Path, xk: str, yk: str
              ) -> tuple[np.ndarray, np.ndarray]:
    """Inputs as float32 in [0, 1] and labels as int64, equally many."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: {xk} has dtype {x.dtype}, which cannot be cast to float32")
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{path}: {xk} must have shape (N, ...) with N >= 1 points of at "
                        f"least one feature, got {x.shape}")
    if y.ndim != 1:
        raise DataError(f"{path}: {yk} must have shape (N,), got {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{path}: {xk} has {len(x)} points but {yk} has {len(y)} labels")
    x = x.astype(np.float32)
    _check_domain(x, path, xk)
    return x, _labels(y, path, yk)


# --- shared checks -----------------------------------------------------------------------------

def _check_domain(x: np.ndarray, path: Path, what: str) -> None:
    """Inputs must have features, be finite and lie in the input domain [0, 1]."""
    if x.ndim < 2 or x.size == 0 or int(np.prod(x.shape[1:])) == 0:
        raise DataError(f"{path}: {what} has shape {tuple(x.shape)}; expected (points, "
                        f"features...) with at least one point and one feature")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: {what} contains NaN or infinite values, outside the "
                        f"input domain [0, 1]")
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise DataError(f"{path}: {what} values must lie in the input domain [0, 1], found "
                        f"{low:g}..{high:g}; scale them first (e.g. divide 0..255 pixels by 255)")


def _labels(y: np.ndarray, path: Path, what: str = "labels") -> np.ndarray:
    """Labels as int64 class indices 0..K-1 (integral floats are accepted)."""
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "biu":
        raise DataError(f"{path}: {what} must be integer class labels, got dtype {y.dtype}"
                        + (" with non-integer values" if y.dtype.kind == "f" else ""))
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: {what} must be class indices >= 0, found {int(y.min())}")
    return y


def _dataset(name: str, x_train: np.ndarray, y_train: np.ndarray,
             x_test: np.ndarray, y_test: np.ndarray, given: bool = False,
             label_names: tuple[str, str] | None = None) -> Dataset:
    """Flatten, fix the dtypes, freeze the arrays and count the classes."""
    shape = tuple(int(d) for d in x_train.shape[1:])
    if not shape or int(np.prod(shape)) == 0:
        raise DataError(f"{name}: the inputs have shape {tuple(x_train.shape)}: each point "
                        f"needs at least one feature")

    def frozen(array: np.ndarray, dtype: type) -> np.ndarray:
        array = np.ascontiguousarray(array, dtype=dtype)
        array.flags.writeable = False
        return array

    classes = int(max(y_train.max(initial=-1), y_test.max(initial=-1))) + 1
    return Dataset(name=name,
                   x_train=frozen(x_train.reshape(len(x_train), -1), np.float32),
                   y_train=frozen(y_train, np.int64),
                   x_test=frozen(x_test.reshape(len(x_test), -1), np.float32),
                   y_test=frozen(y_test, np.int64),
                   shape=shape, classes=classes, given=given,
                   label_names=label_names or (f"{name}: training labels",
                                               f"{name}: test labels"))
