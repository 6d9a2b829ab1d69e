"""The epoch loop shared by every estimator, its learning-rate schedules and its streams of rows.

:func:`train` runs the epochs: learning rate per epoch (:func:`learning_rate_at`),
progress lines, divergence checks and scikit-learn's per-epoch callbacks. An
estimator gives it its parameters (device arrays in a dict, updated in place),
a function that yields the minibatches of one epoch and a ``step(params,
batch, lr)``; everything else it reads from the estimator's hooks. The fit
skeleton around it (initialisation, stages, bookkeeping, storing fitted
state) is :class:`sklhebb._base.HebbianEstimator`. Nothing is written to the
estimator until the loop returns, so an interrupted or diverging fit never
leaves half-written weights behind.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import _ranks
from ._backend import resolve

__all__ = ["DivergenceError", "TrainResult", "learning_rate_at", "train", "begin_fit_callbacks", "end_fit_callbacks", "all_finite", "RowStream"]


class DivergenceError(FloatingPointError, ValueError):
    """Weights became NaN or infinite during fit.

    The estimator keeps the state it had before the call (unfitted after a
    failed ``fit``; the previous weights after a failed ``partial_fit``).
    """


def learning_rate_at(schedule, lr0: float, epoch: int, n_epochs: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based) out of ``n_epochs``: the one schedule of every estimator.

    * ``"constant"``: lr0.
    * ``"linear"``: lr0 * (1 - epoch / n_epochs), falling linearly to zero over
      the epochs as in Krotov & Hopfield's code (the first epoch uses lr0).
    * ``"step"``: lr0, multiplied by 0.1 from epoch floor(0.9 * n_epochs) on
      (Zhou's schedule; never the first epoch).
    * a callable ``schedule(epoch, n_epochs) -> factor``: lr0 * factor.
    """
    if callable(schedule):
        return lr0 * float(schedule(epoch, n_epochs))
    if schedule == "constant":
        return lr0
    if schedule == "linear":
        return lr0 * (1.0 - epoch / n_epochs)
    if schedule == "step":
        cut = int(math.floor(STEP_DECAY_AT * n_epochs))
        return lr0 * (STEP_DECAY_FACTOR if cut >= 1 and epoch >= cut else 1.0)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; use 'constant', 'linear', 'step' or a callable.")


# the "step" schedule: x0.1 from 90 % of the epochs on (Zhou 2022, spec 5.1)
STEP_DECAY_AT = 0.9
STEP_DECAY_FACTOR = 0.1


def all_finite(bk, params: dict) -> bool:
    """True when every array in ``params`` is free of NaN and infinity."""
    xp = bk.xp
    return all(bool(xp.all(xp.isfinite(a))) for a in params.values())


@dataclass
class TrainResult:
    params: dict
    n_epochs: int
    n_steps: int
    history: list
    stopped: bool = False  # a callback asked to stop (after epoch n_epochs)


def train(est, bk, params: dict, epoch_fn, step_fn, *, n_epochs: int, lr_at, ctx=None, n_batches=None) -> TrainResult:
    """The epoch loop of every estimator: ``n_epochs`` passes of ``step_fn`` over ``epoch_fn(epoch)``.

    ``step_fn(params, batch, lr)`` updates the device arrays of ``params`` in
    place; ``lr_at(epoch)`` gives the learning rate. The rest comes from the
    estimator's hooks (:class:`sklhebb._base.HebbianEstimator`): its name and
    ``verbose`` for progress lines, ``_monitor`` for their extra text,
    ``_divergence_hint`` for the error when weights turn NaN or infinite,
    ``_epoch_record`` for what each epoch's record holds besides its number,
    learning rate, steps and time (``step_fn`` may return a dict of numbers
    for its minibatch; their sums over the epoch go to ``_epoch_record``), and
    ``_fitted_attributes`` for the per-epoch snapshots that scikit-learn's
    callbacks receive. ``ctx`` is the fit's root callback task (or None); each
    epoch is a sub-task of it, and a callback that asks to stop ends training
    after the current epoch (``result.stopped``). ``n_batches``, the minibatches
    per epoch (the stream's ``n_batches``), is the total of the ``verbose=2``
    progress bar, so that it shows an ETA.
    """
    # divergence is detected explicitly; NumPy's overflow warnings would only add noise
    with np.errstate(over="ignore", invalid="ignore"):
        return _epochs(est, bk, params, epoch_fn, step_fn, n_epochs, lr_at, ctx, n_batches)


