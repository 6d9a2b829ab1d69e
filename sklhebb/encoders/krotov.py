"""KrotovPatchEncoder: convolutional filters learned by competing hidden units.

Grinberg, Hopfield & Krotov (2019), "Local Unsupervised Learning for Image
Analysis" (NNL-CONV), built on Krotov & Hopfield (2019, PNAS), "Unsupervised
learning by competing hidden units".

fit
    Images are cut into W x W x C patches (stride 1, no padding) chunk by chunk,
    each patch is normalised to a unit vector, the patches are shuffled every
    epoch and presented in minibatches to the rule of Eq. (1)-(2)
    (:func:`sklhebb.rules.krotov_update`). The learning rate falls linearly
    from ``learning_rate`` to zero over ``max_iter`` epochs.
transform (NNL-CONV layer, Section 2)
    Each patch is normalised to a unit vector and dotted with the
    unit-normalised filters (a cosine in [-1, 1]), passed through
    f(x) = ReLU(x)^n (Eq. 3), max-pooled and flattened.
"""

from __future__ import annotations

import contextlib
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import _numba, _ranks, rules
from .._backend import to_numpy
from .._base import BACKEND_CONSTRAINTS, HebbianEstimator, host_normal, resolve_image_shape, validate_images
from .._constraints import ImageShape
from .._feature_names import GridFeatureNamesMixin
from ..image import WHITENING_SAMPLES, PatchStream, extract_patches, max_pool, normalize_rows, pooled_size, whiten_rows

__all__ = ["KrotovPatchEncoder"]

# patches cut at a time in fit: 2**16 x 48 floats = 12.6 MB. Measured (1 thread, CIFAR shape,
# K=400): 0.96M patches/s end to end against 0.54M with 2**18, whose 50 MB chunks miss the caches
_FIT_CHUNK_PATCHES = 2**16
# batch_size="auto": the paper's 1000 patches, or fewer so that an epoch makes at least 100 steps
_PAPER_BATCH = 1000
_AUTO_STEPS = 100
# window="auto" on images: 5 x 5 patches (benchmarks/RESULTS.md, "Defaults")
_AUTO_WINDOW = 5
# power="auto": ReLU^3 with patches, ReLU for the fully connected network (benchmarks/RESULTS.md, "Defaults")
_AUTO_POWER_CONV = 3
_AUTO_POWER_DENSE = 1
# floats of the cosine map (positions x K) encoded at a time in transform: 2**20 = 4 MB. Measured
# (3,000 Fashion-MNIST images, 1 thread): K=400 0.82 s against 1.25 s with the former 2**15
# positions (50 MB per chunk), K=100 0.28 s against 0.36 s; past 2**21 floats the maps miss the caches
_TRANSFORM_CHUNK_FLOATS = 2**20


