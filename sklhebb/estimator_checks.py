"""sklhebb's own estimator checks, run beside scikit-learn's common checks.

scikit-learn's checks are the floor. These add what a careful user of local
learning rules needs: hostile values, divergence under a far too large
learning rate, determinism, backends that agree, memory layouts, and fits
interrupted half-way. Each check takes an estimator instance (with fast
settings) and raises AssertionError on failure, or skips (``pytest.skip``;
``unittest.SkipTest`` where pytest is not installed) when it cannot apply::

    from sklhebb.estimator_checks import sklhebb_checks
    for check in sklhebb_checks(estimator):
        check(estimator)
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import warnings

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ._training import DivergenceError

__all__ = ["sklhebb_checks", "make_data", "outputs"]


# ----------------------------------------------------------------- helpers
def make_data(est, n=40, d=9, seed=0, scale=1.0):
    """Data fit for ``est``: non-negative rows (image-like) and labels for classifiers."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(0.0, 1.0, size=(n, d)) * scale
    y = np.arange(n) % 3 if is_classifier(est) else None
    return X, y


def _fit(est, X, y):
    return est.fit(X, y) if y is not None else est.fit(X)


def outputs(est, X):
    """What a user reads from a fitted estimator: transform, or decision values."""
    if hasattr(est, "transform"):
        return np.asarray(est.transform(X))
    if hasattr(est, "predict_proba"):
        return np.asarray(est.predict_proba(X))
    return np.asarray(est.decision_function(X))


def _fitted_arrays(est):
    return {k: np.array(v, copy=True) for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_") and isinstance(v, np.ndarray)}


def _has_param(est, name):
    return name in est.get_params()


def _skip(reason):
    """Skip the running check: pytest's skip under pytest, unittest's otherwise."""
    try:
        import pytest
    except ImportError:
        import unittest

        raise unittest.SkipTest(reason) from None
    pytest.skip(reason)


def _leaves(value, path):
    """(path, value) for ``value`` and everything inside its lists, tuples, sets, dicts and dataclasses."""
    yield path, value
    if isinstance(value, dict):
        items = ((f"{path}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f"{path}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value))
    else:
        return
    for p, v in items:
        yield from _leaves(v, p)


# ------------------------------------------------------------------ checks
def check_nan_and_inf_are_refused(est):
    """NaN or infinity in X gives a ValueError that says so, in fit and after fit."""
    X, y = make_data(est)
    for bad in (np.nan, np.inf, -np.inf):
        Xb = X.copy()
        Xb[3, 2] = bad
        try:
            _fit(clone(est), Xb, y)
        except ValueError as exc:
            assert "nan" in str(exc).lower() or "inf" in str(exc).lower(), str(exc)
        else:
            raise AssertionError(f"fit accepted X containing {bad}")
    fitted = _fit(clone(est), X, y)
    Xb = X.copy()
    Xb[0, 0] = np.nan
    try:
        outputs(fitted, Xb)
    except ValueError as exc:
        assert "nan" in str(exc).lower() or "inf" in str(exc).lower(), str(exc)
    else:
        raise AssertionError("transform/predict accepted X containing NaN")


def check_degenerate_inputs_give_finite_output(est):
    """All-zero, constant, single-sample, huge (1e6) and tiny (1e-30) inputs: finite output or a clear error."""
    X, y = make_data(est)
    cases = {
        "all zero": np.zeros_like(X),
        "constant": np.full_like(X, 0.7),
        "huge 1e6": X * 1e6,
        "tiny 1e-30": X * 1e-30,
    }
    for name, Xc in cases.items():
        try:
            fitted = _fit(clone(est), Xc, y)
        except ValueError as exc:  # a clear error is acceptable
            assert len(str(exc)) > 20, f"{name}: unclear error {exc!r}"
            continue
        out = outputs(fitted, Xc)
        assert np.isfinite(out).all(), f"{name}: non-finite output"
        for k, v in _fitted_arrays(fitted).items():
            assert np.isfinite(v).all() if v.dtype.kind == "f" else True, f"{name}: non-finite {k}"
    # one-sample minibatches through partial_fit
    if hasattr(est, "partial_fit"):
        e = clone(est)
        kw = {"classes": np.unique(y)} if is_classifier(est) else {}
        for i in range(3):
            r = e.partial_fit(X[i : i + 1], None if y is None else y[i : i + 1], **kw)
            assert r is e, "partial_fit must return self"
        assert np.isfinite(outputs(e, X)).all()


def check_memory_layouts_agree(est):
    """Read-only, non-contiguous, Fortran-ordered, float32 and float64 X give the same result."""
    X, y = make_data(est, d=9)
    ref = outputs(_fit(clone(est), X, y), X)
    ro = X.copy()
    ro.flags.writeable = False
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    variants = {"read-only": ro, "non-contiguous": wide[:, ::2], "Fortran": np.asfortranarray(X)}
    for name, Xv in variants.items():
        got = outputs(_fit(clone(est), Xv, y), Xv)
        np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-9, err_msg=name)
    got32 = outputs(_fit(clone(est), X.astype(np.float32), y), X.astype(np.float32))
    np.testing.assert_allclose(got32, ref, rtol=2e-3, atol=2e-3, err_msg="float32 vs float64")


