"""sklhebb's own check suite over every estimator (beside scikit-learn's common checks),
plus property-based hostile-input tests."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import BaseEstimator, clone, is_classifier

from sklhebb.estimator_checks import (
    ALL_CHECKS,
    check_fitted_state_is_plain,
    check_huge_learning_rate_never_gives_silent_nan,
    outputs,
)
from sklhebb.utils.discovery import all_estimators

from ._settings import FAST_PARAMS


def _checked(cls):
    est = cls(**FAST_PARAMS.get(cls.__name__, {}))
    # these checks are about robustness, not accuracy: a few epochs are enough
    if "max_iter" in est.get_params():
        est.set_params(max_iter=min(est.get_params()["max_iter"], 5))
    return est


ESTIMATORS = [_checked(cls) for _, cls in all_estimators()]


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_sklhebb_check(estimator, check):
    check(clone(estimator))


finite_or_hostile = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([0.0, 1e-30, -1e-30, 1e6, 1.0]),
)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_values_give_finite_output_or_clear_error(estimator, data):
    n = data.draw(st.integers(3, 12), label="n")
    d = data.draw(st.integers(1, 6), label="d")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    X = data.draw(arrays(dtype, (n, d), elements=finite_or_hostile), label="X")
    y = np.arange(n) % 2 if is_classifier(estimator) else None
    est = clone(estimator)
    try:
        est.fit(X, y) if y is not None else est.fit(X)
    except ValueError as exc:  # includes DivergenceError: must explain itself
        assert len(str(exc)) > 20
        return
    out = outputs(est, X)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("window,size", [(4, 3), (2, 1)])
def test_images_smaller_than_the_window_give_a_clear_error(window, size):
    from sklhebb import KrotovPatchEncoder

    X = np.ones((3, size, size, 1))
    with pytest.raises(ValueError, match="larger than the images"):
        KrotovPatchEncoder(window=window, n_components=4).fit(X)


def test_single_pixel_images_are_encoded():
    from sklhebb import KrotovPatchEncoder

    X = np.random.default_rng(0).random((6, 1, 1, 3))
    enc = KrotovPatchEncoder(window=1, n_components=4, max_iter=1, random_state=0).fit(X)
    assert np.isfinite(enc.transform(X)).all()


def _tensor():
    import torch

    return torch.zeros(2)


FITTED_STATES = {
    "tensor in a list": lambda: [_tensor()],
    "tensor in a tuple": lambda: (np.zeros(2), _tensor()),
    "tensor in a dict": lambda: {"W": _tensor()},
    "tensor nested": lambda: [{"layers": (np.zeros(2), [_tensor()])}],
    "callable in a list": lambda: [len],
    "plain": lambda: {"coefs": [np.zeros(2), (np.ones(1), 3)], "shape": (8, 8)},
}


class _HoldsState(BaseEstimator):
    """A stand-in estimator whose fit stores ``FITTED_STATES[state]`` as a fitted attribute."""

    def __init__(self, state="plain", schedule=None):
        self.state = state
        self.schedule = schedule

    def fit(self, X, y=None):
        self.state_ = FITTED_STATES[self.state]()
        return self

    def transform(self, X):
        return X


@pytest.mark.parametrize("state", [k for k in FITTED_STATES if k != "plain"])
def test_fitted_state_check_looks_inside_containers(state):
    pytest.importorskip("torch")
    with pytest.raises(AssertionError, match=r"state_\["):
        check_fitted_state_is_plain(_HoldsState(state))


def test_fitted_state_check_accepts_numpy_in_containers_and_a_callable_parameter():
    check_fitted_state_is_plain(_HoldsState("plain", schedule=lambda epoch, n_epochs: 1.0))


def test_a_check_that_cannot_apply_skips_with_its_reason():
    with pytest.raises(pytest.skip.Exception, match="no learning_rate parameter"):
        check_huge_learning_rate_never_gives_silent_nan(_HoldsState())


def test_without_pytest_a_check_skips_through_unittest(monkeypatch):
    import sys
    import unittest

    monkeypatch.setitem(sys.modules, "pytest", None)
    with pytest.raises(unittest.SkipTest, match="no learning_rate parameter"):
        check_huge_learning_rate_never_gives_silent_nan(_HoldsState())