class KrotovPatchEncoder(HebbianEstimator, GridFeatureNamesMixin, TransformerMixin, BaseEstimator):
    """Convolutional Krotov-Hopfield encoder (NNL-CONV layer with local learning).

    Learns ``n_components`` filters of size ``window x window x C`` by the
    unsupervised competitive rule of Grinberg, Hopfield & Krotov (2019),
    Eq. (1)-(2), and encodes images with the NNL-CONV layer: per-patch
    normalisation, cosine with the filters, rectified power ``power`` and max
    pooling. Drop it into a :class:`~sklearn.pipeline.Pipeline` before a linear
    classifier.

    Parameters
    ----------
    n_components : int, default=100
        K, the number of hidden units (convolutional channels). The paper's
        CIFAR-10 layers have 400-1600; 100 is the default by measurement
        (Fashion-MNIST 10k: as accurate as 400 units, 8x faster; RESULTS.md).
    window : "auto", int or None, default="auto"
        W, side of the square patches. None: one patch is the whole input,
        the fully connected network of Krotov & Hopfield (PNAS 2019), usable on
        tabular data. "auto": 5 for images (3-D/4-D input, or rows with
        ``image_shape``), capped at the image side, and the fully connected
        network for flat rows. An int given with flat rows and no
        ``image_shape`` has no effect: a warning says so.
    stride : int, default=1
        Stride of the NNL-CONV layer in ``transform`` (training always uses
        every patch, stride 1, as in the paper).
    power : "auto" or float, default="auto"
        n, the power of the rectified activation f(x) = ReLU(x)^n (Eq. 3);
        the paper's layers use steep ones (n = 40 in Fig. 2). "auto", by
        measurement (benchmarks/RESULTS.md, "Defaults"): 3 with patches
        (``window`` not None), 1 for the fully connected network. With
        patches, 3 is as accurate as 1 under a default LogisticRegression
        (digits, MNIST, Fashion-MNIST) and on the full Fashion-MNIST (0.9148
        against 0.9138, ten seeds), and lowers the random-filter control, so
        that the learned filters lead it by 1.2 points instead of 0.8. In the
        fully connected network larger powers shrink the features (cosines
        below 1 to the n-th power) so that a default LogisticRegression
        underfits them (digits: 0.69 at 3 against 0.93 at 1).
    pool_size : int, default=8
        W_p, max-pooling window in ``transform``; clipped to the size of the
        convolution output (so a large value means global max pooling).
    pool_stride : int, default=4
        Stride of the max pooling.
    output_layout : {"flat", "image"}, default="flat"
        Layout of ``transform``'s output: "flat", rows of
        n_pooled_rows * n_pooled_cols * n_components features (for a linear
        readout); "image", the pooled maps as images (n, n_pooled_rows,
        n_pooled_cols, n_components), the input of a next layer:
        ``make_pipeline(KrotovPatchEncoder(output_layout="image"),
        KrotovPatchEncoder(), LinearSVC())`` stacks two layers.
    p : float, default=2.0
        Lebesgue exponent of Krotov & Hopfield: currents use
        sign(M)|M|^(p-1). p = 2 is Eq. (1) exactly.
    rank : int, default=2
        m, rank of the unit that receives the anti-Hebbian push.
    delta : float, default=0.2
        Delta, strength of the anti-Hebbian push (Eq. 2).
    learning_rate : float, default=0.02
        epsilon_0, the initial learning rate (by default it falls linearly to
        zero over ``max_iter`` epochs: ``schedule``). With ``normalize_update=True`` it is the largest
        weight change per minibatch; with False it multiplies the literal sum
        of Eq. (1), and values near the paper's 1e-4 are appropriate.
    schedule : {"linear", "constant", "step"} or callable, default="linear"
        Learning rate of ``fit`` per epoch: "linear" falls to zero over
        ``max_iter`` epochs (the paper's), "constant" keeps ``learning_rate``,
        "step" multiplies it by 0.1 for the last 10 % of the epochs, a callable
        ``schedule(epoch, n_epochs)`` gives the factor. ``partial_fit`` always
        uses ``learning_rate``.
    max_iter : int, default=10
        Epochs (passes over all patches).
    batch_size : "auto" or int, default="auto"
        Patches per minibatch. "auto": the paper's 1000 when an epoch has at
        least 100,000 patches, else one hundredth of the patches (at least 1),
        so that small data sets still make 100 steps per epoch. Fixed at the
        first ``fit`` / ``partial_fit`` (``batch_size_``), so that later
        ``partial_fit`` calls use the same minibatches.
    shuffle : bool, default=True
        Shuffle the patches every epoch: the image order is permuted and the
        patches of each chunk of images are shuffled together (a full
        shuffle of all patches would need memory proportional to their
        number).
    normalize_update : bool, default=True
        Divide each minibatch change by its largest absolute entry, as in the
        authors' reference code; False applies the literal Eq. (1) sum.
    center : bool, default=True
        Subtract each patch's mean before normalising it, in fit and in
        transform alike. Not in the paper (``center=False`` is the paper's
        NNL-CONV exactly); the default by measurement: on Fashion-MNIST the
        paper's uncentred patches, which all lie in one orthant, let the
        anti-Hebbian push strand units where no patch reaches them (0.64
        accuracy against 0.87 for random filters), while centred patches give
        learned filters that beat random ones (``benchmarks/RESULTS.md``).
    whiten : None or float, default=None
        None: no whitening, the paper's NNL-CONV path (with ``center=False``,
        exactly). A float eps > 0: ZCA whitening of the patches (Coates & Ng
        2011), fitted at the first ``fit`` / ``partial_fit`` on a sample of at
        most 100,000 of its normalised patches: W = (Sigma + eps' I)^(-1/2),
        eps' = eps times the mean eigenvalue of their covariance Sigma (so
        Coates & Ng's 0.1, for unit-variance pixels, means the same here);
        every patch, in fit and transform alike, is normalised (``center``),
        whitened, (p - mean) W, and normalised to a unit vector again.
        Off by default by measurement (``benchmarks/RESULTS.md``, issue 14).
    image_shape : "auto", tuple of int or None, default="auto"
        (H, W) or (H, W, C) of the images when ``X`` is 2-D. "auto": rows of
        s * s features with s >= 8 (8 x 8 digits, 28 x 28 MNIST as rows) are
        read as s x s single-channel images, other rows as flat vectors. None:
        2-D input is always flat vectors (one patch per row, the fully
        connected network; use it for tabular data whose width is a square).
        Ignored for 3-D/4-D input, which is image-shaped already.
    chunk_size : int, default=None
        Images cut into patches at a time; bounds host and device memory.
        None picks about 2**16 patches per chunk in fit and, in transform,
        about 2**20 floats of the (positions x n_components) map per chunk.
    backend : {"numpy", "torch", "cupy"}, default="numpy"
        Where to compute for NumPy input. Torch and CuPy input is computed in
        its own namespace and device and returned there.
    device : str, default=None
        Device for ``backend`` ("cpu", "cuda", "cuda:1"); None is the CPU for
        NumPy and torch and the current GPU for CuPy.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights (drawn on the host) and the shuffling.
    verbose : int, default=0
        1 prints one line per epoch; 2 adds a progress bar (tqdm).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, window * window * C)
        Learned synapses M, one filter per row, in (row, column, channel)
        order. Rows tend to unit vectors.
    batch_size_ : int
        Patches per minibatch (``batch_size`` with "auto" resolved).
    n_iter_ : int
        Epochs run (``fit``) or passes made (``partial_fit`` calls).
    n_steps_ : int
        Minibatch updates applied.
    n_features_in_ : int
    image_shape_ : tuple (H, W, C)
    whitening_mean_ : ndarray of shape (window * window * C,)
        Mean of the normalised patches the whitening was fitted on (only with ``whiten``).
    whitening_ : ndarray of shape (window * window * C, window * window * C)
        The symmetric ZCA matrix (Sigma + eps' I)^(-1/2) (only with ``whiten``).
    feature_names_in_ : ndarray of str
        Only for input with string column names.

    References
    ----------
    L. Grinberg, J. Hopfield, D. Krotov. Local Unsupervised Learning for Image
    Analysis. arXiv:1908.08993 (2019).
    D. Krotov, J. Hopfield. Unsupervised learning by competing hidden units.
    PNAS 116 (16), 7723-7731 (2019).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklhebb import KrotovPatchEncoder
    >>> X, y = load_digits(return_X_y=True)
    >>> enc = KrotovPatchEncoder(n_components=50, window=3, image_shape=(8, 8),
    ...                          pool_size=3, pool_stride=3, max_iter=2, random_state=0)
    >>> model = make_pipeline(enc, LogisticRegression(max_iter=1000)).fit(X, y)
    >>> model.score(X, y) > 0.9
    True
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "window": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left"), None],
        "stride": [Interval(Integral, 1, None, closed="left")],
        "power": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "pool_size": [Interval(Integral, 1, None, closed="left")],
        "pool_stride": [Interval(Integral, 1, None, closed="left")],
        "output_layout": [StrOptions({"flat", "image"})],
        "p": [Interval(Real, 1, None, closed="left")],
        "rank": [Interval(Integral, 1, None, closed="left")],
        "delta": [Interval(Real, 0, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "schedule": [StrOptions({"linear", "constant", "step"}), callable],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "normalize_update": ["boolean"],
        "center": ["boolean"],
        "whiten": [None, Interval(Real, 0, None, closed="neither")],
        "image_shape": [StrOptions({"auto"}), ImageShape(), None],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        **BACKEND_CONSTRAINTS,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=100,
        *,
        window="auto",
        stride=1,
        power="auto",
        pool_size=8,
        pool_stride=4,
        output_layout="flat",
        p=2.0,
        rank=2,
        delta=0.2,
        learning_rate=0.02,
        schedule="linear",
        max_iter=10,
        batch_size="auto",
        shuffle=True,
        normalize_update=True,
        center=True,
        whiten=None,
        image_shape="auto",
        chunk_size=None,
        backend="numpy",
        device=None,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.window = window
        self.stride = stride
        self.power = power
        self.pool_size = pool_size
        self.pool_stride = pool_stride
        self.output_layout = output_layout
        self.p = p
        self.rank = rank
        self.delta = delta
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.normalize_update = normalize_update
        self.center = center
        self.whiten = whiten
        self.image_shape = image_shape
        self.chunk_size = chunk_size
        self.backend = backend
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------- geometry
    def _window(self, image_shape):
        """Effective patch side W, or None for one patch per image (flat rows, ``window=None``)."""
        if self.window is None or getattr(self, "_flat_input", False):
            return None
        if self.window == "auto":
            return min(_AUTO_WINDOW, image_shape[0], image_shape[1])
        return self.window

    def _power(self):
        """Effective power n of f(x) = ReLU(x)^n (``power="auto"`` resolved on the fitted geometry)."""
        if self.power != "auto":
            return self.power
        return _AUTO_POWER_DENSE if self._window(self.image_shape_) is None else _AUTO_POWER_CONV

    def _patch_dim(self, image_shape):
        H, W, C = image_shape
        win = self._window(image_shape)
        return H * W * C if win is None else win * win * C

    def _conv_size(self, image_shape):
        H, W, _ = image_shape
        win = self._window(image_shape)
        if win is None:
            return 1, 1
        return (H - win) // self.stride + 1, (W - win) // self.stride + 1

    def _chunk(self, per_image, target):
        if self.chunk_size is not None:
            return self.chunk_size
        return max(1, target // max(1, per_image))

    # ------------------------------------------------------------------ fit
    _divergence_hint = "lower learning_rate or use normalize_update=True"
    _memory_hints = ("batch_size", "chunk_size")

    def _validate_input(self, X, *, reset):
        images = validate_images(self, X, image_shape=resolve_image_shape(self.image_shape, X), reset=reset)
        if reset:
            self._warn_ineffective()
        H, W, _ = images.shape[1:]
        win = self._window(self.image_shape_)
        if win is not None and (win > H or win > W):
            raise ValueError(f"window={win} is larger than the images ({H} x {W}); choose window <= {min(H, W)}.")
        return images

    def _warn_ineffective(self):
        """Say which parameters have no effect on this input, instead of dropping them silently."""
        name = type(self).__name__
        if getattr(self, "_flat_input", False) and isinstance(self.window, Integral):
            warnings.warn(
                f"{name}: window={self.window} has no effect: X holds flat rows that are not read as images, so each "
                "row is one patch (the fully connected network). Pass image_shape=(H, W[, C]) to read the rows "
                "as images, or window=None to silence this warning.",
                UserWarning,
                stacklevel=4,
            )
        if self.rank > self.n_components and self.delta > 0:
            warnings.warn(
                f"{name}: rank={self.rank} is larger than n_components={self.n_components}, so no unit sits at "
                f"rank m and the anti-Hebbian term (delta={self.delta}) is off. Lower rank or raise n_components.",
                UserWarning,
                stacklevel=4,
            )

    def _patches_per_image(self):
        H, W, _ = self.image_shape_
        win = self._window(self.image_shape_)
        return 1 if win is None else (H - win + 1) * (W - win + 1)

    def _setup(self, images, y, dtype):
        """Fix the minibatch size (``batch_size="auto"``: 100 steps per epoch on small data) and fit ``whiten``."""
        if self.batch_size == "auto":
            n_patches = images.shape[0] * self._patches_per_image()
            # under data_parallel: the largest over the ranks, so that every rank steps alike
            self.batch_size_ = _ranks.largest(int(min(_PAPER_BATCH, max(1, n_patches // _AUTO_STEPS))))
        else:
            self.batch_size_ = int(self.batch_size)
        for name in ("whitening_mean_", "whitening_"):
            if hasattr(self, name):  # from an earlier fit with whiten
                delattr(self, name)
        if self.whiten is not None:
            stream = self._stream(self._backend(images), images, None, dtype)
            rng = check_random_state(self.random_state)
            self.whitening_mean_, self.whitening_ = stream.fit_whitening(WHITENING_SAMPLES, self.whiten, rng)

    def _whitening(self, bk, dtype):
        """(mean, W) of the fitted whitening on ``bk`` in ``dtype``, or None without ``whiten``."""
        if not hasattr(self, "whitening_"):
            return None
        return bk.asarray(self.whitening_mean_, dtype=dtype), bk.asarray(self.whitening_, dtype=dtype)

    def _batch_size(self):
        return self.batch_size_ if self.batch_size == "auto" else int(self.batch_size)

    def _init_params(self, rng, dtype):
        """Gaussian synapses M, one row per hidden unit."""
        return {"M": host_normal(rng, (self.n_components, self._patch_dim(self.image_shape_)), dtype)}

    def _params_from_fitted(self):
        return {"M": self.components_}

    def _fitted_attributes(self, params):
        return {"components_": to_numpy(params["M"]), "_n_features_out": self._n_out()}

    def _stream(self, bk, images, y, dtype):
        """Unit-normalised patches of every window position, minibatch by minibatch."""
        win = self._window(self.image_shape_)
        chunk = self._chunk(self._patches_per_image(), _FIT_CHUNK_PATCHES)
        return PatchStream(bk, images, win, self._batch_size(), chunk, dtype, center=self.center, whitening=self._whitening(bk, dtype))

    def _step(self, bk, params, V, lr, stage):
        """One minibatch of Eq. (1)-(2): M <- M + lr * dM."""
        M = params["M"]
        rank, delta = self._rank_delta(M.shape[0])
        dM = rules.krotov_update(M, V, rank=rank, delta=delta, p=self.p, normalize=self.normalize_update)
        params["M"] = M + lr * dM

    def _monitor(self, bk, params):
        norms = to_numpy((params["M"] * params["M"]).sum(axis=1) ** 0.5)
        return f"max |norm - 1| = {float(np.max(np.abs(norms - 1))):.3g}"

    def _rank_delta(self, n_units):
        # with fewer units than `rank` no unit sits at rank m: no anti-Hebbian push
        return (self.rank, self.delta) if self.rank <= n_units else (1, 0.0)

    def _steps(self, bk, params, stream, rng, stage, stack):
        """The compiled step (numba) where it applies, else the stream's patches and :meth:`_step`.

        It applies to NumPy arrays and to torch CPU tensors (whose memory it
        reads and, for M, updates; on torch's intra-op thread budget); GPU
        tensors, and every fit with ``SKLHEBB_DISABLE_NUMBA=1``, take the
        array-API step.

        The compiled step cuts, ranks and sums each thread's own rows of the
        same minibatches and applies the same update; it updates its own copy
        of M (so a failed ``partial_fit`` leaves the fitted filters untouched).
        Under :func:`sklhebb.distributed.data_parallel` the plain step runs: the
        compiled one fuses the sum and the update, with no place for the all-reduce.
        """
        epoch_fn, step_fn = super()._steps(bk, params, stream, rng, stage, stack)
        M = params["M"]
        dtype = str(M.dtype).split(".")[-1]
        rank, delta = self._rank_delta(M.shape[0])
        on_host = bk.name == "numpy" or (bk.name == "torch" and not bk.is_gpu)  # torch CPU tensors: the kernel reads their memory
        if not (on_host and dtype in ("float32", "float64") and rank <= 2 and _numba.available()):
            return epoch_fn, step_fn
        if _ranks.active() is not None:  # data_parallel: the all-reduce sits between the sum and the update
            return epoch_fn, step_fn
        stepper = self._compiled_stepper(M, stream, rank, delta, stack)
        if stepper is None:
            return epoch_fn, step_fn
        params["M"] = stepper.M if bk.name == "numpy" else bk.native.from_numpy(stepper.M)  # the same memory
        order = rng if self.shuffle else None

        def compiled_step(p, item, lr):
            pieces, rows = item
            if rows is None:
                stepper.step_pieces(pieces, lr)
            else:
                stepper.step_rows(rows, lr)

        return (lambda epoch: stream.epoch_indices(order)), compiled_step

    def _compiled_stepper(self, M, stream, rank, delta, stack):
        """The numba step on its threads (entered on ``stack``), or None to use plain NumPy."""
        with contextlib.ExitStack() as mine:
            try:
                from ..rules._krotov_numba import KrotovStepper

                torch_threads = stream.bk.native.get_num_threads() if stream.bk.name == "torch" else None
                n_threads = mine.enter_context(_numba.kernel_threads(torch_threads))
                win = self._window(self.image_shape_)
                stepper = KrotovStepper(
                    np.array(to_numpy(M), order="C", copy=True),  # updated in place: never the caller's array
                    batch_size=min(self._batch_size(), stream.n_patches),
                    n_threads=n_threads,
                    p=self.p,
                    rank=rank,
                    delta=delta,
                    normalize=self.normalize_update,
                    center=self.center,
                    window=self.image_shape_[:2] if win is None else (win, win),
                )
                stepper.warm_up()  # compiles, or loads from numba's cache, before the first minibatch
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. no writable cache, an incompatible numba
                _numba.give_up(exc)
                return None
            stack.enter_context(mine.pop_all())
            return stepper

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the filters from the patches of the images ``X``.

        ``max_iter`` epochs at the learning rates of ``schedule`` (by default
        falling linearly from ``learning_rate`` to zero, the paper's).

        Parameters
        ----------
        X : array of shape (n, H, W, C), (n, H, W), or (n, d) with ``image_shape``
            NumPy (memmaps are streamed chunk by chunk), torch or CuPy arrays.
        y : ignored

        Returns
        -------
        self
        """
        return self._fit(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One pass over the patches of ``X`` at the constant ``learning_rate``.

        Continues from the fitted filters (or starts from random ones). With
        ``shuffle=False`` the patches come in order, so k calls over
        consecutive chunks of images equal one epoch of ``fit`` whenever the
        chunk boundaries fall on minibatch boundaries.

        Returns
        -------
        self
        """
        return self._partial_fit(X)

    # ------------------------------------------------------------ transform
    def _n_out(self):
        oh, ow = self._conv_size(self.image_shape_)
        ph = pooled_size(oh, self.pool_size, self.pool_stride)
        pw = pooled_size(ow, self.pool_size, self.pool_stride)
        return ph * pw * self.n_components

    def _output_grids(self):
        """(pooled rows, pooled columns, units) of ``transform``'s columns; None for one patch per image."""
        if self._window(self.image_shape_) is None:
            return None
        oh, ow = self._conv_size(self.image_shape_)
        ph, pw = (pooled_size(n, self.pool_size, self.pool_stride) for n in (oh, ow))
        return [(ph, pw, self.components_.shape[0])]

    def _chunk_params(self, bk, params):
        """The unit filters, normalised once per transform rather than once per chunk; the compiled passes' patch offsets."""
        filters = normalize_rows(bk, params["M"])
        return {**params, "unit_filters": filters, "compiled": self._compiled_transform(bk, filters)}

    def _compiled_transform(self, bk, filters):
        """Offsets of one image's patches in the stride-1 grid, for the compiled passes (numba); None where they do not run.

        They run on NumPy arrays in float32/float64 with numba installed (the
        fit step's conditions), and release the GIL, so that the chunks that
        ``transform`` encodes on several Python threads do not wait for each
        other between their products (10,000 Fashion-MNIST images, K = 400,
        benchmarks/RESULTS.md, issue 16, section 7).
        """
        win = self._window(self.image_shape_)
        dtype = str(filters.dtype)
        if win is None or bk.name != "numpy" or dtype not in ("float32", "float64") or not _numba.available():
            return None
        H, W = self.image_shape_[:2]
        oh, ow = self._conv_size(self.image_shape_)
        ys, xs = np.arange(oh) * self.stride, np.arange(ow) * self.stride
        offsets = (ys[:, None] * (W - win + 1) + xs[None, :]).ravel()
        try:
            from ..rules._krotov_numba import cut_patches, pool_activation

            # compiles, or loads from numba's cache, before the chunks' threads start
            one = cut_patches(np.zeros((1, H, W, self.image_shape_[2]), dtype), offsets[:1], (win, win), self.center, dtype)
            pool_activation(one @ filters.T, (1, 1, 1), self.pool_size, self.pool_stride, self._power())
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. no writable cache, an incompatible numba
            _numba.give_up(exc)
            return None
        return {"offsets": offsets, "per_image": (H - win + 1) * (W - win + 1), "cut": cut_patches, "pool": pool_activation}

    def _encode(self, bk, params, chunk):
        """NNL-CONV on a chunk of images: (n, H, W, C) -> (n, n_features_out), or (n, ph, pw, K) (``output_layout``)."""
        P, grid = self._unit_patches(bk, params, chunk)
        whitening = self._whitening(bk, str(P.dtype).split(".")[-1])
        if whitening is not None:
            P = whiten_rows(bk, P, whitening, normalize=True)
        cos = P @ params["unit_filters"].T  # (n * oh * ow, K), cosines in [-1, 1]
        F = self._pooled_activation(bk, params, cos, grid)
        return F if self.output_layout == "image" else bk.xp.reshape(F, (F.shape[0], -1))

    def _unit_patches(self, bk, params, chunk):
        """The chunk's patches as unit rows (centred first with ``center``), and their grid (n, oh, ow)."""
        xp, compiled = bk.xp, params["compiled"]
        win = self._window(self.image_shape_)
        if compiled is not None:
            index = (np.arange(chunk.shape[0])[:, None] * compiled["per_image"] + compiled["offsets"]).ravel()
            P = compiled["cut"](chunk, index, (win, win), self.center, str(params["unit_filters"].dtype))
            return P, (chunk.shape[0], *self._conv_size(self.image_shape_))
        if win is None:
            P = xp.reshape(chunk, (chunk.shape[0], 1, 1, -1))
        else:
            P = extract_patches(bk, chunk, win, self.stride)
        # the patches as rows of one matrix: on a (n, oh, ow, N) stack, matmul runs n * oh small
        # products on one thread (measured, 4 images, K = 400: 0.54 ms on 1 or 2 threads, against
        # 0.44 ms on 1 thread and 0.22 ms on 2 for the same product on rows)
        # extract_patches's rows are a fresh copy, normalised in place; a whole image (window=None) is the caller's
        return normalize_rows(bk, xp.reshape(P, (-1, P.shape[-1])), center=self.center, inplace=win is not None), P.shape[:3]

    def _pooled_activation(self, bk, params, cos, grid):
        """f(x) = ReLU(x)^n (Eq. 3) of the max-pooled cosines: (n, ph, pw, K)."""
        if params["compiled"] is not None:
            return params["compiled"]["pool"](cos, grid, self.pool_size, self.pool_stride, self._power())
        xp = bk.xp
        # f is non-decreasing, so it commutes with the max of the pooling: pooling first applies
        # it to the pooled map only. On a (56, 24, 24, 400) chunk the full-size
        # where(cos > 0, cos, 0) took 71 ms and the power 6 ms, against 15 ms for the product
        F = max_pool(bk, xp.reshape(cos, (*grid, -1)), self.pool_size, self.pool_stride)
        F = xp.maximum(F, 0.0)
        power = self._power()
        return F**power if power != 1 else F

    def transform(self, X):
        """Encode images with the NNL-CONV layer.

        Returns
        -------
        X_new : array of shape (n, n_pooled_rows * n_pooled_cols * n_components)
            Ordered (pooled row, pooled column, channel); with
            ``output_layout="image"`` the same numbers as
            (n, n_pooled_rows, n_pooled_cols, n_components). NumPy for NumPy
            input; torch/CuPy input gets output of its own kind and device.
        """
        check_is_fitted(self)
        oh, ow = self._conv_size(self.image_shape_)
        return self._map_chunks(X, self._encode, self._chunk(oh * ow * self.components_.shape[0], _TRANSFORM_CHUNK_FLOATS), threaded=True)

    def to_torch(self, *, pooling=True, dtype=None):
        """The fitted NNL-CONV layer as a ``torch.nn.Sequential``, for fine-tuning.

        ``NNLConv2d`` (the filters in an ``nn.Conv2d``, with the patch
        normalisation, centring, whitening and power of ``transform``) followed by
        ``nn.MaxPool2d`` when ``pooling``. Takes NCHW input and returns
        (n, K, ph, pw); ``transform`` gives the same numbers in (ph, pw, K)
        order.

        Parameters
        ----------
        pooling : bool, default=True
        dtype : torch.dtype, default=None
            The module's dtype; None is float32, whatever dtype the model was
            fitted in. The module takes input of this dtype.

        Returns
        -------
        module : torch.nn.Sequential whose weights require grad
        """
        check_is_fitted(self)
        from ..torch_export import krotov_to_torch

        return krotov_to_torch(self, pooling=pooling, dtype=dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.three_d_array = True
        return tags
