"""scikit-learn's common checks over every estimator sklhebb exports, found automatically."""

import re

import pytest
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

# Further layouts of a class run through the same checks: the deep structured NSM with feedback and
# labels, and the image-shaped layouts (the convolutional and locally connected code paths).
# scikit-learn's checks fit 2-D X with 1 to 10 features, most with 3 and several with 2, while
# image_shape fixes H * W * C; so each image layout runs twice, on 1 x 3 and on 1 x 2 images, and a
# check whose X has another number of features skips (see _skip_if_image_shape_cannot_apply). Such
# small images leave room for 1 x 1 conv windows only; LocalCompetitiveEncoder's 3 x 3 receptive
# fields are zero-padded at the border (its parameter is still `receptive_field`, to become `window`).
EXTRA_PARAMS = [
    ("NSMEncoder", dict(n_components=3, hidden_layer_sizes=(2,), structure="local", gamma=0.2, alpha=0.5,
                        activation="tanh", max_iter=2, batch_size=16, random_state=0)),
] + [
    (name, dict(params, image_shape=image_shape))
    for image_shape in [(1, 3), (1, 2)]
    for name, params in [
        ("KrotovPatchEncoder", dict(n_components=4, window=1, max_iter=2, batch_size=16, random_state=0)),
        ("NSMEncoder", dict(n_components=4, window=1, max_iter=2, batch_size=16, random_state=0)),
        ("LocalCompetitiveEncoder", dict(hidden_layer_sizes=(3, 2), receptive_field=3, max_iter=3, batch_size=16,
                                         random_state=0)),
    ]
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
