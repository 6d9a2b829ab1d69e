"""Results come back in the input's library, for every output method of every estimator: NumPy in,
NumPy out; torch in, torch out (on the input's device); CuPy in, CuPy out. ``score`` is a float."""

import numpy as np
import pytest
from sklearn.base import clone

from sklhebb.utils.discovery import all_estimators

from ._settings import FAST_PARAMS

ARRAY_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform", "score_samples")
ESTIMATORS = dict(all_estimators())


def _data():
    rng = np.random.default_rng(0)
    X = rng.random((48, 16)).astype(np.float32)
    y = np.arange(48) % 3
    return X, y


def _torch():
    return pytest.importorskip("torch")


def _cupy():
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except cp.cuda.runtime.CUDARuntimeError:
        pytest.skip("no CUDA device")
    return cp


LIBRARIES = {
    "numpy": (lambda: np, lambda xp, a: np.asarray(a), lambda xp, r: isinstance(r, np.ndarray)),
    "torch": (_torch, lambda xp, a: xp.as_tensor(a), lambda xp, r: isinstance(r, xp.Tensor)),
    "cupy": (_cupy, lambda xp, a: xp.asarray(a), lambda xp, r: isinstance(r, xp.ndarray)),
}


@pytest.fixture(scope="module")
def fitted():
    X, y = _data()
    return {name: clone(cls(**FAST_PARAMS[name])).fit(X, y) for name, cls in ESTIMATORS.items()}


CASES = [(name, method) for name, cls in ESTIMATORS.items() for method in ARRAY_METHODS if hasattr(cls, method)]


def test_every_estimator_has_output_methods():
    assert {name for name, _ in CASES} == set(ESTIMATORS)


@pytest.mark.parametrize("library", sorted(LIBRARIES))
@pytest.mark.parametrize("name, method", CASES, ids=[f"{n}.{m}" for n, m in CASES])
def test_output_is_in_the_input_library(fitted, name, method, library):
    load, convert, is_kind = LIBRARIES[library]
    xp = load()
    X, _ = _data()
    est = fitted[name]
    out = getattr(est, method)(convert(xp, X))
    assert is_kind(xp, out), f"{name}.{method} of {library} input returned {type(out).__name__}"
    want = getattr(est, method)(X)  # the NumPy result: the same numbers
    got = out.cpu().numpy() if library == "torch" else (out.get() if library == "cupy" else out)
    assert got.shape == want.shape
    if method == "predict":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("library", sorted(LIBRARIES))
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_score_is_a_float(fitted, name, library):
    est = fitted[name]
    if not hasattr(est, "score"):
        pytest.skip(f"{name} has no score")
    load, convert, _ = LIBRARIES[library]
    xp = load()
    X, y = _data()
    s = est.score(convert(xp, X), convert(xp, y))
    assert type(s) is float
    assert s == pytest.approx(est.score(X, y), rel=1e-4)


@pytest.mark.parametrize("name", [n for n in sorted(ESTIMATORS) if n.endswith("Classifier")])
def test_string_labels_come_back_as_numpy(name):
    torch = _torch()
    X, y = _data()
    labels = np.array(["a", "b", "c"])[y]
    est = clone(ESTIMATORS[name](**FAST_PARAMS[name])).fit(X, labels)
    got = est.predict(torch.as_tensor(X))
    assert isinstance(got, np.ndarray) and got.dtype.kind == "U"
    np.testing.assert_array_equal(got, est.predict(X))
