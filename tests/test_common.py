"""scikit-learn's common checks over every estimator sklhebb exports, found automatically."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklhebb.utils.discovery import all_estimators

# Small settings so the checks run in seconds; one entry per estimator class.
FAST_PARAMS = {
    "KrotovPatchEncoder": dict(n_components=8, max_iter=2, batch_size=16, random_state=0),
    "LocalCompetitiveEncoder": dict(hidden_layer_sizes=(6, 4), max_iter=3, batch_size=16, random_state=0),
    "ActivationLearningClassifier": dict(n_units=24, label_repeat=4, max_iter=30, batch_size=16, random_state=0),
    "URFBClassifier": dict(architecture=(16,), max_iter=10, batch_size=16, random_state=0),
    "NSMEncoder": dict(n_components=4, max_iter=2, batch_size=16, random_state=0),
}

# Further layouts of a class run through the same checks (the deep structured NSM with feedback and labels).
EXTRA_PARAMS = [
    ("NSMEncoder", dict(n_components=3, hidden_layer_sizes=(2,), structure="local", gamma=0.2, alpha=0.5,
                        activation="tanh", max_iter=2, batch_size=16, random_state=0)),
]

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
    check(estimator)
