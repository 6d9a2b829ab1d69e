"""Local loaders, on small files the tests write; the shadow transform."""

import gzip
import pickle

import numpy as np
import pytest

from sklhebb import datasets


def _write_idx(path, arr, compress):
    code = {np.uint8: 0x08}[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    data = header + arr.tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_files_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=7).astype(np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", X, compress)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", y, compress)
    X2, y2 = datasets.load_mnist_idx(tmp_path, kind="t10k")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    X3, _ = datasets.load_fashion_mnist(tmp_path, kind="test")
    np.testing.assert_array_equal(X3, X)


def test_idx_errors_are_clear(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="magic"):
        datasets.read_idx(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        datasets.load_mnist_idx(tmp_path, kind="train")
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2), np.uint8), False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8), False)
    with pytest.raises(ValueError, match="3 images but 4 labels"):
        datasets.load_mnist_idx(tmp_path)


def test_cifar10_and_cifar100_python_batches(tmp_path):
    rng = np.random.default_rng(1)
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    batches = []
    for i in range(1, 6):
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, size=4))
        batches.append((data, labels))
        with open(c10 / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f)
    with open(c10 / "test_batch", "wb") as f:
        pickle.dump({b"data": batches[0][0], b"labels": batches[0][1]}, f)
    X, y = datasets.load_cifar(c10)
    assert X.shape == (20, 32, 32, 3) and X.dtype == np.uint8
    # channel-first rows become (H, W, C): pixel (0, 0) of image 0 is data[0, [0, 1024, 2048]]
    np.testing.assert_array_equal(X[0, 0, 0], batches[0][0][0, [0, 1024, 2048]])
    np.testing.assert_array_equal(y[:4], batches[0][1])
    Xt, _ = datasets.load_cifar(c10, kind="test")
    assert Xt.shape == (4, 32, 32, 3)

    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    with open(c100 / "train", "wb") as f:
        pickle.dump({b"data": batches[1][0], b"fine_labels": [5, 99, 0, 1], b"coarse_labels": [0, 1, 2, 3]}, f)
    X, y = datasets.load_cifar(c100)
    np.testing.assert_array_equal(y, [5, 99, 0, 1])


def test_imagenet32_npz_batches(tmp_path):
    rng = np.random.default_rng(2)
    for i in (1, 2):
        np.savez(tmp_path / f"train_data_batch_{i}.npz", data=rng.integers(0, 256, size=(3, 3072), dtype=np.uint8), labels=np.array([1, 2, 1000]))
    X, y = datasets.load_imagenet32(tmp_path)
    assert X.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(y[:3], [0, 1, 999])  # labels start at 0
    with pytest.raises(FileNotFoundError):
        datasets.load_imagenet32(tmp_path, kind="val")


def test_add_shadow_edge_dims_one_side_only():
    X = np.full((50, 16, 16, 3), 200, dtype=np.uint8)
    S = datasets.add_shadow(X, kind="edge", strength=0.25, random_state=0)
    assert S.dtype == np.uint8 and S.shape == X.shape
    values = np.unique(S)
    assert set(values.tolist()) <= {50, 200}
    dimmed = (S[..., 0] == 50).mean(axis=(1, 2))
    assert 0 < dimmed.mean() < 1
    # deterministic for a seed; grayscale works too
    np.testing.assert_array_equal(S, datasets.add_shadow(X, kind="edge", strength=0.25, random_state=0))
    assert datasets.add_shadow(X[..., 0], kind="edge", random_state=0).shape == (50, 16, 16)


def test_add_shadow_default_is_the_papers_fig6_shadow():
    # Section 6: the first 25 of 32 columns multiplied by 0.3, the other 7 unchanged, every image alike
    X = np.random.default_rng(0).uniform(0, 1, size=(4, 32, 32, 3))
    S = datasets.add_shadow(X)
    np.testing.assert_allclose(S[:, :, :25], 0.3 * X[:, :, :25])
    np.testing.assert_array_equal(S[:, :, 25:], X[:, :, 25:])
    # on 28 x 28 the same fraction is round(28 * 25 / 32) = 22 columns; fraction and factor are parameters
    G = np.full((2, 28, 28), 100, dtype=np.uint8)
    S = datasets.add_shadow(G)
    assert S.dtype == np.uint8
    assert (S[:, :, :22] == 30).all() and (S[:, :, 22:] == 100).all()
    S = datasets.add_shadow(G, strength=0.5, fraction=0.25)
    assert (S[:, :, :7] == 50).all() and (S[:, :, 7:] == 100).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"kind": "circle"}, "kind must be 'columns'"), ({"strength": 1.5}, "strength must be in"), ({"fraction": -0.1}, "fraction must be in")],
)
def test_add_shadow_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.add_shadow(np.zeros((1, 8, 8)), **kwargs)
