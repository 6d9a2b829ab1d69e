"""partial_fit under dask-ml's Incremental on a LocalCluster (processes, loopback), and
GridSearchCV over a sklhebb Pipeline on joblib's dask backend."""

import numpy as np
import pytest
from sklearn.base import clone, is_classifier

from sklhebb.utils.discovery import all_estimators

from ._settings import FAST_PARAMS

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
pytest.importorskip("dask_ml")

from sklhebb.distributed import Incremental, check_row_chunks  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _mean_output(est, X, y=None):
    out = est.transform(X) if hasattr(est, "transform") else est.predict_proba(X)
    return float(np.mean(out))


INCREMENTAL = [cls for _, cls in all_estimators() if hasattr(cls, "partial_fit")]


@pytest.mark.parametrize("cls", INCREMENTAL, ids=lambda c: c.__name__)
def test_incremental_drives_partial_fit_over_dask_blocks(client, cls):
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(120, 9))
    y = np.arange(120) % 3
    est = cls(**FAST_PARAMS.get(cls.__name__, {}))
    Xd = da.from_array(X, chunks=(40, 9))
    yd = da.from_array(y, chunks=40)
    kw = {"classes": np.unique(y)} if is_classifier(est) else {}
    inc = Incremental(clone(est), scoring=None if is_classifier(est) else _mean_output, shuffle_blocks=False)
    inc.fit(Xd, yd if is_classifier(est) else None, **kw)
    # the same three blocks, in order, through partial_fit by hand
    ref = clone(est)
    for i in range(3):
        sl = slice(40 * i, 40 * (i + 1))
        ref.partial_fit(X[sl], y[sl] if is_classifier(est) else None, **kw)
    assert inc.estimator_.n_features_in_ == 9
    got = inc.estimator_.transform(X) if hasattr(est, "transform") else inc.estimator_.predict_proba(X)
    want = ref.transform(X) if hasattr(est, "transform") else ref.predict_proba(X)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_column_chunks_are_refused_or_rechunked():
    Xd = da.from_array(np.zeros((20, 16)), chunks=(10, 8))
    with pytest.raises(ValueError, match="rechunk"):
        check_row_chunks(Xd)
    assert check_row_chunks(Xd, rechunk=True).numblocks == (2, 1)
    from sklhebb import KrotovPatchEncoder

    with pytest.raises(ValueError, match="columns"):
        Incremental(KrotovPatchEncoder(n_components=4, max_iter=1), scoring=_mean_output).fit(Xd)


def test_grid_search_on_joblib_dask_backend(client):
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    from sklhebb import KrotovPatchEncoder

    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(
        KrotovPatchEncoder(n_components=10, window=3, image_shape=(8, 8), pool_size=3, pool_stride=3, max_iter=1, random_state=0),
        LogisticRegression(max_iter=300),
    )
    search = GridSearchCV(pipe, {"krotovpatchencoder__power": [1, 2]}, cv=2, n_jobs=2)
    with joblib.parallel_config("dask"):
        search.fit(X[:300], y[:300])
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.best_score_ > 0.5


def test_module_docstring_cluster_recipe(client):
    """The recipe of sklhebb.distributed's docstring, on CPU workers: an encoder needs a scorer of its own."""
    import sklhebb.distributed
    from sklhebb import KrotovPatchEncoder

    assert "scoring=mean_feature" in sklhebb.distributed.__doc__

    def mean_feature(est, X, y=None):
        return float(est.transform(X).mean())

    X = np.random.RandomState(0).uniform(size=(60, 8 * 8 * 3))
    X_dask = da.from_array(X, chunks=(20, 8 * 8 * 3))
    enc = KrotovPatchEncoder(n_components=4, window=3, image_shape=(8, 8, 3), max_iter=1, random_state=0)
    inc = Incremental(enc, scoring=mean_feature, shuffle_blocks=True, random_state=0)
    inc.fit(X_dask)
    assert inc.estimator_.components_.shape == (4, 27)
    assert np.all(np.isfinite(inc.transform(X_dask).compute()))
    with pytest.raises(TypeError, match="score"):  # what the recipe's scoring=None did: the encoder has no score()
        Incremental(clone(enc), scoring=None).fit(X_dask)
