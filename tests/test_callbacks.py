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
