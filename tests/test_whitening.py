"""Patch whitening (ZCA, Coates & Ng 2011) and the image layout of transform, for stacking layers."""

import pickle

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from sklhebb import KrotovPatchEncoder, NSMEncoder, _numba
from sklhebb._backend import resolve
from sklhebb.image import PatchStream, extract_patches, max_pool, normalize_rows, whiten_rows, zca_matrix
from sklhebb.persistence import trusted_types

torch = pytest.importorskip("torch")


def _images(n=40, side=9, c=1, seed=0):
    rng = np.random.default_rng(seed)
    # correlated pixels (smoothed noise), so that whitening has something to undo
    X = rng.random((n, side + 2, side + 2, c))
    return (X[:, :-2, :-2] + X[:, 1:-1, 1:-1] + X[:, 2:, 2:]) / 3


def _all_patches(X, window, center=True):
    bk = resolve("numpy")
    P = extract_patches(bk, X, window, 1).reshape(-1, window * window * X.shape[3])
    return normalize_rows(bk, P, center=center)


def test_zca_matrix_whitens_its_sample_up_to_the_regulariser():
    X = _images()
    P = _all_patches(X, 3)
    bk = resolve("numpy")
    stream = PatchStream(bk, X, 3, 64, 7, "float64", center=True)
    mean, W = stream.fit_whitening(10**9, 0.1, np.random.RandomState(0))  # covers every patch: the sample is P
    np.testing.assert_allclose(mean, P.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(W, W.T, atol=1e-12)
    sigma = np.cov(P, rowvar=False, bias=True)
    lam, U = np.linalg.eigh(sigma)
    eps = 0.1 * lam.sum() / lam.size  # relative: 0.1 times the mean eigenvalue
    Z = whiten_rows(bk, P, (mean, W), normalize=False)
    cov = np.cov(Z, rowvar=False, bias=True)
    # whitened covariance = U diag(lam / (lam + eps)) U^T: identity but for the regulariser
    np.testing.assert_allclose(cov, (U * (np.clip(lam, 0, None) / (np.clip(lam, 0, None) + eps))) @ U.T, atol=1e-10)
    # and with a tiny regulariser, the identity on the directions the patches span (centring removes one)
    mean, W = stream.fit_whitening(10**9, 1e-9, np.random.RandomState(0))
    Z = whiten_rows(bk, P, (mean, W), normalize=False)
    ev = np.linalg.eigvalsh(np.cov(Z, rowvar=False, bias=True))
    np.testing.assert_allclose(ev[1:], 1.0, atol=1e-5)
    assert ev[0] < 1e-5


def test_fit_whitening_streams_chunks_and_samples_a_bounded_number_of_patches():
    X = _images()
    bk = resolve("numpy")
    whole = PatchStream(bk, X, 3, 64, len(X), "float64", center=True).fit_whitening(10**9, 0.1, np.random.RandomState(0))
    one_by_one = PatchStream(bk, X, 3, 64, 1, "float64", center=True).fit_whitening(10**9, 0.1, np.random.RandomState(0))
    for a, b in zip(whole, one_by_one):
        np.testing.assert_allclose(a, b, atol=1e-12)
    # a sample of 500 of the 1960 patches: the same estimate, from those 500 rows (drawn with the rng)
    stream = PatchStream(bk, X, 3, 64, 5, "float64", center=True)
    mean, W = stream.fit_whitening(500, 0.1, np.random.RandomState(3))
    flat = np.sort(np.random.RandomState(3).randint(0, stream.n_patches, size=500))
    S = _all_patches(X, 3)[flat]
    ref_mean, ref_W = zca_matrix(S.mean(axis=0), S.T @ S / len(S), 0.1)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-12)
    np.testing.assert_allclose(W, ref_W, atol=1e-9)
    with pytest.raises(ValueError, match="whitens already"):
        PatchStream(bk, X, 3, 64, 5, "float64", whitening=(mean, W)).fit_whitening(100, 0.1, np.random.RandomState(0))


