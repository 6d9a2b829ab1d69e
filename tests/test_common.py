"""scikit-learn's common checks over every estimator sklhebb exports, found automatically."""

import importlib
import inspect
import pkgutil

import pytest
from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks

import sklhebb
from sklhebb._base import BackendMixin

# Small settings so the checks run in seconds; one entry per estimator class.
FAST_PARAMS = {
    "KrotovPatchEncoder": dict(n_components=8, max_iter=2, batch_size=16, random_state=0),
    "LocalCompetitiveEncoder": dict(n_components=4, hidden_layer_sizes=(6,), max_iter=3, batch_size=16, random_state=0),
    "ActivationLearningClassifier": dict(hidden_layer_sizes=(24, 24), label_repeat=4, max_iter=30, batch_size=16, random_state=0),
    "URFBClassifier": dict(hidden_layer_sizes=(16,), max_iter=10, batch_size=16, random_state=0),
    "NSMEncoder": dict(n_components=4, max_iter=2, batch_size=16, random_state=0),
}

# Further layouts of a class run through the same checks (the deep structured NSM with feedback and labels).
EXTRA_PARAMS = [
    ("NSMEncoder", dict(n_components=3, hidden_layer_sizes=(2,), structure="local", gamma=0.2, alpha=0.5,
                        activation="tanh", max_iter=2, batch_size=16, random_state=0)),
]

# Checks an estimator is known to fail, with the reason written down.
EXPECTED_FAILURES = {}


def all_estimators():
    """Every public sklhebb estimator (a BaseEstimator built on BackendMixin) in the package."""
    found = {}
    for mod in pkgutil.walk_packages(sklhebb.__path__, prefix="sklhebb."):
        if any(part.startswith("_") for part in mod.name.split(".")[1:]) or ".tests" in mod.name:
            continue
        module = importlib.import_module(mod.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, BaseEstimator)
                and issubclass(cls, BackendMixin)
                and cls.__module__.startswith("sklhebb.")
                and not name.startswith("_")
                and not inspect.isabstract(cls)
            ):
                found[name] = cls
    return [found[k] for k in sorted(found)]


def _instances():
    for cls in all_estimators():
        yield cls(**FAST_PARAMS.get(cls.__name__, {}))
        for name, params in EXTRA_PARAMS:
            if name == cls.__name__:
                yield cls(**params)


def test_discovery_finds_the_flagship():
    names = {cls.__name__ for cls in all_estimators()}
    assert "KrotovPatchEncoder" in names


def test_every_discovered_estimator_has_fast_params():
    missing = [cls.__name__ for cls in all_estimators() if cls.__name__ not in FAST_PARAMS]
    assert not missing, f"add FAST_PARAMS for {missing}"


@parametrize_with_checks(
    list(_instances()),
    expected_failed_checks=lambda est: EXPECTED_FAILURES.get(type(est).__name__, {}),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
