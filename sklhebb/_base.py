"""What every sklhebb estimator shares: the fit/partial_fit skeleton (HebbianEstimator),
backend parameters, dtype policy, input validation for images and foreign arrays, and
persistence hygiene."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import warnings

import numpy as np
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets
from sklearn.utils.validation import _assert_all_finite, check_consistent_length, check_is_fitted, validate_data

from . import __version__, _ranks
from ._backend import DeviceUnavailableError, backend_of, is_foreign_array, resolve, to_numpy, to_output
from ._threads import fit_threads
from ._training import TrainResult, begin_fit_callbacks, end_fit_callbacks, learning_rate_at, train
from .image import as_image_stack, iter_chunks, to_device_chunk

BACKEND_CONSTRAINTS = {
    "backend": [StrOptions({"numpy", "torch", "cupy"})],
    "device": [None, str, object],  # str or a torch.device / cupy Device
}


def compute_dtype(X) -> str:
    """float64 input computes in float64; everything else (uint8 images,
    integers, float32) in float32, the precision the papers used."""
    name = str(getattr(X, "dtype", "")).split(".")[-1]
    return "float64" if name == "float64" else "float32"


try:  # scikit-learn >= 1.9: the callback API (progress bars, monitors, early stop)
    from sklearn.callback import CallbackSupportMixin as _CallbackBase
except ImportError:  # pragma: no cover - older scikit-learn

    class _CallbackBase:
        pass


# True while a fit or partial_fit of some sklhebb estimator runs (in this thread/context)
_FITTING = contextvars.ContextVar("sklhebb_fitting", default=False)

# attributes of the callback machinery: never pickled
_CALLBACK_STATE = ("_skl_callbacks", "_skl_callbacks_to_teardown", "_callback_fit_ctx", "_parent_callback_ctx")


def transactional(method):
    """Run a fitting method as a transaction on the estimator's state.

    If the method raises anything (a DivergenceError, bad input found in a
    later chunk, KeyboardInterrupt), the estimator's ``__dict__`` is restored
    to what it was before the call: an interrupted first ``fit`` leaves an
    unfitted estimator, an interrupted refit or ``partial_fit`` the previous
    model, never half-written weights.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        saved = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        token = _FITTING.set(True)
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        finally:
            _FITTING.reset(token)

    wrapper.__sklhebb_transactional__ = True
    return wrapper


