"""scikit-learn >= 1.9 callbacks: every epoch is a sub-task, callbacks can stop the fit,
nothing of them is pickled."""

import pickle

import numpy as np
import pytest

from sklhebb import KrotovPatchEncoder

pytest.importorskip("sklearn.callback")


class Recorder:
    """A FitCallback that records the tasks it sees and stops after `stop_after` epochs."""

    def __init__(self, stop_after=None):
        self.stop_after = stop_after
        self.events = []

    def setup(self, estimator, context):
        self.events.append(("setup", context.task_name))

    def on_fit_task_begin(self, estimator, context, **kwargs):
        self.events.append(("begin", context.task_name))

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, metadata=None):
        self.events.append(("end", context.task_name))
        if context.task_name == "epoch":
            assert fitted_estimator is not None
            assert np.isfinite(fitted_estimator.transform(np.ones((1, 8, 8, 1)))).all()
            n_epochs = sum(1 for e in self.events if e == ("end", "epoch"))
            return self.stop_after is not None and n_epochs >= self.stop_after
        return False

    def teardown(self, estimator, context):
        self.events.append(("teardown", context.task_name))


def _X():
    return np.random.default_rng(0).random((6, 8, 8, 1))


def test_each_epoch_is_a_subtask():
    rec = Recorder()
    enc = KrotovPatchEncoder(n_components=4, window=3, max_iter=3, random_state=0).set_callbacks(rec)
    enc.fit(_X())
    assert rec.events.count(("begin", "epoch")) == 3
    assert rec.events[0] == ("setup", "fit") and rec.events[-1] == ("teardown", "fit")


def test_a_callback_can_stop_the_fit_early():
    rec = Recorder(stop_after=2)
    enc = KrotovPatchEncoder(n_components=4, window=3, max_iter=10, random_state=0).set_callbacks(rec)
    enc.fit(_X())
    assert enc.n_iter_ == 2


def test_callbacks_are_not_pickled():
    enc = KrotovPatchEncoder(n_components=4, window=3, max_iter=1, random_state=0).set_callbacks(Recorder())
    enc.fit(_X())
    loaded = pickle.loads(pickle.dumps(enc))
    assert not hasattr(loaded, "_skl_callbacks")
    np.testing.assert_array_equal(loaded.transform(_X()), enc.transform(_X()))


def test_verbose_2_shows_a_tqdm_bar_that_is_not_kept(capsys):
    pytest.importorskip("tqdm")
    enc = KrotovPatchEncoder(n_components=4, window=3, max_iter=2, verbose=2, random_state=0).fit(_X())
    err = capsys.readouterr().err
    assert "KrotovPatchEncoder epoch 1/2" in err
    assert not any("tqdm" in type(v).__module__ for v in vars(enc).values())


# ------------------------------------------------------------------ every estimator
from sklearn.base import ClassifierMixin  # noqa: E402

from sklhebb.utils.discovery import all_estimators  # noqa: E402

from ._settings import FAST_PARAMS  # noqa: E402


def _data():
    rng = np.random.default_rng(0)
    X = rng.random((24, 16))
    y = np.arange(24) % 2
    return X, y


def _probe(est, X):
    out = est.predict(X[:3]) if isinstance(est, ClassifierMixin) else est.transform(X[:3])
    assert np.isfinite(np.asarray(out, dtype=float)).all()


class AnyRecorder(Recorder):
    """Recorder whose epoch check works for every estimator (transform or predict on the data)."""

    def __init__(self, X, stop_after=None):
        super().__init__(stop_after)
        self.X = X
        self.snapshots = []

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, metadata=None):
        self.events.append(("end", context.task_name))
        if context.task_name == "epoch":
            assert fitted_estimator is not None and fitted_estimator is not estimator
            _probe(fitted_estimator, self.X)
            self.snapshots.append(fitted_estimator)
            n_epochs = sum(1 for e in self.events if e == ("end", "epoch"))
            return self.stop_after is not None and n_epochs >= self.stop_after
        return False


def _make(cls, **kw):
    return cls(**{**FAST_PARAMS[cls.__name__], **kw})


ESTIMATORS = pytest.mark.parametrize("cls", [cls for _, cls in all_estimators()], ids=lambda c: c.__name__)


