"""GPU tests: torch-CUDA and CuPy give the NumPy results. Skipped cleanly without a GPU."""

import numpy as np
import pytest

from sklhebb import KrotovPatchEncoder

torch = pytest.importorskip("torch")

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")


def _cupy():
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:  # noqa: BLE001 - any failure means no usable CuPy
        return None


needs_cupy = pytest.mark.skipif(_cupy() is None, reason="needs CuPy with a CUDA GPU")


def _data():
    return (np.random.default_rng(0).random((40, 12, 12, 3)) * 255).astype(np.uint8)


@pytest.mark.cuda
@cuda
def test_krotov_torch_cuda_matches_numpy():
    X = _data()
    kw = dict(n_components=32, window=4, max_iter=2, batch_size=100, random_state=0)
    ref = KrotovPatchEncoder(**kw).fit(X)
    gpu = KrotovPatchEncoder(backend="torch", device="cuda", **kw).fit(X)
    assert isinstance(gpu.components_, np.ndarray)
    np.testing.assert_allclose(gpu.components_, ref.components_, rtol=1e-3, atol=1e-3)
    Xt = torch.from_numpy(X.astype(np.float32)).cuda()
    out = gpu.transform(Xt)
    assert out.is_cuda
    np.testing.assert_allclose(out.cpu().numpy(), ref.transform(X), rtol=1e-3, atol=1e-4)


@pytest.mark.cuda
@needs_cupy
def test_krotov_cupy_matches_numpy():
    cp = _cupy()
    X = _data()
    kw = dict(n_components=32, window=4, max_iter=2, batch_size=100, random_state=0)
    ref = KrotovPatchEncoder(**kw).fit(X)
    gpu = KrotovPatchEncoder(backend="cupy", **kw).fit(X)
    np.testing.assert_allclose(gpu.components_, ref.components_, rtol=1e-3, atol=1e-3)
    out = gpu.transform(cp.asarray(X.astype(np.float32)))
    assert isinstance(out, cp.ndarray)
    np.testing.assert_allclose(out.get(), ref.transform(X), rtol=1e-3, atol=1e-4)


def test_asking_for_cuda_without_a_gpu_says_so():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA device"):
        KrotovPatchEncoder(backend="torch", device="cuda", max_iter=1).fit(_data())


def _all_estimators():
    from sklhebb.utils.discovery import all_estimators

    from ._settings import FAST_PARAMS

    return [(cls, FAST_PARAMS.get(name, {})) for name, cls in all_estimators()]


def _fit_on_gpu_and_compare_with_numpy(cls, params, **gpu_params):
    """Fit on NumPy and on the GPU backend; outputs agree within float32 tolerance."""
    from sklhebb.estimator_checks import make_data, outputs

    est = cls(**params)
    X, y = make_data(est)
    X = X.astype(np.float32)
    ref = est.fit(X, y) if y is not None else est.fit(X)
    gpu = cls(**params).set_params(**gpu_params)
    gpu.fit(X, y) if y is not None else gpu.fit(X)
    np.testing.assert_allclose(outputs(gpu, X), outputs(ref, X), rtol=1e-3, atol=1e-4)
    return gpu, X


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("cls,params", _all_estimators(), ids=lambda v: getattr(v, "__name__", ""))
def test_every_estimator_on_torch_cuda_matches_numpy(cls, params):
    """fit, transform/predict on torch-CUDA equal NumPy within float32 tolerance; state is NumPy."""
    gpu, X = _fit_on_gpu_and_compare_with_numpy(cls, params, backend="torch", device="cuda")
    for k, v in vars(gpu).items():
        assert not type(v).__module__.startswith("torch"), k
    Xt = torch.from_numpy(X).cuda()
    out = gpu.transform(Xt) if hasattr(gpu, "transform") else gpu.predict_proba(Xt)
    assert out.is_cuda


@pytest.mark.cuda
@needs_cupy
@pytest.mark.parametrize("cls,params", _all_estimators(), ids=lambda v: getattr(v, "__name__", ""))
def test_every_estimator_on_cupy_matches_numpy(cls, params):
    _fit_on_gpu_and_compare_with_numpy(cls, params, backend="cupy")
