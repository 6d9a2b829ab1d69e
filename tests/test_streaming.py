"""Streaming: memory does not grow with the number of images; device OOM names the knob."""

import tracemalloc

import numpy as np
import pytest

from sklhebb import KrotovPatchEncoder
from sklhebb._backend import DeviceMemoryError, resolve


def _peak_fit_bytes(path, n_images):
    mm = np.load(path, mmap_mode="r")[:n_images]
    enc = KrotovPatchEncoder(n_components=16, window=4, max_iter=1, batch_size=500, chunk_size=10, random_state=0)
    tracemalloc.start()
    enc.fit(mm)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, enc


def test_fit_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.random((400, 16, 16, 3)) * 255).astype(np.uint8)
    path = tmp_path / "images.npy"
    np.save(path, X)
    small, _ = _peak_fit_bytes(path, 40)
    large, enc = _peak_fit_bytes(path, 400)
    # 10x the images (10x the patches: 169 per image) must not cost more memory:
    # allow 25% for allocator noise, far below the 10x a full patch matrix would need
    assert large < 1.25 * small, (small, large)
    assert enc.n_steps_ == int(np.ceil(400 * 169 / 500))


def test_transform_memory_is_bounded_by_chunks(tmp_path):
    X = (np.random.default_rng(1).random((300, 16, 16, 1)) * 255).astype(np.uint8)
    enc = KrotovPatchEncoder(n_components=8, window=4, max_iter=1, chunk_size=10, pool_size=13, random_state=0).fit(X[:20])
    tracemalloc.start()
    Z = enc.transform(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # output is 300 x 8 floats; a chunk of 10 images has 10*13*13 positions x 16 dims;
    # holding every patch at once would need 300*169*16*4 = 3.2 MB
    assert Z.shape == (300, 8)
    assert peak < 1.5e6, peak


def test_out_of_memory_error_names_the_parameter_to_lower():
    bk = resolve("numpy")

    class OutOfMemoryError(RuntimeError):  # the name torch and CuPy use
        pass

    with pytest.raises(DeviceMemoryError, match="batch_size.*chunk_size"):
        with bk.memory_hint("batch_size", "chunk_size"):
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(KeyError):  # other errors pass through untouched
        with bk.memory_hint("batch_size"):
            raise KeyError("x")


def _estimators():
    from sklhebb.utils.discovery import all_estimators

    from ._settings import FAST_PARAMS

    return [cls(**FAST_PARAMS.get(name, {})) for name, cls in all_estimators()]


def _peak_rows_fit(est, mm, y):
    from sklearn.base import clone, is_classifier

    e = clone(est).set_params(max_iter=1, batch_size=64)
    if "chunk_size" in e.get_params():
        e.set_params(chunk_size=4096)
    tracemalloc.start()
    e.fit(mm, y) if is_classifier(e) else e.fit(mm)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


@pytest.mark.parametrize("est", _estimators(), ids=lambda e: type(e).__name__)
def test_every_estimator_streams_a_uint8_memmap_with_bounded_memory(tmp_path, est):
    n, d = 40000, 64
    X = (np.random.default_rng(0).random((n, d)) * 255).astype(np.uint8)
    path = tmp_path / "rows.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    y = np.arange(n) % 3
    small = _peak_rows_fit(est, mm[: n // 10], y[: n // 10])
    large = _peak_rows_fit(est, mm, y)
    # 10x the rows: a float32 copy of the data would add 9.2 MB. Labels and the
    # shuffling order are O(n) integers (np.unique with return_inverse makes a few
    # int64 arrays: measured +1.7 MB for the classifiers); X itself must not be copied
    assert large < small + 0.3 * n * d * 4, f"peak {small / 1e6:.2f} MB -> {large / 1e6:.2f} MB"


@pytest.mark.parametrize("chunk_size,batch_size", [(1, 7), (3, 50), (2, 200), (5, 36), (40, 1000)])
def test_patch_stream_batches_tile_the_patches_for_any_chunking(chunk_size, batch_size):
    # batches carry over chunk boundaries (also across several chunks when a batch holds
    # more patches than a chunk): in order they are exactly the normalised patch matrix,
    # and every batch but the last is full
    from sklhebb._backend import resolve
    from sklhebb.image import PatchStream, extract_patches, normalize_rows

    bk = resolve("numpy")
    X = np.random.default_rng(3).random((9, 6, 5, 2)).astype(np.float32)
    ref = normalize_rows(bk, extract_patches(bk, X, 3, 1).reshape(-1, 18), center=True)
    stream = PatchStream(bk, X, 3, batch_size, chunk_size, "float32", center=True)
    batches = list(stream.epoch(None))
    assert all(b.shape[0] == batch_size for b in batches[:-1]) and 0 < batches[-1].shape[0] <= batch_size
    np.testing.assert_array_equal(np.concatenate(batches), ref)
    # shuffled: the same rows, each once
    shuffled = np.concatenate(list(stream.epoch(np.random.RandomState(0))))
    assert shuffled.shape == ref.shape and not np.array_equal(shuffled, ref)
    np.testing.assert_array_equal(np.unique(shuffled, axis=0), np.unique(ref, axis=0))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("window", [1, 5])
def test_in_order_fit_with_windows_that_reshape_as_views_never_touches_the_input(backend, window, monkeypatch):
    """1 x 1 windows and windows as wide as the image: the patch matrix is a view of the images,
    so the in-place normalisation must work on a copy (it raised on NumPy and wrote into torch input)."""
    from sklhebb import KrotovPatchEncoder, _numba

    if backend == "torch":
        torch = pytest.importorskip("torch")
    monkeypatch.setattr(_numba, "ENABLED", False)  # the plain path's stream
    X = np.random.default_rng(0).random((4, 5, 5, 2)).astype(np.float32)
    Xin = torch.tensor(X) if backend == "torch" else X.copy()
    enc = KrotovPatchEncoder(n_components=3, window=window, shuffle=False, max_iter=1, backend=backend, random_state=0)
    enc.fit(Xin)
    got = Xin.numpy() if backend == "torch" else Xin
    np.testing.assert_array_equal(got, X)
    assert np.isfinite(enc.components_).all()
