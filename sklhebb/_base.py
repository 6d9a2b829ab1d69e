"""What every sklhebb estimator shares: backend parameters, dtype policy,
input validation for images and foreign arrays, and persistence hygiene."""

from __future__ import annotations

import contextvars
import functools
import math
import warnings

import numpy as np
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import validate_data

from . import __version__
from ._backend import DeviceUnavailableError, is_foreign_array, resolve
from .image import as_image_stack

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
        est.image_shape_ = tuple(int(s) for s in images.shape[1:])
        est.n_features_in_ = math.prod(est.image_shape_)
        return images
    fitted = est.image_shape_
    if ndim is not None and ndim >= 3:
        images = as_image_stack(X)
        if tuple(images.shape[1:]) != fitted:
            raise ValueError(
                f"X has images of shape {tuple(images.shape[1:])}, but {type(est).__name__} "
                f"was fitted on images of shape {fitted}."
            )
        return images
    images = as_image_stack(X)  # (n, 1, 1, d)
    d = images.shape[-1]
    if d != est.n_features_in_:
        raise ValueError(
            f"X has {d} features, but {type(est).__name__} is expecting {est.n_features_in_} features as input."
        )
    return images.reshape((images.shape[0],) + fitted)


def host_normal(rng, shape, dtype: str) -> np.ndarray:
    """Standard-normal weights drawn on the host (same on every backend)."""
    return rng.standard_normal(size=shape).astype(dtype)
