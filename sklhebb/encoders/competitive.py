"""LocalCompetitiveEncoder: unsupervised layers trained by the local competitive rule.

H. Zhou, "Activation Learning by Local Competitions" (arXiv 2209.13400),
Section II (the rule, Eq. 4, and its Properties 1-4) and Appendix B
(unsupervised feature learning: square-then-normalise activations, layers
trained one after the other). The network is built from
:mod:`sklhebb.nn.competitive`; the rule lives in :mod:`sklhebb.rules.competitive`.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import rules
from .._backend import to_numpy, to_output
from .._base import BACKEND_CONSTRAINTS, BackendMixin, compute_dtype, validate_images
from .._training import RowStream, begin_fit_callbacks, end_fit_callbacks, learning_rate_at, run_epochs
from ..image import iter_chunks, to_device_chunk
from ..nn.competitive import ACTIVATIONS, activate, apply_deltas, dense, forward, init_statistics, init_weights, local, n_outputs, normalize_input

__all__ = ["LocalCompetitiveEncoder"]

_CHUNK_ROWS = 4096  # rows encoded at a time in transform / score_samples


def epoch_schedule(lr0, decay_at, n_epochs):
    """eta for each epoch: lr0, multiplied by 0.1 from epoch floor(decay_at * E) on."""
    cut = None if decay_at is None else int(math.floor(decay_at * n_epochs))
    if cut is not None and cut < 1:
        cut = None  # never decay the very first epoch

    def factor(epoch, _max_iter):
        return 0.1 if (cut is not None and epoch >= cut) else 1.0

    return lambda e: learning_rate_at(factor, lr0, e, n_epochs)


# =================================================================== encoder
class LocalCompetitiveEncoder(BackendMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Layers of neurons trained by the local competitive rule (unsupervised).

    Each layer computes y = w^T x and learns by Eq. (4),
    Delta w_ij = eta y_j (x_i - sum_k y_k w_ik): Oja's rule plus competition
    through the reconstruction of the input by all receiving neurons. A
    trained layer approximately reconstructs its input (w y ~ x,
    Property 1), its weights tend to sum of squares m (Property 3) and its
    output activation ||y||^2 is bounded by the input strength ||x||^2
    (Property 4), so ``score_samples`` measures how typical a sample is.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
        Units per layer; with ``receptive_field``, units per image position
        (channels) of each locally connected layer.
    activation : {"square_normalize", "abs", "std_abs", "identity"}, default="square_normalize"
        phi applied to each layer's net input before the next layer (and to
        the features ``transform`` returns). "square_normalize": square, then
        scale to a unit vector (Appendix B). "abs": |y|. "std_abs": Eq. (7)
        with running statistics of |y| (momentum ``stat_momentum``, used in
        training and in transform), rescaled per sample to ||y||. "identity":
        linear layers (with one layer: the rule's PCA-like subspace).
    training : {"layerwise", "joint"}, default="layerwise"
        "layerwise": train the first layer for ``max_iter`` epochs, freeze it,
        then the next (Appendix B). "joint": all layers learn in the same step
        from one forward pass (Section II-D, and the authors' code).
    output : {"last", "all"}, default="last"
        ``transform`` returns phi of the last layer, or of every layer
        concatenated.
    normalize_input : bool, default=True
        Scale every sample to a unit vector before the first layer (the paper
        normalises every input; Property 4 is stated for it).
    learning_rate : float, default=0.1
        eta (per-sample rate; the batch change is averaged over the batch).
    lr_decay_at : float or None, default=0.9
        Multiply eta by 0.1 from this fraction of the epochs on (authors'
        code); None keeps it constant.
    max_iter : int, default=10
        Epochs (per layer with ``training="layerwise"``).
    batch_size : int, default=100
    shuffle : bool, default=True
    init_std : float, default=0.01
        Standard deviation of the truncated-normal initial weights.
    stat_momentum : float, default=0.995
        Decay of the running statistics of ``std_abs``.
    receptive_field : int or None, default=None
        K (odd): locally connected layers (no weight sharing) where each unit
        sees the K x K window of the layer below centred on its position,
        same-size output, zero outside the image (Section V). Needs images:
        3-D/4-D ``X`` or ``image_shape``.
    image_shape : tuple of int, default=None
        (H, W) or (H, W, C) for 2-D ``X`` with locally connected layers.
    backend : {"numpy", "torch", "cupy"}, default="numpy"
    device : str, default=None
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights (drawn on the host) and the shuffling.
    verbose : int, default=0

    Attributes
    ----------
    coefs_ : list of ndarray
        Weights per layer: (n_in, n_out) for a dense layer, (H, W, K*K*Cin,
        Cout) for a locally connected one.
    running_mean_, running_var_ : list of ndarray (n_out,)
        Statistics of |y| per layer (used by "std_abs" only).
    n_iter_ : int
        Epochs run (summed over layers for layer-wise training).
    n_steps_ : int
        Minibatch updates applied.
    n_features_in_ : int
    image_shape_ : tuple (H, W, C)

    References
    ----------
    H. Zhou. Activation Learning by Local Competitions. arXiv:2209.13400.

    Examples
    --------
    >>> import numpy as np
    >>> from sklhebb.encoders.competitive import LocalCompetitiveEncoder
    >>> X = np.random.RandomState(0).normal(size=(200, 10))
    >>> enc = LocalCompetitiveEncoder((4,), activation="identity", max_iter=20,
    ...                               random_state=0).fit(X)
    >>> enc.transform(X).shape
    (200, 4)
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "training": [StrOptions({"layerwise", "joint"})],
        "output": [StrOptions({"last", "all"})],
        "normalize_input": ["boolean"],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "lr_decay_at": [Interval(Real, 0, 1, closed="both"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "init_std": [Interval(Real, 0, None, closed="neither")],
        "stat_momentum": [Interval(Real, 0, 1, closed="both")],
        "receptive_field": [Interval(Integral, 1, None, closed="left"), None],
        "image_shape": [tuple, list, None],
        **BACKEND_CONSTRAINTS,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        *,
        activation="square_normalize",
        training="layerwise",
        output="last",
        normalize_input=True,
        learning_rate=0.1,
        lr_decay_at=0.9,
        max_iter=10,
        batch_size=100,
        shuffle=True,
        init_std=0.01,
        stat_momentum=0.995,
        receptive_field=None,
        image_shape=None,
        backend="numpy",
        device=None,
        random_state=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.training = training
        self.output = output
        self.normalize_input = normalize_input
        self.learning_rate = learning_rate
        self.lr_decay_at = lr_decay_at
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.init_std = init_std
        self.stat_momentum = stat_momentum
        self.receptive_field = receptive_field
        self.image_shape = image_shape
        self.backend = backend
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ geometry
    def _sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not sizes or any((not isinstance(s, Integral)) or s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers; got {self.hidden_layer_sizes!r}.")
        return [int(s) for s in sizes]

    def _layers(self):
        sizes = self._sizes()
        if self.receptive_field is None:
            n_in, layers = self.n_features_in_, []
            for s in sizes:
                layers.append(dense(n_in, s))
                n_in = s
            return layers
        H, W, C = self.image_shape_
        if H == 1 and W == 1:
            raise ValueError("receptive_field needs images: pass 3-D/4-D X or set image_shape=(H, W[, C]).")
        layers, shape = [], (H, W, C)
        for s in sizes:
            layers.append(local(shape, self.receptive_field, s))
            shape = (H, W, s)
        return layers

    # -------------------------------------------------------------- forward
    def _prepare(self, bk, X):
        return normalize_input(bk, X) if self.normalize_input else X

    def _forward_all(self, bk, params, X, n_layers=None):
        """Net inputs Y_l and features phi(Y_l) of the first n_layers layers (no updates)."""
        layers = self._layers_
        n_layers = len(layers) if n_layers is None else n_layers
        h, Ys, Hs = self._prepare(bk, X), [], []
        for i in range(n_layers):
            Y = forward(bk, layers[i], params[f"W{i}"], h)
            h = activate(self.activation, Y, params[f"mu{i}"], params[f"var{i}"])
            Ys.append(Y)
            Hs.append(h)
        return Ys, Hs

    def _step(self, params, Xb, lr, train=None):
        """One minibatch: forward, then Eq. (4) on the trained layers (pre-update weights)."""
        bk = self._bk
        layers = self._layers_
        train = range(len(layers)) if train is None else train
        top = max(train)
        h = self._prepare(bk, Xb)
        records = []
        for i in range(top + 1):
            Y = forward(bk, layers[i], params[f"W{i}"], h)
            mu, var = params[f"mu{i}"], params[f"var{i}"]
            if i < top:  # statistics of the step before: normalise first, then update
                h_next = activate(self.activation, Y, mu, var)
            if i in train:
                records.append((i, h, Y))
                if self.activation == "std_abs":
                    params[f"mu{i}"], params[f"var{i}"] = rules.abs_statistics_update(Y, mu, var, self.stat_momentum)
            if i < top:
                h = h_next
        deltas = [lr * layers[i].competitive_increment(params[f"W{i}"], x, Y) for i, x, Y in records]
        apply_deltas(params, [f"W{i}" for i, *_ in records], deltas)

    # ------------------------------------------------------------------ fit
    def _init_params(self, rng, dtype):
        params = {}
        for i, layer in enumerate(self._layers_):
            params[f"W{i}"] = init_weights(rng, layer, self.init_std, dtype)
            params[f"mu{i}"], params[f"var{i}"] = init_statistics(n_outputs(layer), dtype)
        return params

    def _params_from_fitted(self):
        params = {}
        for i in range(len(self.coefs_)):
            params[f"W{i}"] = self.coefs_[i]
            params[f"mu{i}"] = self.running_mean_[i]
            params[f"var{i}"] = self.running_var_[i]
        return params

    def _fitted_attributes(self, params):
        """Fitted attributes from the driver's params (also for scikit-learn callbacks)."""
        n = len(self._layers_)
        sizes = [n_outputs(layer) for layer in self._layers_]
        return {
            "coefs_": [to_numpy(params[f"W{i}"]) for i in range(n)],
            "running_mean_": [to_numpy(params[f"mu{i}"]) for i in range(n)],
            "running_var_": [to_numpy(params[f"var{i}"]) for i in range(n)],
            "_n_features_out": sum(sizes) if self.output == "all" else sizes[-1],
        }

    def _store(self, params):
        for k, v in self._fitted_attributes(params).items():
            setattr(self, k, v)

    def _monitor(self, params):
        W = params[f"W{len(self._layers_) - 1}"]
        return f"sum w^2 (top layer) = {float(to_numpy(self._bk.xp.sum(W * W))):.4g}"

    def _run(self, bk, X2, params, *, n_epochs, lr_at, rng, train=None, callback_context=None):
        dtype = str(params["W0"].dtype).split(".")[-1]
        stream = RowStream(bk, X2, self.batch_size, dtype)
        self._bk = bk
        try:
            with bk.memory_hint("batch_size"):
                return run_epochs(
                    bk,
                    params,
                    lambda epoch: stream.epoch(rng if self.shuffle else None),
                    lambda p, b, lr: self._step(p, b, lr, train),
                    n_epochs=n_epochs,
                    lr_at=lr_at,
                    name=type(self).__name__,
                    verbose=self.verbose,
                    monitor=self._monitor,
                    hint="lower learning_rate",
                    estimator=self,
                    X=X2,
                    reconstruct=self._fitted_attributes,
                    callback_context=callback_context,
                )
        finally:
            del self._bk

    def _validate(self, X, reset):
        images = validate_images(self, X, image_shape=self.image_shape, reset=reset)
        return images.reshape(images.shape[0], -1)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the layers on ``X`` without labels.

        Parameters
        ----------
        X : array of shape (n, d), or images (n, H, W[, C])
        y : ignored

        Returns
        -------
        self
        """
        X2 = self._validate(X, reset=True)
        self._layers_ = self._layers()
        bk = self._backend(X)
        dtype = compute_dtype(X)
        rng = check_random_state(self.random_state)
        params = {k: bk.asarray(v) for k, v in self._init_params(rng, dtype).items()}
        lr_at = epoch_schedule(self.learning_rate, self.lr_decay_at, self.max_iter)
        n_epochs = n_steps = 0
        if self.training == "joint":
            stages = [None]
        else:
            stages = [[i] for i in range(len(self._layers_))]
        # one root callback task for the whole fit: every epoch of every stage is a sub-task
        ctx = begin_fit_callbacks(self, X2, max_subtasks=len(stages) * self.max_iter)
        for train in stages:
            res = self._run(bk, X2, params, n_epochs=self.max_iter, lr_at=lr_at, rng=rng, train=train, callback_context=ctx)
            params = res.params
            n_epochs += res.n_epochs
            n_steps += res.n_steps
            if res.stopped:  # a callback asked to stop: later layers keep their state
                break
        end_fit_callbacks(ctx, self, X2, reconstruct=self._fitted_attributes, params=params)
        self._store(params)
        self.n_iter_ = n_epochs
        self.n_steps_ = n_steps
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One pass over ``X`` at the constant ``learning_rate``, all layers jointly.

        Continues from the fitted state (or a fresh initialisation). Streaming
        data has no "layer finished" moment, so ``partial_fit`` always uses the
        joint update, whatever ``training`` says.

        Returns
        -------
        self
        """
        first = not hasattr(self, "coefs_")
        X2 = self._validate(X, reset=first)
        bk = self._backend(X)
        if first or not hasattr(self, "_random_state"):
            self._random_state = check_random_state(self.random_state)
        if first:
            self._layers_ = self._layers()
            params = self._init_params(self._random_state, compute_dtype(X))
            self.n_iter_ = self.n_steps_ = 0
        else:
            params = self._params_from_fitted()
        params = {k: bk.asarray(v) for k, v in params.items()}
        res = self._run(bk, X2, params, n_epochs=1, lr_at=lambda e: self.learning_rate, rng=self._random_state)
        self._store(res.params)
        self.n_iter_ += 1
        self.n_steps_ += res.n_steps
        return self

    # ------------------------------------------------------------ inference
    def _device_params(self, bk, dtype):
        return {k: bk.asarray(v, dtype=dtype) for k, v in self._params_from_fitted().items()}

    def _chunks(self, X, fn):
        check_is_fitted(self)
        X2 = self._validate(X, reset=False)
        bk = self._backend(X)
        dtype = compute_dtype(X) if hasattr(X, "dtype") else str(self.coefs_[0].dtype)
        params = self._device_params(bk, dtype)
        out = []
        for index in iter_chunks(X2.shape[0], _CHUNK_ROWS):
            out.append(fn(bk, params, to_device_chunk(bk, X2, index, dtype)))
        Z = out[0] if len(out) == 1 else bk.xp.concat(out, axis=0)
        return to_output(Z, X)

    def transform(self, X):
        """Features phi(y) of the last layer (``output="last"``) or of all layers.

        Returns
        -------
        X_new : array of shape (n, n_units of the last layer) or (n, sum of units)
        """

        def fn(bk, params, Xc):
            _, Hs = self._forward_all(bk, params, Xc)
            return Hs[-1] if self.output == "last" else bk.xp.concat(Hs, axis=1)

        return self._chunks(X, fn)

    def score_samples(self, X):
        """Output activation ||y||^2 of the last layer's net input (Property 4).

        With ``normalize_input`` the input strength is 1, so the score lies
        (approximately, after training) in [0, 1]: high for typical samples,
        low for anomalies.

        Returns
        -------
        scores : array of shape (n,)
        """

        def fn(bk, params, Xc):
            Ys, _ = self._forward_all(bk, params, Xc)
            return bk.xp.sum(Ys[-1] * Ys[-1], axis=1)

        return self._chunks(X, fn)

    def inverse_transform(self, X):
        """Reconstruction w y of the (normalised) input from a single linear layer (Property 1).

        Defined for one fully connected layer with ``activation="identity"``
        (the reconstruction of Eq. 6); other networks have no linear inverse.

        Parameters
        ----------
        X : array of shape (n, n_units)
            Output of ``transform``.

        Returns
        -------
        X_rec : array of shape (n, n_features_in_)
        """
        check_is_fitted(self)
        if len(self.coefs_) != 1 or self.activation != "identity" or self.receptive_field is not None:
            raise ValueError(
                "inverse_transform reconstructs w y for a single fully connected linear layer; "
                "use hidden_layer_sizes=(m,), activation='identity' and receptive_field=None."
            )
        from sklearn.utils import check_array

        from .._backend import is_foreign_array, resolve

        bk = resolve(X=X) if is_foreign_array(X) else self._backend()
        if not is_foreign_array(X):
            X = check_array(X, dtype=(np.float64, np.float32))
        dtype = compute_dtype(X)
        Z = bk.asarray(X, dtype=dtype)
        W = bk.asarray(self.coefs_[0], dtype=dtype)
        return to_output(Z @ W.T, X)

    def to_torch(self, *, dtype=None):
        """A torch module equal to ``transform``, for fine-tuning.

        Input normalisation (with ``normalize_input``), then per layer an
        ``nn.Linear`` (weight ``coefs_[i].T``, no bias) and the activation as a
        small module, in an ``nn.Sequential`` (``output="last"``) or in a module
        that concatenates every layer's features (``output="all"``). Fully
        connected layers only: locally connected ones raise a ValueError. See
        :func:`sklhebb.torch_export.competitive_to_torch`.

        Parameters
        ----------
        dtype : torch.dtype, default=None
            The fitted dtype (float32, or float64 when fitted in float64).

        Returns
        -------
        module : torch.nn.Module whose weights require grad
        """
        check_is_fitted(self)
        from ..torch_export import competitive_to_torch

        return competitive_to_torch(self, dtype=dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.three_d_array = True
        return tags
