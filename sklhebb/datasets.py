"""Local data loaders and the papers' transforms. Nothing here downloads.

Every loader takes a local path; where a Debian package installs a data set
(``apt-get install dataset-fashion-mnist``) its location is the default.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np

__all__ = [
    "read_idx",
    "load_fashion_mnist",
    "load_mnist_idx",
    "load_cifar",
    "load_imagenet32",
    "add_shadow",
]

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(data[2])
    if dtype is None:
        raise ValueError(f"{path}: unknown IDX data type 0x{data[2]:02x}")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {arr.size} values")
    return arr.reshape(shape).astype(np.dtype(dtype).newbyteorder("="), copy=False)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(
        f"{stem}[.gz] not found in {folder}. sklhebb never downloads data: put the files there "
        "or pass path=... (for Fashion-MNIST: apt-get install dataset-fashion-mnist)."
    )


def load_mnist_idx(path, *, kind="train"):
    """Load MNIST-format IDX files from ``path``.

    Returns ``(X, y)``: uint8 images (n, 28, 28) and uint8 labels (n,).
    ``kind`` is 'train' or 't10k' (the files' prefixes).
    """
    if kind not in ("train", "t10k", "test"):
        raise ValueError(f"kind must be 'train' or 't10k'; got {kind!r}")
    kind = "t10k" if kind == "test" else kind
    folder = Path(path)
    X = read_idx(_find(folder, f"{kind}-images-idx3-ubyte"))
    y = read_idx(_find(folder, f"{kind}-labels-idx1-ubyte"))
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{folder}: {X.shape[0]} images but {y.shape[0]} labels")
    return X, y


def load_fashion_mnist(path=None, *, kind="train"):
    """Fashion-MNIST from local IDX files (default: the Debian package's folder).

    Returns ``(X, y)``: uint8 images (n, 28, 28) and labels (n,).
    """
    return load_mnist_idx(FASHION_MNIST_DEBIAN if path is None else path, kind=kind)


def load_cifar(path, *, kind="train"):
    """CIFAR-10 or CIFAR-100 "python version" batches from a local folder.

    ``path`` is the extracted folder (``cifar-10-batches-py`` or
    ``cifar-100-python``). Returns uint8 images (n, 32, 32, 3) and integer
    labels (CIFAR-100: the fine labels).
    """
    folder = Path(path)
    if (folder / "data_batch_1").exists():
        names = [f"data_batch_{i}" for i in range(1, 6)] if kind == "train" else ["test_batch"]
    elif (folder / "train").exists():
        names = ["train"] if kind == "train" else ["test"]
    else:
        raise FileNotFoundError(f"{folder} holds neither CIFAR-10 (data_batch_1) nor CIFAR-100 (train) batches")
    Xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        Xs.append(np.asarray(d[b"data"], dtype=np.uint8))
        ys.append(np.asarray(d.get(b"labels", d.get(b"fine_labels")), dtype=np.int64))
    X = np.concatenate(Xs).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(X), np.concatenate(ys)


def load_imagenet32(path, *, kind="train"):
    """ImageNet 32x32 ``.npz`` batches (``train_data_batch_*``, ``val_data``).

    Returns uint8 images (n, 32, 32, 3) and labels starting at 0.
    """
    folder = Path(path)
    pattern = "train_data_batch_*" if kind == "train" else "val_data*"
    files = sorted(folder.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no {pattern} files in {folder}")
    Xs, ys = [], []
    for f in files:
        d = np.load(f)
        Xs.append(np.asarray(d["data"], dtype=np.uint8))
        ys.append(np.asarray(d["labels"], dtype=np.int64) - 1)
    X = np.concatenate(Xs).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(X), np.concatenate(ys)


def add_shadow(X, *, kind="columns", strength=0.3, fraction=25 / 32, random_state=None):
    """Shadow every image as Grinberg, Hopfield & Krotov (2019), Section 6 and Fig. 6, do.

    ``kind="columns"`` (the paper's): the first ``round(fraction * W)`` columns
    from the left, by default 25 of 32 (about 80 % of the image), are
    multiplied by ``strength`` (default 0.3, the paper's factor). The same
    shadow on every image; ``random_state`` is not used.

    ``kind="edge"``: a random straight line splits each image in two and the
    pixels on one side are multiplied by ``strength`` (``fraction`` is not
    used); ``random_state`` seeds the lines.

    X: (n, H, W[, C]); ``strength`` 0 is black, 1 unchanged. Returns an array of
    the same shape, and of the same dtype for integer images (rounded down).
    """
    from sklearn.utils import check_random_state

    if kind not in ("columns", "edge"):
        raise ValueError(f"kind must be 'columns' (the paper's Fig. 6 shadow) or 'edge' (a random straight edge); got {kind!r}")
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1] (0: black, 1: unchanged); got {strength!r}")
    X = np.asarray(X)
    if X.ndim not in (3, 4):
        raise ValueError(f"X must be images (n, H, W) or (n, H, W, C); got shape {X.shape}")
    n, H, W = X.shape[:3]
    if kind == "columns":
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be in [0, 1] (the share of the width shadowed, from the left); got {fraction!r}")
        side = np.broadcast_to(np.arange(W) < round(fraction * W), (n, H, W))
    else:
        rng = check_random_state(random_state)
        yy, xx = np.mgrid[0:H, 0:W]
        angle = rng.uniform(0, 2 * np.pi, size=n)
        cy, cx = rng.uniform(0, H, size=n), rng.uniform(0, W, size=n)
        side = (np.cos(angle)[:, None, None] * (xx - cx[:, None, None]) + np.sin(angle)[:, None, None] * (yy - cy[:, None, None])) > 0
    factor = np.where(side, strength, 1.0)
    if X.ndim == 4:
        factor = factor[..., None]
    out = X * factor
    return out.astype(X.dtype) if X.dtype.kind in "ui" else out


def default_data_home():
    return Path(os.environ.get("SKLHEBB_DATA", Path.home() / "sklhebb_data"))
