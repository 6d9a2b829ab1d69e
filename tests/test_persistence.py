"""Persistence: pickle, joblib and skops round trips; version stamp checked at load."""

import pickle

import joblib
import numpy as np
import pytest

import sklhebb
from sklhebb import KrotovPatchEncoder
from sklhebb.persistence import trusted_types


def _fitted():
    X = np.random.default_rng(0).random((20, 8, 8, 3)).astype(np.float32)
    return KrotovPatchEncoder(n_components=6, window=3, max_iter=1, random_state=0).fit(X), X


def test_trusted_types_lists_only_sklhebb_estimators():
    names = trusted_types()
    assert "sklhebb.encoders.krotov.KrotovPatchEncoder" in names
    assert all(n.startswith("sklhebb.") for n in names)
    assert not any("Backend" in n or "TrainResult" in n for n in names)  # private, never persisted


def test_skops_round_trip_with_explicit_trusted_list(tmp_path):
    sio = pytest.importorskip("skops.io")
    enc, X = _fitted()
    path = tmp_path / "enc.skops"
    sio.dump(enc, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert set(untrusted) <= set(trusted_types()), untrusted
    loaded = sio.load(path, trusted=trusted_types())
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))


def test_version_mismatch_warns_at_load(monkeypatch):
    enc, X = _fitted()
    blob = pickle.dumps(enc)
    monkeypatch.setattr(sklhebb, "__version__", "9.9.9")
    import sklhebb._base as base

    monkeypatch.setattr(base, "__version__", "9.9.9")
    with pytest.warns(UserWarning, match="saved with sklhebb 0"):
        loaded = pickle.loads(blob)
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))


def test_pickled_state_holds_no_device_objects():
    enc, _ = _fitted()
    state = enc.__getstate__()
    for key, value in state.items():
        assert not type(value).__module__.startswith(("torch", "cupy")), key
    assert state["_sklhebb_version"] == sklhebb.__version__


def test_joblib_round_trip_of_torch_fitted_model(tmp_path):
    pytest.importorskip("torch")
    X = np.random.default_rng(1).random((20, 8, 8, 1)).astype(np.float32)
    enc = KrotovPatchEncoder(n_components=6, window=3, max_iter=1, random_state=0, backend="torch").fit(X)
    joblib.dump(enc, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    assert isinstance(loaded.components_, np.ndarray)
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))


def _all_fast():
    from sklhebb.utils.discovery import all_estimators

    from ._settings import FAST_PARAMS

    return [(cls, FAST_PARAMS.get(name, {})) for name, cls in all_estimators()]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("cls,params", _all_fast(), ids=lambda v: getattr(v, "__name__", ""))
def test_every_estimator_round_trips_identically_on_every_backend(tmp_path, cls, params, backend):
    """pickle, joblib and skops give identical output for every fitted estimator and backend;
    fitted state is NumPy, so a model fitted on any backend loads without it."""
    if backend == "torch":
        pytest.importorskip("torch")
    from sklearn.base import is_classifier

    from sklhebb.estimator_checks import make_data, outputs

    est = cls(**params).set_params(backend=backend)
    X, y = make_data(est)
    X = X.astype(np.float32)
    est.fit(X, y) if y is not None else est.fit(X)
    ref = outputs(est, X)
    for k, v in vars(est).items():
        assert not type(v).__module__.startswith(("torch", "cupy")), k
    loaded = [pickle.loads(pickle.dumps(est))]
    joblib.dump(est, tmp_path / "m.joblib")
    loaded.append(joblib.load(tmp_path / "m.joblib"))
    sio = pytest.importorskip("skops.io")
    sio.dump(est, tmp_path / "m.skops")
    loaded.append(sio.load(tmp_path / "m.skops", trusted=trusted_types()))
    for m in loaded:
        np.testing.assert_array_equal(outputs(m, X), ref)
        if is_classifier(est):
            np.testing.assert_array_equal(m.predict(X), est.predict(X))


@pytest.mark.parametrize("cls,params", _all_fast(), ids=lambda v: getattr(v, "__name__", ""))
def test_gpu_model_loads_and_predicts_on_a_machine_without_one(cls, params):
    """A model saved with backend='torch', device='cuda' (as after GPU training) transforms and
    predicts on a CPU-only machine with a warning that names the problem; fitting there raises."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: tests/test_cuda.py covers the GPU itself")
    from sklearn.base import is_classifier

    from sklhebb.estimator_checks import make_data, outputs

    est = cls(**params)
    X, y = make_data(est)
    X = X.astype(np.float32)
    est.fit(X, y) if y is not None else est.fit(X)
    ref = outputs(est, X)
    # the fitted state of a GPU-trained model is NumPy as well; only the parameters differ
    gpu_model = pickle.loads(pickle.dumps(est.set_params(backend="torch", device="cuda")))
    with pytest.warns(UserWarning, match=r"device='cuda'.*cannot run.*NumPy"):
        out = outputs(gpu_model, X)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    if is_classifier(est):
        with pytest.warns(UserWarning, match="cannot run"):
            np.testing.assert_array_equal(gpu_model.predict(X), est.set_params(backend="numpy", device=None).predict(X))
    with pytest.raises(ValueError, match="no CUDA device"):
        gpu_model.fit(X, y) if y is not None else gpu_model.fit(X)
