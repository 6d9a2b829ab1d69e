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