@ESTIMATORS
def test_every_estimator_reports_each_epoch_as_a_subtask(cls):
    X, y = _data()
    rec = AnyRecorder(X)
    est = _make(cls, max_iter=3).set_callbacks(rec)
    est.fit(X, y)
    assert rec.events.count(("begin", "epoch")) == rec.events.count(("end", "epoch")) == est.n_iter_
    assert est.n_iter_ >= 3
    assert rec.events[0] == ("setup", "fit") and rec.events[1] == ("begin", "fit")
    assert rec.events[-2:] == [("end", "fit"), ("teardown", "fit")]
    assert rec.events.count(("setup", "fit")) == 1
    # the snapshots are copies: later epochs do not rewrite an earlier epoch's weights
    first, last = rec.snapshots[0], rec.snapshots[-1]
    assert not np.array_equal(_probe_values(first, X), _probe_values(last, X)) or len(rec.snapshots) == 1


def _probe_values(est, X):
    if isinstance(est, ClassifierMixin):
        return np.asarray(est.predict_proba(X[:5]))
    return np.asarray(est.transform(X[:5]))


@ESTIMATORS
def test_every_estimator_stops_when_a_callback_asks(cls):
    X, y = _data()
    rec = AnyRecorder(X, stop_after=2)
    est = _make(cls, max_iter=6).set_callbacks(rec)
    est.fit(X, y)
    assert est.n_iter_ == 2
    assert rec.events.count(("end", "epoch")) == 2
    _probe(est, X)


@ESTIMATORS
def test_every_estimator_does_not_pickle_its_callbacks(cls):
    X, y = _data()
    est = _make(cls, max_iter=1).set_callbacks(AnyRecorder(X))
    est.fit(X, y)
    loaded = pickle.loads(pickle.dumps(est))
    assert not hasattr(loaded, "_skl_callbacks")
    np.testing.assert_array_equal(_probe_values(loaded, X), _probe_values(est, X))


def test_layerwise_competitive_training_is_one_fit_with_every_stage_epoch():
    from sklhebb import LocalCompetitiveEncoder

    X, _ = _data()
    rec = AnyRecorder(X)
    est = _make(LocalCompetitiveEncoder, max_iter=2, training="layerwise").set_callbacks(rec)
    est.fit(X)
    assert rec.events.count(("begin", "epoch")) == 4 == est.n_iter_  # 2 layers x 2 epochs
    assert rec.events.count(("setup", "fit")) == 1 and rec.events.count(("begin", "fit")) == 1

    rec = AnyRecorder(X, stop_after=3)  # stops in the second layer's first epoch
    est = _make(LocalCompetitiveEncoder, max_iter=2, training="layerwise").set_callbacks(rec)
    est.fit(X)
    assert est.n_iter_ == 3


def test_partial_fit_reports_its_epoch():
    from sklhebb import NSMEncoder

    X, _ = _data()
    rec = AnyRecorder(X)
    est = _make(NSMEncoder).set_callbacks(rec)
    est.partial_fit(X)
    assert rec.events.count(("end", "epoch")) == 1


@ESTIMATORS
def test_every_estimators_progress_bar_knows_its_total(cls, monkeypatch, capsys):
    # verbose=2: one tqdm bar per epoch whose total is the epoch's minibatches, so that it shows an ETA
    tqdm_auto = pytest.importorskip("tqdm.auto")
    bars = []

    class Recording(tqdm_auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.seen = 0
            bars.append(self)

        def __iter__(self):
            for item in super().__iter__():
                self.seen += 1
                yield item

    monkeypatch.setattr(tqdm_auto, "tqdm", Recording)
    X, y = _data()
    est = _make(cls, max_iter=2, verbose=2).fit(X, y)
    assert len(bars) == est.n_iter_
    assert [bar.total for bar in bars] == [bar.seen for bar in bars]
    assert sum(bar.seen for bar in bars) == est.n_steps_
    assert f"/{bars[0].total} [" in capsys.readouterr().err  # "i/total [elapsed<remaining": the ETA


def test_scikit_learns_progress_bar_runs_with_the_progress_extra():
    # the `progress` extra installs rich, which sklearn.callback.ProgressBar needs
    pytest.importorskip("rich")
    from sklearn.callback import ProgressBar

    enc = KrotovPatchEncoder(n_components=4, window=3, max_iter=3, random_state=0).set_callbacks(ProgressBar())
    enc.fit(_X())
    assert enc.n_iter_ == 3