def begin_fit_callbacks(estimator, X=None, y=None, *, max_subtasks):
    """Open the root "fit" task of ``estimator``'s scikit-learn callbacks.

    Returns the root context, or None when the estimator has no callbacks (or
    scikit-learn is older than 1.9). Call once per fit; ``max_subtasks`` is the
    number of epochs the whole fit may run (None when unknown).
    """
    if estimator is None or not getattr(estimator, "_skl_callbacks", None):
        return None
    if not hasattr(estimator, "_init_callback_context"):
        return None
    ctx = estimator._init_callback_context(max_subtasks=max_subtasks)
    ctx.call_on_fit_task_begin(estimator=estimator, X=X, y=y)
    return ctx


def end_fit_callbacks(ctx, estimator, X=None, y=None, reconstruct=None, params=None):
    """Close the root task opened by :func:`begin_fit_callbacks` (no-op for None)."""
    if ctx is not None:
        ctx.call_on_fit_task_end(estimator=estimator, X=X, y=y, reconstruction_attributes=_lazy(reconstruct, params))


def _lazy(reconstruct, params):
    # a deep copy: NumPy (and torch-CPU) params are updated in place by later steps, and a
    # callback may keep the fitted estimator it was given (a snapshot per epoch)
    return None if reconstruct is None else (lambda: copy.deepcopy(reconstruct(params)))


def _epochs(est, bk, params, epoch_fn, step_fn, n_epochs, lr_at, ctx, n_batches):
    name, verbose = type(est).__name__, est.verbose
    n_steps = 0
    history = []
    t_start = time.perf_counter()
    for epoch in range(n_epochs):
        sub = None
        if ctx is not None:
            sub = ctx.subcontext(task_name="epoch")
            sub.call_on_fit_task_begin(estimator=est)
        lr = lr_at(epoch)
        t0 = time.perf_counter()
        it = epoch_fn(epoch)
        bar = _progress(it, verbose, name, epoch, n_epochs, n_batches)
        steps_here = 0
        totals = {}  # what the steps report (a dict of numbers each, e.g. a loss summed over the minibatch), added up
        for batch in bar:
            stats = step_fn(params, batch, lr)
            if stats:
                for key, value in stats.items():
                    totals[key] = totals[key] + value if key in totals else value
            n_steps += 1
            steps_here += 1
            if n_steps % _CHECK_EVERY == 0 and not all_finite(bk, params):
                _diverged(name, epoch, n_steps, lr, est._divergence_hint)
        if bar is not it:
            bar.close()
        if not all_finite(bk, params):
            _diverged(name, epoch, n_steps, lr, est._divergence_hint)
        bk.synchronize()
        totals = _combined(totals)
        dt = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "learning_rate": lr, "steps": steps_here, "time": dt}
        added = est._epoch_record(bk, params, totals)
        record.update(added)
        history.append(record)
        if verbose:
            text = est._monitor(bk, params)
            extra = "".join(f", {k} = {v:.4g}" for k, v in added.items() if isinstance(v, float))
            extra += f", {text}" if text else ""
            print(
                f"[{name}] epoch {epoch + 1}/{n_epochs}, lr = {lr:.3g}, {steps_here} steps{extra}, time = {dt:.2f}s",
                file=sys.stdout,
                flush=True,
            )
        if sub is not None and sub.call_on_fit_task_end(
            estimator=est, metadata=record, reconstruction_attributes=_lazy(est._fitted_attributes, params)
        ):
            return TrainResult(params, epoch + 1, n_steps, history, stopped=True)
    if verbose:
        print(f"[{name}] done in {time.perf_counter() - t_start:.2f}s, {n_steps} steps", flush=True)
    return TrainResult(params, n_epochs, n_steps, history)