class BackendMixin(_CallbackBase):
    """Backend resolution, transactional fitting and persistence for sklhebb estimators.

    * ``fit`` and ``partial_fit`` of every subclass are wrapped by
      :func:`transactional` (in ``__init_subclass__``), so a failed or
      interrupted call leaves the estimator as it was.
    * Fitted public attributes are NumPy arrays, so the pickled state never
      holds a device object; the state carries the sklhebb version and a
      mismatch at load time gives a warning.
    * With scikit-learn >= 1.9, ``set_callbacks(ProgressBar(), ...)`` works:
      the driver reports each epoch as a sub-task; callbacks are not pickled.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("fit", "partial_fit"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__sklhebb_transactional__", False):
                setattr(cls, name, transactional(method))

    def _backend(self, X=None):
        """The backend to compute on: ``backend``/``device``, or that of a torch/CuPy ``X``.

        A fitted model whose ``backend``/``device`` this machine cannot run (a
        model trained on a GPU, loaded on a laptop) still transforms and
        predicts: outside fit it warns and computes with NumPy on the CPU (the
        fitted state is NumPy). Fitting on an unavailable device raises.
        """
        try:
            return resolve(self.backend, self.device, X)
        except (DeviceUnavailableError, ImportError) as exc:  # no such device or library here
            if _FITTING.get():
                raise
            warnings.warn(
                f"{type(self).__name__} has backend={self.backend!r}, device={self.device!r}, which this "
                f"machine cannot run ({exc}). Computing on the CPU with NumPy instead; "
                "set_params(backend='numpy', device=None) makes this explicit and silences this warning.",
                UserWarning,
                stacklevel=3,
            )
            return resolve("numpy", None, X)

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = {k: v for k, v in dict(state).items() if k not in _CALLBACK_STATE}
        state["_sklhebb_version"] = __version__
        return state

    def __setstate__(self, state):
        version = state.pop("_sklhebb_version", None)
        if version is not None and version != __version__:
            warnings.warn(
                f"Loading a {type(self).__name__} saved with sklhebb {version} into sklhebb "
                f"{__version__}; results may differ. Refit, or install sklhebb=={version}.",
                UserWarning,
                stacklevel=2,
            )
        if hasattr(super(), "__setstate__"):
            super().__setstate__(state)
        else:  # pragma: no cover
            self.__dict__.update(state)


# image_shape="auto": rows of s * s features, s >= 8, are s x s images (digits, MNIST rows)
_AUTO_MIN_SIDE = 8


def resolve_image_shape(image_shape, X):
    """``image_shape`` with "auto" resolved for ``X``: square rows of side s >= 8 are s x s images,
    other rows (and 3-D/4-D input, which carries its own shape) get None."""
    if not (isinstance(image_shape, str) and image_shape == "auto"):
        return image_shape
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        return None
    side = math.isqrt(int(shape[1]))
    return (side, side) if side >= _AUTO_MIN_SIDE and side * side == int(shape[1]) else None


def validate_images(est, X, *, image_shape=None, reset: bool):
    """Validate ``X`` as images, set or check ``n_features_in_`` / ``image_shape_``.

    Returns the (n, H, W, C) stack (a view of ``X`` where possible). 2-D input
    (and DataFrames) goes through scikit-learn's ``validate_data`` for
    feature-name and feature-count bookkeeping; 3-D/4-D input records its
    image shape. After fit, 2-D input is reshaped to the fitted image shape.
    """
    ndim = getattr(X, "ndim", None)
    if ndim is not None and ndim < 2:
        as_image_stack(X)  # raises the "Reshape your data" error
    if not is_foreign_array(X) and (ndim is None or ndim <= 2):
        validate_data(est, X, skip_check_array=True, reset=reset)
    if reset:
        # 2-D rows without image_shape are flat vectors (one patch each), not 1x1 images
        est._flat_input = bool(ndim == 2 and image_shape is None) or (ndim is None and image_shape is None)
        images = as_image_stack(X, image_shape)
        if image_shape is not None and ndim is not None and ndim >= 3:
            _warn_unused_image_shape(est, image_shape, tuple(int(s) for s in images.shape[1:]))
        est.image_shape_ = tuple(int(s) for s in images.shape[1:])
        est.n_features_in_ = math.prod(est.image_shape_)
        return images
    fitted = est.image_shape_
    if ndim is not None and ndim >= 3:
        images = as_image_stack(X)
        if tuple(images.shape[1:]) != fitted:
            raise ValueError(f"X has images of shape {tuple(images.shape[1:])}, but {type(est).__name__} was fitted on images of shape {fitted}.")
        return images
    images = as_image_stack(X)  # (n, 1, 1, d)
    d = images.shape[-1]
    if d != est.n_features_in_:
        raise ValueError(f"X has {d} features, but {type(est).__name__} is expecting {est.n_features_in_} features as input.")
    return images.reshape((images.shape[0],) + fitted)


def _warn_unused_image_shape(est, image_shape, shape):
    """``image_shape`` only reshapes 2-D rows: with image-shaped X it has no effect; say so where it disagrees."""
    given = tuple(int(s) for s in image_shape)
    if given != shape and given + (1,) != shape:
        warnings.warn(
            f"{type(est).__name__}: image_shape={tuple(image_shape)} has no effect: X is already image-shaped, "
            f"with images of shape {shape}, which are used as they are. image_shape only reshapes 2-D rows; "
            "set image_shape=None to silence this warning.",
            UserWarning,
            stacklevel=4,
        )


def host_normal(rng, shape, dtype: str) -> np.ndarray:
    """Standard-normal weights drawn on the host (same on every backend)."""
    return rng.standard_normal(size=shape).astype(dtype)


def _float_dtype(arrays: dict) -> str:
    """Name of the floating dtype of a dict of host arrays (the model's compute dtype)."""
    for a in arrays.values():
        dt = getattr(a, "dtype", None)
        if dt is not None and np.issubdtype(np.dtype(str(dt).split(".")[-1]), np.floating):
            return str(dt).split(".")[-1]
    return "float32"


class HebbianEstimator(BackendMixin):
    """The skeleton every sklhebb estimator is built on: ``fit`` = initialise + epochs,
    ``partial_fit`` = one epoch, as scikit-learn's MiniBatchDictionaryLearning and
    skorch's NeuralNet do.

    The base owns input validation, the random state, moving parameters to the
    device and fitted state back to NumPy, the transactional fit (a failed call
    leaves the estimator as it was, from :class:`BackendMixin`), the root task
    of scikit-learn's callbacks, the ``n_iter_`` / ``n_steps_`` bookkeeping and
    chunked output for ``transform`` / ``predict``. An estimator supplies the
    hooks below and keeps its public ``fit`` / ``partial_fit`` / ``transform``
    as one-line calls of :meth:`_fit`, :meth:`_partial_fit` and
    :meth:`_map_chunks`, so that it reads top to bottom like its paper.

    Hooks (``bk`` is the backend of the call; params are dicts of arrays):

    ``_init_params(rng, dtype)``
        Initial parameters as host NumPy arrays (drawn from ``rng``, so every
        backend starts from the same weights).
    ``_params_from_fitted()``
        The fitted state as host parameters (continuation, inference).
    ``_fitted_attributes(params)``
        Public fitted attributes (NumPy) from device parameters; used to store
        the result and for the per-epoch snapshots that callbacks receive.
    ``_stream(bk, data, y, dtype)``
        The minibatches: an object whose ``epoch(rng or None)`` yields them,
        ``n_batches`` per pass (the progress bar's total), with ``batch_size``,
        ``n_items`` (rows or patches per pass) and ``empty()`` (a minibatch of none) for
        :func:`sklhebb.distributed.data_parallel`, whose ranks pad their epochs to the same steps.
    ``_step(bk, params, batch, lr, stage)``
        One minibatch update of the rule, in place on ``params``.
    ``_encode(bk, params, chunk)``
        Features (or outputs) of a chunk of validated input, for :meth:`_map_chunks`.

    Optional: ``_validate_input``, ``_setup`` (geometry fixed at the first fit),
    ``_stages`` (layer-wise training), ``_n_epochs``, ``_monitor``,
    ``_epoch_record``, ``_record_history``, ``_steps`` (replace the stream/step pair, e.g. by a
    compiled step).
    """

    # attribute whose presence means "fitted" (the first partial_fit call initialises)
    _fitted_attribute = "components_"
    # what the DivergenceError tells the user to change
    _divergence_hint = "lower learning_rate"
    # parameters an out-of-memory error on a device names
    _memory_hints = ("batch_size",)

    # ----------------------------------------------------------- the hooks
    def _validate_input(self, X, *, reset):
        return validate_images(self, X, image_shape=resolve_image_shape(getattr(self, "image_shape", None), X), reset=reset)

    def _setup(self, data, y, dtype):
        """Fix what the first fit decides from the data (layer geometry); default: nothing."""

    def _stages(self):
        """Training stages of ``fit`` (each runs ``_n_epochs`` epochs): one, all layers at once."""
        return [None]

    def _n_epochs(self, n_samples):
        return self.max_iter

    def _monitor(self, bk, params):
        return None

    def _epoch_record(self, bk, params, totals):
        """What an epoch's record adds to its number, learning rate, steps and time, from the
        parameters at the epoch's end and ``totals``, the sums over the epoch of the dicts the
        steps returned (empty when they return None); default: the totals, as floats.
        Float entries are shown on the verbose line."""
        return {key: float(value) for key, value in totals.items()}

    def _record_history(self, history, *, reset):
        """Keep per-epoch records (``history``: dicts with epoch, learning_rate, steps, time)."""

    def _steps(self, bk, params, stream, rng, stage, stack):
        """The epoch and step functions of one stage: ``stream.epoch`` and :meth:`_step`."""
        order = rng if getattr(self, "shuffle", True) else None
        return (lambda epoch: stream.epoch(_ranks.epoch_rng(order))), (lambda p, batch, lr: self._step(bk, p, batch, lr, stage))

    # -------------------------------------------------------- the skeleton
    def _validate_fit_data(self, X, y, *, reset, whole_fit, classes=None):
        """Validated data and encoded targets (None for unsupervised estimators: ``y`` is ignored).

        ``classes`` is the ``classes=`` of a ``partial_fit`` call (None in ``fit``), for an estimator
        that learns ``classes_`` on its first call.
        """
        return self._validate_input(X, reset=reset), None

    def _first_partial_call(self, classes):
        return not hasattr(self, self._fitted_attribute)

    def _fit(self, X, y=None):
        """Initialise from ``random_state``, then run ``_n_epochs`` epochs per stage on the fit's schedule."""
        data, targets = self._validate_fit_data(X, y, reset=True, whole_fit=True)
        bk = self._backend(X)
        dtype = compute_dtype(X)
        rng = check_random_state(self.random_state)
        self._setup(data, targets, dtype)
        params = self._to_device(bk, self._init_params(rng, dtype))
        n_epochs = self._n_epochs(_ranks.total(data.shape[0]))  # the rows of all ranks under data_parallel
        schedule = getattr(self, "schedule", "constant")
        lr_at = lambda e: learning_rate_at(schedule, self.learning_rate, e, n_epochs)  # noqa: E731
        result = self._run(bk, data, targets, params, dtype, n_epochs=n_epochs, lr_at=lr_at, rng=rng, stages=self._stages())
        self._store(result, reset=True)
        return self

    def _partial_fit(self, X, y=None, classes=None):
        """One epoch over ``X`` at the constant ``learning_rate``, from the fitted state (or a fresh start)."""
        first = self._first_partial_call(classes)
        data, targets = self._validate_fit_data(X, y, reset=first, whole_fit=False, classes=classes)
        bk = self._backend(X)
        if first or not hasattr(self, "_random_state"):
            self._random_state = check_random_state(self.random_state)
        if first:
            dtype = compute_dtype(X)
            self._setup(data, targets, dtype)
            host = self._init_params(self._random_state, dtype)
        else:
            host = self._params_from_fitted()
            dtype = _float_dtype(host)
        params = self._to_device(bk, host)
        lr_at = lambda e: self.learning_rate  # noqa: E731
        result = self._run(bk, data, targets, params, dtype, n_epochs=1, lr_at=lr_at, rng=self._random_state, stages=[None])
        self._store(result, reset=first)
        return self

    def _run(self, bk, data, targets, params, dtype, *, n_epochs, lr_at, rng, stages):
        """All stages of one fit under one root callback task; returns the combined TrainResult."""
        ctx = begin_fit_callbacks(self, data, targets, max_subtasks=len(stages) * n_epochs)
        n_done = n_steps = 0
        history, stopped = [], False
        for stage in stages:
            with contextlib.ExitStack() as stack:
                stream = self._stream(bk, data, targets, dtype)
                threads = stack.enter_context(fit_threads(bk))  # no more threads than free cores (sklhebb/_threads.py)
                epoch_fn, step_fn = self._steps(bk, params, stream, rng, stage, stack)
                if _ranks.active() is not None:  # data_parallel: every rank takes the same number of steps
                    epoch_fn = _in_step(epoch_fn, stream)
                step_fn = step_fn if threads is None else threads.paced(step_fn)
                stack.enter_context(bk.memory_hint(*self._memory_hints))
                result = train(self, bk, params, epoch_fn, step_fn, n_epochs=n_epochs, lr_at=lr_at, ctx=ctx, n_batches=stream.n_batches)
            n_done += result.n_epochs
            n_steps += result.n_steps
            history += result.history
            if result.stopped:  # a callback asked to stop: later stages keep their state
                stopped = True
                break
        end_fit_callbacks(ctx, self, data, targets, self._fitted_attributes, params)
        return TrainResult(params, n_done, n_steps, history, stopped)

    def _store(self, result, *, reset):
        """Write the fitted attributes (NumPy) and the epoch/step counts: the only place they are set."""
        for name, value in self._fitted_attributes(result.params).items():
            setattr(self, name, value)
        if reset:
            self.n_iter_ = self.n_steps_ = 0
        self.n_iter_ += result.n_epochs  # fewer than asked when a callback stopped the fit
        self.n_steps_ += result.n_steps
        self._record_history(result.history, reset=reset)

    @staticmethod
    def _to_device(bk, host, dtype=None):
        """Host parameters on ``bk``; floating arrays cast to ``dtype`` when given."""
        out = {}
        for name, value in host.items():
            floating = np.issubdtype(np.asarray(value).dtype, np.floating)
            out[name] = bk.asarray(value, dtype=dtype) if (dtype is not None and floating) else bk.asarray(value)
        return out

    def _chunk_params(self, bk, params):
        """The device parameters every chunk of :meth:`_map_chunks` reads, with what derives from them once per call."""
        return params

    def _map_chunks(self, X, fn, rows_per_chunk, *, hints=("chunk_size",), threaded=False):
        """``fn(bk, params, chunk)`` over chunks of rows of the validated ``X``, concatenated.

        Computed where ``X`` lives (or on ``backend``/``device`` for NumPy input)
        in ``X``'s float precision (the fitted one for lists and frames), and
        returned in the caller's namespace: NumPy in, NumPy out. ``hints``
        names the parameters that bound a chunk's memory, for a device
        out-of-memory error; () when none does (the error is then passed on).
        ``threaded=True`` (a ``fn`` that only reads its arguments) encodes NumPy
        chunks on as many Python threads as the free cores allow, each running
        BLAS on one thread (:meth:`sklhebb._threads.FitThreads.map`), so that the
        work around the products runs in parallel too.
        """
        check_is_fitted(self)
        data = self._validate_input(X, reset=False)
        bk = self._backend(X)
        host = self._params_from_fitted()
        dtype = compute_dtype(X) if hasattr(X, "dtype") else _float_dtype(host)
        params = self._chunk_params(bk, self._to_device(bk, host, dtype))
        out = []
        rows_per_chunk = max(1, int(rows_per_chunk))
        # one chunk: too little work to be worth a measurement of the free cores (up to 50 ms)
        threads_ctx = fit_threads(bk) if data.shape[0] > rows_per_chunk else contextlib.nullcontext()

        def encode(index):
            return fn(bk, params, to_device_chunk(bk, data, index, dtype))

        with bk.memory_hint(*hints) if hints else contextlib.nullcontext(), threads_ctx as threads:
            chunks = iter_chunks(data.shape[0], rows_per_chunk)
            if threaded and threads is not None and bk.name == "numpy":
                # every piece written into one output: no second copy, and the pages of a
                # large output are first touched by the threads, in parallel
                chunks = list(chunks)
                first = encode(chunks[0])
                Z = np.empty((data.shape[0], *first.shape[1:]), dtype=first.dtype)
                Z[chunks[0]] = first

                def encode_into(index):
                    Z[index] = encode(index)

                threads.map(encode_into, chunks[1:])
                return to_output(Z, X)
            for index in chunks:
                if threads is not None:
                    threads.check()  # no more threads than free cores (sklhebb/_threads.py)
                out.append(encode(index))
        Z = out[0] if len(out) == 1 else bk.xp.concat(out, axis=0)
        return to_output(Z, X)


def _in_step(epoch_fn, stream):
    """``epoch_fn`` with every epoch padded to the steps of the other ranks (:func:`sklhebb._ranks.epoch`)."""
    return lambda epoch: _ranks.epoch(epoch_fn(epoch), stream.n_items, stream.batch_size, stream.empty)


class HebbianClassifierMixin:
    """Targets for supervised sklhebb estimators: validation, ``classes_``, label indices.

    ``fit`` learns ``classes_`` from ``y``; the first ``partial_fit`` takes them
    from ``classes=`` (required there), later calls check that ``y`` holds no
    other label. The estimator's hooks receive the labels as indices into
    ``classes_`` (int64). ``predict`` gives labels in the input's library
    (:meth:`_labels`), ``score`` a float.
    """

    _fitted_attribute = "classes_"

    def _labels(self, index):
        """``classes_[index]`` where ``index`` is: NumPy for NumPy input, torch / CuPy (on its device) for
        theirs. Labels that torch and CuPy cannot hold (strings, objects) come back as NumPy."""
        if not is_foreign_array(index) or self.classes_.dtype.kind not in "biuf":
            return self.classes_[np.asarray(to_numpy(index))]
        bk = backend_of(index)
        return bk.xp.take(bk.asarray(self.classes_), index, axis=0)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)`` against ``y``, as a float (for NumPy, torch or CuPy ``X`` and ``y``)."""
        from sklearn.metrics import accuracy_score

        y, pred = (np.asarray(to_numpy(a)) if is_foreign_array(a) else a for a in (y, self.predict(X)))
        return float(accuracy_score(y, pred, sample_weight=sample_weight))

    def _first_partial_call(self, classes):
        return _check_partial_fit_first_call(self, classes)

    def _validate_fit_data(self, X, y, *, reset, whole_fit, classes=None):
        data = self._validate_input(X, reset=reset)  # classes_ came from classes= in _first_partial_call
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        y = column_or_1d(y, warn=True)
        if y.dtype.kind in "fc":  # NaN/inf labels: the clear error, before the type check casts them to int
            _assert_all_finite(y, input_name="y")
        check_consistent_length(data, y)
        check_classification_targets(y)
        if whole_fit:
            self.classes_ = _ranks.union(np.unique(y))  # those of every rank under data_parallel
            return data, np.searchsorted(self.classes_, y).astype(np.int64)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y has labels {unknown.tolist()} not in classes={self.classes_.tolist()}.")
        return data, np.searchsorted(self.classes_, y).astype(np.int64)