def check_huge_learning_rate_never_gives_silent_nan(est):
    """A learning rate 1e4 times too large raises DivergenceError or keeps every weight finite."""
    if not _has_param(est, "learning_rate"):
        _skip(f"{type(est).__name__} has no learning_rate parameter")
    lr = est.get_params()["learning_rate"]
    if not isinstance(lr, (int, float)):
        _skip(f"learning_rate={lr!r} is not a number to scale")
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = make_data(est)
    e = clone(est).set_params(learning_rate=lr * 1e4)
    try:
        e._validate_params()
    except InvalidParameterError as exc:  # refused up front: a clear error too
        assert "learning_rate" in str(exc)
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _fit(e, X, y)
    except DivergenceError as exc:
        assert "learning_rate" in str(exc)
        try:
            check_is_fitted(e)
        except NotFittedError:
            return
        raise AssertionError("a diverged fit left fitted attributes behind") from exc
    for k, v in _fitted_arrays(e).items():
        if v.dtype.kind == "f":
            assert np.isfinite(v).all(), f"non-finite {k} without an error"
    assert np.isfinite(outputs(e, X)).all()


def check_deterministic_given_random_state(est):
    """The same random_state gives bit-identical results, also with other thread counts."""
    from threadpoolctl import threadpool_limits

    X, y = make_data(est)
    e = clone(est).set_params(random_state=0) if _has_param(est, "random_state") else clone(est)
    a = outputs(_fit(clone(e), X, y), X)
    b = outputs(_fit(clone(e), X, y), X)
    np.testing.assert_array_equal(a, b)
    with threadpool_limits(limits=1):
        c = outputs(_fit(clone(e), X, y), X)
    # BLAS may sum in another order with another thread count: float tolerance
    np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-9)


def check_numpy_and_torch_agree(est):
    """backend='torch' (CPU) gives the NumPy result within float32 tolerance."""
    try:
        import torch  # noqa: F401
    except ImportError:
        _skip("torch is not installed")
    if not _has_param(est, "backend"):
        raise AssertionError("every sklhebb estimator takes a backend parameter")
    X, y = make_data(est)
    X = X.astype(np.float32)
    a = _fit(clone(est).set_params(backend="numpy"), X, y)
    b = _fit(clone(est).set_params(backend="torch"), X, y)
    np.testing.assert_allclose(outputs(b, X), outputs(a, X), rtol=1e-3, atol=1e-4)
    for k, v in _fitted_arrays(b).items():
        assert isinstance(v, np.ndarray), f"{k} is not a NumPy array"


def check_interrupted_fit_leaves_no_half_written_weights(est):
    """KeyboardInterrupt in the middle of fit: unfitted after a first fit, unchanged after a refit."""
    from . import _training

    X, y = make_data(est, n=60)
    original = _training.all_finite
    calls = {"n": 0}

    def interrupt_on_second_check(bk, params):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise KeyboardInterrupt
        return original(bk, params)

    e = clone(est)
    if _has_param(e, "max_iter"):
        e.set_params(max_iter=max(3, e.get_params()["max_iter"]))
    _training.all_finite = interrupt_on_second_check
    try:
        try:
            _fit(e, X, y)
        except KeyboardInterrupt:
            pass
        else:
            _skip("the fit ended before a second finiteness check: nothing to interrupt")
    finally:
        _training.all_finite = original
    try:
        check_is_fitted(e)
    except NotFittedError:
        pass
    else:
        raise AssertionError("an interrupted first fit left the estimator fitted")
    # interrupting a refit keeps the previous model intact
    _fit(e, X, y)
    before = _fitted_arrays(e)
    calls["n"] = 0
    _training.all_finite = interrupt_on_second_check
    try:
        try:
            _fit(e, X * 0.5, y)
        except KeyboardInterrupt:
            pass
    finally:
        _training.all_finite = original
    after = _fitted_arrays(e)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=f"{k} changed by an interrupted refit")


def check_fitted_state_is_plain(est):
    """Fitted state holds no device arrays, callables or open handles (portable, skops-safe).

    Looks at every attribute that is not a constructor parameter (those are the
    user's, and may be callables, such as a learning-rate schedule), and inside
    the lists, tuples, sets, dicts and dataclasses they hold.
    """
    X, y = make_data(est)
    e = _fit(clone(est), X, y)
    params = e.get_params(deep=False)
    for k, value in vars(e).items():
        if k in params:
            continue
        for path, v in _leaves(value, k):
            mod = type(v).__module__
            assert not mod.startswith(("torch", "cupy")), f"{path} is a {type(v)}"
            assert not (callable(v) and not inspect.isclass(v) and not isinstance(v, np.random.RandomState)), f"{path} is callable"
    copy.deepcopy(e)


ALL_CHECKS = [
    check_nan_and_inf_are_refused,
    check_degenerate_inputs_give_finite_output,
    check_memory_layouts_agree,
    check_huge_learning_rate_never_gives_silent_nan,
    check_deterministic_given_random_state,
    check_numpy_and_torch_agree,
    check_interrupted_fit_leaves_no_half_written_weights,
    check_fitted_state_is_plain,
]


def sklhebb_checks(estimator):
    """Yield the sklhebb checks for ``estimator`` (each a callable taking it)."""
    for check in ALL_CHECKS:
        yield functools.partial(check)