def _combined(totals):
    """The epoch's step statistics summed over the ranks under data_parallel (one all-reduce)."""
    if _ranks.active() is None or not totals:
        return totals
    keys = sorted(totals)
    values = _ranks.sum_over_ranks(resolve("numpy"), np.array([float(totals[k]) for k in keys]))
    return {k: float(v) for k, v in zip(keys, values)}


# minibatch steps between finiteness checks (one device synchronisation each)
_CHECK_EVERY = 100


def _diverged(name, epoch, n_steps, lr, hint):
    raise DivergenceError(
        f"{name}: weights became NaN or infinite in epoch {epoch + 1} (by step {n_steps}) "
        f"at learning rate {lr:.3g}; {hint}. The estimator was left as it was before this call."
    )


def _progress(it, verbose, name, epoch, n_epochs, n_batches):
    if verbose < 2:
        return it
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional
        return it
    return tqdm(it, desc=f"{name} epoch {epoch + 1}/{n_epochs}", total=n_batches, leave=False, unit="batch")


class RowStream:
    """Minibatches of rows (and labels) moved to the device chunk by chunk.

    Parameters
    ----------
    bk : Backend
    X : array (n, ...) on the host (NumPy, memmap) or on ``bk``
    batch_size : int
    dtype : str
        Compute dtype for X ('float32' or 'float64').
    y : array (n,), optional
        Integer-encoded targets travelling with X (moved as int64).
    chunk_size : int, optional
        Rows moved to the device at a time (default: 64 batches).

    ``epoch(rng)`` yields one pass of ``Xb`` (or ``(Xb, yb)`` with ``y``):
    with an ``rng`` (NumPy RandomState) the rows are permuted on the host, so
    every backend sees the same order; with None they come in order. Every
    batch has ``batch_size`` rows but the last one of the pass: ``n_batches``
    per pass.
    """

    def __init__(self, bk, X, batch_size, dtype, y=None, chunk_size=None):
        self.bk = bk
        self.X = X
        self.y = y
        self.batch_size = int(batch_size)
        self.dtype = dtype
        self.chunk_size = int(chunk_size) if chunk_size else 64 * self.batch_size
        # chunks hold whole batches so that batch boundaries do not depend on them
        self.chunk_size = max(self.batch_size, (self.chunk_size // self.batch_size) * self.batch_size)
        self.n_batches = -(-X.shape[0] // self.batch_size)

    @property
    def n_items(self):
        """Rows in one pass."""
        return self.X.shape[0]

    def empty(self):
        """A minibatch of no rows, shaped like the others (a data-parallel rank whose shard has run out)."""
        Xb = self.bk.zeros((0,) + tuple(self.X.shape[1:]), dtype=self.bk.dtype(self.dtype))
        return Xb if self.y is None else (Xb, self.bk.zeros((0,), dtype=self.bk.dtype("int64")))

    def epoch(self, rng=None):
        from .image import to_device_chunk

        n = self.X.shape[0]
        order = None if rng is None else rng.permutation(n)
        for start in range(0, n, self.chunk_size):
            index = slice(start, min(start + self.chunk_size, n)) if order is None else order[start : start + self.chunk_size]
            Xc = to_device_chunk(self.bk, self.X, index, self.dtype)
            yc = None if self.y is None else self.bk.asarray(self.y[index], dtype="int64")
            for b in range(0, Xc.shape[0], self.batch_size):
                Xb = Xc[b : b + self.batch_size]
                yield Xb if yc is None else (Xb, yc[b : b + self.batch_size])