def test_krotov_fit_and_transform_see_the_same_whitened_patches():
    X = _images()
    enc = KrotovPatchEncoder(8, window=3, power=1, pool_size=3, pool_stride=3, whiten=0.1, max_iter=1, random_state=0).fit(X)
    assert isinstance(enc.whitening_, np.ndarray) and enc.whitening_.shape == (9, 9) and enc.whitening_mean_.shape == (9,)
    bk = resolve("numpy")
    expected = whiten_rows(bk, _all_patches(X, 3), (enc.whitening_mean_, enc.whitening_), normalize=True)
    # fit: the stream's patches, in order
    stream = enc._stream(bk, X, None, "float64")
    np.testing.assert_allclose(np.concatenate(list(stream.epoch(None))), expected, atol=1e-12)
    # transform: cosines of the same patches with the unit filters, ReLU, max pooling
    filters = enc.components_ / np.linalg.norm(enc.components_, axis=1, keepdims=True)
    F = np.maximum(expected @ filters.T, 0).reshape(len(X), 7, 7, 8)
    np.testing.assert_allclose(enc.transform(X), max_pool(bk, F, 3, 3).reshape(len(X), -1), atol=1e-12)


@pytest.mark.parametrize("kw", [{}, {"window": None, "n_components": 5}])
def test_krotov_whitened_fit_with_and_without_the_compiled_step_agree(monkeypatch, kw):
    X = _images(30, 7, 2, seed=4)
    args = dict(n_components=12, window=3, batch_size=50, max_iter=2, whiten=0.1, random_state=0) | kw
    monkeypatch.setattr(_numba, "ENABLED", True)
    fast = KrotovPatchEncoder(**args).fit(X)
    monkeypatch.setattr(_numba, "ENABLED", False)
    plain = KrotovPatchEncoder(**args).fit(X)
    np.testing.assert_allclose(fast.components_, plain.components_, rtol=1e-9, atol=1e-10)


def test_whitening_numpy_and_torch_agree():
    X = _images()
    kw = dict(window=3, pool_size=3, pool_stride=3, whiten=0.1, max_iter=2, shuffle=False, random_state=0)
    a = KrotovPatchEncoder(8, **kw).fit(X)
    b = KrotovPatchEncoder(8, backend="torch", **kw).fit(X)
    np.testing.assert_allclose(a.whitening_, b.whitening_, atol=1e-10)
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-8)
    np.testing.assert_allclose(a.transform(X), b.transform(X), atol=1e-8)
    Xt = torch.as_tensor(X)
    np.testing.assert_allclose(a.transform(Xt).numpy(), a.transform(X), atol=1e-10)
    kw = dict(window=3, whiten=0.1, max_iter=2, shuffle=False, random_state=0, batch_size=64)
    n = NSMEncoder(6, **kw).fit(X)
    m = NSMEncoder(6, backend="torch", **kw).fit(X)
    np.testing.assert_allclose(n.whitening_, m.whitening_, atol=1e-10)
    np.testing.assert_allclose(n.transform(X), m.transform(X), atol=1e-7)


def test_nsm_conv_whitening_applies_in_fit_transform_and_score():
    X = _images()
    kw = dict(window=3, max_iter=1, shuffle=False, random_state=0, batch_size=64)
    white = NSMEncoder(6, whiten=0.1, **kw).fit(X)
    plain = NSMEncoder(6, **kw).fit(X)
    assert white.whitening_.shape == (9, 9) and not hasattr(plain, "whitening_")
    assert not np.allclose(white.components_, plain.components_)
    assert np.isfinite(white.score(X))
    # the whitening is refitted, or dropped, at the next fit
    assert not hasattr(white.set_params(whiten=None).fit(X), "whitening_")
    with pytest.warns(UserWarning, match="whiten=0.1 only apply to the convolutional layout"):
        NSMEncoder(3, whiten=0.1, max_iter=1).fit(X.reshape(len(X), -1))


