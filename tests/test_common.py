"""scikit-learn's common checks over every estimator sklhebb exports, found automatically."""

import re

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklhebb.utils.discovery import all_estimators

from ._settings import EXTRA_PARAMS, FAST_PARAMS

# Checks an estimator is known to fail, with the reason written down.
EXPECTED_FAILURES = {}


def _instances():
    for _, cls in all_estimators():
        yield cls(**FAST_PARAMS.get(cls.__name__, {}))
        for name, params in EXTRA_PARAMS:
            if name == cls.__name__:
                yield cls(**params)


def test_discovery_finds_the_flagship():
    names = {name for name, _ in all_estimators()}
    assert "KrotovPatchEncoder" in names


def test_every_discovered_estimator_has_fast_params():
    missing = [name for name, _ in all_estimators() if name not in FAST_PARAMS]
    assert not missing, f"add FAST_PARAMS for {missing}"


@parametrize_with_checks(
    list(_instances()),
    expected_failed_checks=lambda est: EXPECTED_FAILURES.get(type(est).__name__, {}),
)
def test_sklearn_compatible_estimator(estimator, check):
    if estimator.get_params().get("image_shape") is None:
        check(estimator)
        return
    try:
        check(estimator)
    except (AssertionError, ValueError) as exc:
        _skip_if_image_shape_cannot_apply(exc, estimator.image_shape)
        raise


def _skip_if_image_shape_cannot_apply(exc, image_shape):
    """Skip when the check's X has another number of features than ``image_shape`` allows.

    That is when sklhebb's own image_shape error is the exception or its cause (the check cannot
    apply to an estimator built for one image size); any other failure is a real one.
    """
    while exc is not None:
        found = re.search(r"image_shape=\(.*?\) does not match X with (\d+) features", str(exc))
        if found:
            pytest.skip(f"the check fits X with {found[1]} features; image_shape={image_shape} takes another number")
        exc = exc.__cause__ or exc.__context__
