"""Every parameter of every estimator: a bad value is refused when fit starts, by scikit-learn's parameter
validation, with a message that names the parameter and its allowed values; and every parameter is
described in the class docstring."""

import inspect
import re

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from sklhebb.utils.discovery import all_estimators

from ._settings import FAST_PARAMS

ESTIMATORS = dict(all_estimators())

# bad values by parameter name (the same name means the same kind of value in every estimator)
BAD = {
    "n_components": [0, -1, 2.5, "10"],
    "hidden_layer_sizes": [(-5,), (0,), (2.5,), ("a",), (True,), 5, "conv -5 3x3"],
    "window": [0, -1, 2.5, "big"],
    "stride": [0, 1.5],
    "power": [0, -1],
    "pool_size": [0],
    "pool_stride": [0],
    "p": [0.5],
    "rank": [0],
    "delta": [-0.1],
    "learning_rate": [0, -1, "fast"],
    "schedule": ["cosine", 3],
    "max_iter": [0, 2.5],
    "batch_size": [0, "big"],
    "shuffle": ["yes", 2],
    "normalize_update": ["yes"],
    "center": ["yes"],
    "whiten": [0.0, -0.1, "yes"],
    "output_layout": ["nchw", None],
    "image_shape": [(0, 4), (4,), (-4, -4), (4, 4, 1, 1), (2.5, 4), "4x4"],
    "chunk_size": [0],
    "backend": ["jax"],
    "random_state": ["seed", -1],
    "verbose": [-1, "loud"],
    "activation": ["sigmoid"],
    "training": ["greedy"],
    "return_layers": ["bottom"],
    "normalize_input": ["yes"],
    "feature_scale": [0, "big"],
    "init_std": [0],
    "stat_momentum": [1.5, -0.1],
    "threshold": [-1],
    "cap": [0],
    "tau": [0],
    "max_iter_dynamics": [0],
    "tol": [-1],
    "dynamics_step": [0],
    "dynamics": ["fast"],
    "alpha": [-1],
    "normalize_patches": ["yes"],
    "pool": ["avg"],
    "gamma": [-1],
    "layer_input_scale": [0, -1, (0,), ("a",), ()],
    "structure": ["global"],
    "site_stride": [0, (0,), (2.5,), ("a",), ()],
    "radius": [-1, (-1,), ("a",)],
    "lateral_radius": [-1, (-1,)],
    "input_scale": [0, "max"],
    "feedback": ["fa"],
    "feedback_init": ["zero"],
    "loss": ["l2"],
    "off_class_weight": [-1],
    "ramp_scale": [0],
    "feedback_learning_rate": [-1],
    "connectivity": [0, 1.5],
    "untied": ["yes"],
    "untied_init": ["zero"],
    "feedback_refresh": ["batch"],
    "propagate_with": ["never"],
    "error_clip": [-1],
    "use_bias": ["yes"],
    "label_repeat": [0],
    "input_strength": [0],
    "label_strength": [0],
    "unlearning_factor": [-1],
    "gap_slope": [-1, "steep"],
    "renormalize_gamma": ["yes"],
    "feedback_update": ["parallel"],
    "feedback_order": ["random"],
    "unlearning_threshold": ["low"],
    "weight_decay": [-1],
    "weight_clip": [0],
    "temperature": [0],
}
# bad values of one estimator only (an empty network is fine where there is a top layer anyway)
BAD_FOR = {"ActivationLearningClassifier": {"hidden_layer_sizes": [()]}}
# device: whether a device exists is the backend's to say (when fit starts; see test_bad_device_is_named)
NOT_IN_TABLE = {"device"}

CASES = [
    (name, param, value)
    for name, cls in ESTIMATORS.items()
    for param in inspect.signature(cls).parameters
    if param not in NOT_IN_TABLE
    for value in BAD.get(param, []) + BAD_FOR.get(name, {}).get(param, [])
]


def _data():
    X = np.random.default_rng(0).random((40, 16))
    return X, np.arange(40) % 3


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_parameter_has_bad_values_in_the_table(name):
    params = set(inspect.signature(ESTIMATORS[name]).parameters) - NOT_IN_TABLE
    assert params - set(BAD) == set()


@pytest.mark.parametrize("name, param, value", CASES, ids=[f"{n}-{p}={v!r}" for n, p, v in CASES])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_bad_value_is_refused_by_parameter_validation(name, param, value, method):
    est = ESTIMATORS[name](**{**FAST_PARAMS[name], param: value})
    X, y = _data()
    kwargs = {"classes": np.unique(y)} if method == "partial_fit" and name.endswith("Classifier") else {}
    with pytest.raises(InvalidParameterError, match=rf"^The '{param}' parameter of {name} must be ") as info:
        getattr(est, method)(X, y, **kwargs)
    # the allowed values are spelled out, and the bad one is quoted back
    assert f"Got {value!r} instead." in str(info.value)
    assert not hasattr(est, "n_iter_")


def test_layer_spec_message_lists_the_notation():
    from sklhebb import URFBClassifier

    X, y = _data()
    with pytest.raises(InvalidParameterError, match=r"'hidden_layer_sizes'.*tuple of positive ints.*'conv 32 5x5'.*'simpnet'"):
        URFBClassifier(hidden_layer_sizes=(-5,)).fit(X, y)
    URFBClassifier(hidden_layer_sizes="full 8; drop .5", max_iter=1).fit(X, y)  # a valid spec passes


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_bad_device_is_named(name):
    X, y = _data()
    with pytest.raises(ValueError, match=r"got device='tpu'"):
        ESTIMATORS[name](**FAST_PARAMS[name], device="tpu").fit(X, y)


# ------------------------------------------------------------------ docstrings
COMMON = ("batch_size", "shuffle", "backend", "device", "random_state", "verbose")


def _documented(cls):
    """{parameter name: its description} from the numpydoc Parameters section of the class docstring."""
    doc = inspect.getdoc(cls)
    section = re.search(r"^Parameters\n-+\n(.*?)(?=^\w[\w ]*\n-+\n)", doc, flags=re.S | re.M).group(1)
    entries, current = {}, None
    for line in section.splitlines():
        if line and not line.startswith(" "):
            names, _, _ = line.partition(" : ")
            current = [n.strip() for n in names.split(",")]
            for n in current:
                entries[n] = ""
        elif current:
            for n in current:
                entries[n] += line.strip() + " "
    return entries


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_parameter_is_documented(name):
    cls = ESTIMATORS[name]
    entries = _documented(cls)
    params = list(inspect.signature(cls).parameters)
    assert [p for p in params if p not in entries] == []
    # the common parameters have a description, not only a type line
    assert [p for p in COMMON if p in params and len(entries[p].split()) < 4] == []