def test_whitened_models_round_trip_and_nsm_refuses_to_export_to_torch(tmp_path):
    X = _images()
    enc = KrotovPatchEncoder(8, window=3, whiten=0.1, max_iter=1, random_state=0).fit(X)
    loaded = pickle.loads(pickle.dumps(enc))
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))
    sio = pytest.importorskip("skops.io")
    sio.dump(enc, tmp_path / "enc.skops")
    loaded = sio.load(tmp_path / "enc.skops", trusted=trusted_types())
    np.testing.assert_array_equal(loaded.whitening_, enc.whitening_)
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))
    with pytest.raises(ValueError, match="does not export the patch whitening"):
        NSMEncoder(4, window=3, whiten=0.1, max_iter=1, batch_size=64).fit(X).to_torch()
    with pytest.raises(ValueError, match="whiten"):
        KrotovPatchEncoder(whiten=0.0).fit(X)


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
def test_whitened_krotov_to_torch_equals_transform_and_trains(center, channels):
    """The exported NNL-CONV layer whitens its patches as ``transform`` does (the whitening
    permuted into unfold's channel-first patch order), black patches included; its gradients
    equal finite differences."""
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(5).random((6, 9, 9, channels))
    X[0, :5, :5] = 0  # black patches: whitened into the direction of -mean W, as in transform
    enc = KrotovPatchEncoder(5, window=3, whiten=0.1, center=center, power=3, pool_size=3, pool_stride=2, max_iter=1, random_state=0).fit(X)
    module = enc.to_torch(dtype=torch.float64)
    x = torch.from_numpy(X).permute(0, 3, 1, 2)
    with torch.no_grad():
        got = module(x).permute(0, 2, 3, 1).reshape(len(X), -1).numpy()
    np.testing.assert_allclose(got, enc.transform(X), rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # the default float32 module
        got32 = enc.to_torch()(x.float()).permute(0, 2, 3, 1).reshape(len(X), -1).numpy()
    np.testing.assert_allclose(got32, enc.transform(X), rtol=1e-4, atol=1e-5)
    assert not module[0].whitening.requires_grad  # a fixed buffer, as the fitted whitening is
    xg = (0.1 + torch.from_numpy(X[1:3, :6, :6])).permute(0, 3, 1, 2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda w, v: torch.func.functional_call(module, {"0.conv.weight": w}, (v,)), (module[0].conv.weight, xg))


def test_image_layout_is_the_flat_output_reshaped_and_stacks_layers():
    X = _images(60, 12)
    y = np.arange(60) % 3
    kw = dict(window=3, pool_size=2, pool_stride=2, max_iter=1, random_state=0)
    flat = KrotovPatchEncoder(8, **kw).fit(X)
    image = KrotovPatchEncoder(8, output_layout="image", **kw).fit(X)
    F = image.transform(X)
    assert F.shape == (60, 5, 5, 8)
    np.testing.assert_array_equal(F.reshape(60, -1), flat.transform(X))
    model = make_pipeline(
        KrotovPatchEncoder(8, output_layout="image", **kw), KrotovPatchEncoder(6, window=3, pool_size=3, max_iter=1, random_state=1), LinearSVC()
    ).fit(X, y)
    assert model[1].image_shape_ == (5, 5, 8) and model[1].components_.shape == (6, 72)
    assert model.predict(X).shape == (60,)
    nsm_kw = dict(window=3, max_iter=1, random_state=0, batch_size=64)
    G = NSMEncoder(4, output_layout="image", **nsm_kw).fit(X).transform(X)
    np.testing.assert_array_equal(G.reshape(60, -1), NSMEncoder(4, **nsm_kw).fit(X).transform(X))
    with pytest.raises(ValueError, match="output_layout"):
        KrotovPatchEncoder(output_layout="nchw").fit(X)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
def test_whitening_and_image_layout_on_torch_cuda_match_numpy():
    X = _images()
    kw = dict(window=3, pool_size=3, pool_stride=3, whiten=0.1, output_layout="image", max_iter=2, shuffle=False, random_state=0)
    ref = KrotovPatchEncoder(8, **kw).fit(X)
    gpu = KrotovPatchEncoder(8, backend="torch", device="cuda", **kw).fit(X)
    assert isinstance(gpu.whitening_, np.ndarray)
    np.testing.assert_allclose(gpu.whitening_, ref.whitening_, atol=1e-8)
    out = gpu.transform(torch.as_tensor(X).cuda())
    assert out.is_cuda and out.shape == (len(X), 3, 3, 8)
    np.testing.assert_allclose(out.cpu().numpy(), ref.transform(X), atol=1e-6)
