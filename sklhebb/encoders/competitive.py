"""LocalCompetitiveEncoder: unsupervised layers trained by the local competitive rule.

H. Zhou, "Activation Learning by Local Competitions" (arXiv 2209.13400),
Section II (the rule, Eq. 4, and its Properties 1-4) and Appendix B
(unsupervised feature learning: square-then-normalise activations, layers
trained one after the other). The network is built from
:mod:`sklhebb.nn.competitive`; the rule lives in :mod:`sklhebb.rules.competitive`.
"""

from __future__ import annotations

import inspect
import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import rules
from .._backend import to_numpy, to_output
from .._base import BACKEND_CONSTRAINTS, HebbianEstimator, compute_dtype, validate_images
from .._constraints import ImageShape, LayerSizes
from .._feature_names import GridFeatureNamesMixin
from .._training import RowStream
from ..nn.competitive import (
    ACTIVATIONS,
    activate,
    apply_deltas,
    dense,
    forward,
    init_statistics,
    init_weights,
    local,
    n_outputs,
    normalize_input,
    over_ranks,
)

__all__ = ["LocalCompetitiveEncoder"]

_CHUNK_ROWS = 4096  # rows encoded at a time in transform / score_samples


class LocalCompetitiveEncoder(HebbianEstimator, GridFeatureNamesMixin, TransformerMixin, BaseEstimator):
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
    n_components : int, default=1000
        Units of the top layer; with ``window``, units per image position
        (channels) of the top locally connected layer. 1000 by measurement
        (digits, Fashion-MNIST, MNIST: benchmarks/RESULTS.md, "Defaults
        (issue 15)"); beyond the input's dimension the squared features
        still add information (the rule keeps the weights in the input's
        principal subspace, the squares are not linear in it).
    hidden_layer_sizes : tuple of int, default=()
        Units of the layers below the top, bottom first (per image position
        with ``window``); () is the single layer network.
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
    return_layers : {"top", "all"}, default="top"
        ``transform`` returns phi of the top layer, or of every layer
        concatenated (bottom first).
    normalize_input : bool, default=True
        Scale every sample to a unit vector before the first layer (the paper
        normalises every input; Property 4 is stated for it). With it the
        input's scale (uint8 0-255, [0, 1], digits' 0-16) makes no difference.
    feature_scale : float or "auto", default="auto"
        Factor on the features ``transform`` returns (not on what the layers
        pass to each other, nor on ``score_samples``). "auto": sqrt(m) for a
        layer of m units, so that a unit-norm feature vector (the
        ``square_normalize`` output; the other activations are bounded by the
        input strength, Property 4) has entries of mean square 1, the scale
        of standardised pixels that a linear readout's default regularisation
        expects (with LogisticRegression() on digits: 0.81 at 1.0, see
        benchmarks/RESULTS.md). 1.0 gives the paper's features.
    learning_rate : float, default=1.0
        eta (per-sample rate; the batch change is averaged over the batch).
        1.0 by measurement (benchmarks/RESULTS.md, "LocalCompetitiveEncoder:
        the learning rate"): the authors train 100 epochs at 0.1; in the 10
        epochs here 0.1 leaves the weights near their random start, and 1.0
        scores higher on digits, MNIST and Fashion-MNIST and beats the
        untrained network on the last two. With ``normalize_input=False``
        and unscaled inputs a smaller rate may be needed (a diverging fit
        raises ``DivergenceError``).
    schedule : {"step", "constant", "linear"} or callable, default="step"
        Learning rate per epoch (of each layer with layer-wise training):
        "step" multiplies eta by 0.1 for the last 10% of the epochs (the
        authors' code), "constant" keeps it, "linear" lowers it to zero, a
        callable ``schedule(epoch, max_iter)`` gives the factor.
        ``partial_fit`` always uses the constant ``learning_rate``.
    max_iter : int, default=10
        Epochs (per layer with ``training="layerwise"``).
    batch_size : int, default=100
        Samples per minibatch; the change of Eq. (4) is averaged over it.
    shuffle : bool, default=True
        Shuffle the samples every epoch (on the host, the same order on every
        backend).
    init_std : float, default=0.01
        Standard deviation of the truncated-normal initial weights.
    stat_momentum : float, default=0.995
        Decay of the running statistics of ``std_abs``.
    window : int or None, default=None
        K (odd): locally connected layers (no weight sharing) where each unit
        sees the K x K window of the layer below centred on its position,
        same-size output, zero outside the image (Section V). Needs images:
        3-D/4-D ``X`` or ``image_shape``.
    image_shape : tuple of int, default=None
        (H, W) or (H, W, C) for 2-D ``X`` with locally connected layers.
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
    coefs_ : list of ndarray
        Weights per layer, bottom first: (n_in, n_out) for a dense layer,
        (H, W, K*K*Cin, Cout) for a locally connected one.
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
    >>> enc = LocalCompetitiveEncoder(4, activation="identity", max_iter=20,
    ...                               random_state=0).fit(X)
    >>> enc.transform(X).shape
    (200, 4)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": [LayerSizes()],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "training": [StrOptions({"layerwise", "joint"})],
        "return_layers": [StrOptions({"top", "all"})],
        "normalize_input": ["boolean"],
        "feature_scale": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "schedule": [StrOptions({"step", "constant", "linear"}), callable],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "init_std": [Interval(Real, 0, None, closed="neither")],
        "stat_momentum": [Interval(Real, 0, 1, closed="both")],
        "window": [Interval(Integral, 1, None, closed="left"), None],
        "image_shape": [ImageShape(), None],
        **BACKEND_CONSTRAINTS,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    _fitted_attribute = "coefs_"

    def __init__(
        self,
        n_components=1000,
        *,
        hidden_layer_sizes=(),
        activation="square_normalize",
        training="layerwise",
        return_layers="top",
        normalize_input=True,
        feature_scale="auto",
        learning_rate=1.0,
        schedule="step",
        max_iter=10,
        batch_size=100,
        shuffle=True,
        init_std=0.01,
        stat_momentum=0.995,
        window=None,
        image_shape=None,
        backend="numpy",
        device=None,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.training = training
        self.return_layers = return_layers
        self.normalize_input = normalize_input
        self.feature_scale = feature_scale
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.init_std = init_std
        self.stat_momentum = stat_momentum
        self.window = window
        self.image_shape = image_shape
        self.backend = backend
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ geometry
    def _sizes(self):
        """Units of every layer, bottom first (per position with ``window``)."""
        return [int(s) for s in self.hidden_layer_sizes] + [int(self.n_components)]

    def _layers(self):
        """The layers: dense, or locally connected on the images (built from the parameters, never stored)."""
        sizes = self._sizes()
        if self.window is None:
            n_in, layers = self.n_features_in_, []
            for s in sizes:
                layers.append(dense(n_in, s))
                n_in = s
            return layers
        H, W, C = self.image_shape_
        if H == 1 and W == 1:
            raise ValueError("window needs images: pass 3-D/4-D X or set image_shape=(H, W[, C]).")
        layers, shape = [], (H, W, C)
        for s in sizes:
            layers.append(local(shape, self.window, s))
            shape = (H, W, s)
        return layers

    def _setup(self, data, y, dtype):
        self._layers()  # a window without images fails here, before any weight is drawn
        default = inspect.signature(type(self).__init__).parameters["stat_momentum"].default
        if self.activation != "std_abs" and self.stat_momentum != default:
            warnings.warn(
                f"stat_momentum={self.stat_momentum!r} has no effect with activation={self.activation!r} "
                "(only std_abs keeps running statistics); leave it at its default to silence this warning.",
                UserWarning,
                stacklevel=4,
            )

    def _validate_input(self, X, *, reset):
        images = validate_images(self, X, image_shape=self.image_shape, reset=reset)
        return images.reshape(images.shape[0], -1)

    # -------------------------------------------------------------- forward
    def _forward_all(self, bk, params, X):
        """Net inputs Y_l and features phi(Y_l) of every layer (no updates)."""
        h = normalize_input(bk, X) if self.normalize_input else X
        Ys, Hs = [], []
        for i, layer in enumerate(self._layers()):
            Y = forward(bk, layer, params[f"W{i}"], h)
            h = activate(self.activation, Y, params[f"mu{i}"], params[f"var{i}"])
            Ys.append(Y)
            Hs.append(h)
        return Ys, Hs

    # ------------------------------------------------------------ learning
    def _stages(self):
        """Layer-wise: one stage per layer, bottom first (Appendix B); joint: one stage."""
        return [None] if self.training == "joint" else [[i] for i in range(len(self._layers()))]

    def _step(self, bk, params, Xb, lr, stage):
        """One minibatch: forward, then Eq. (4) on the trained layers (pre-update weights)."""
        layers = self._layers()
        train = range(len(layers)) if stage is None else stage
        top = max(train)
        h = normalize_input(bk, Xb) if self.normalize_input else Xb
        records, moments = [], []
        for i in range(top + 1):
            Y = forward(bk, layers[i], params[f"W{i}"], h)
            if i in train:
                records.append((i, h, Y))
                if self.activation == "std_abs":  # statistics of the step before: normalise first, then update
                    moments.append((i, *rules.abs_moments(Y, params[f"mu{i}"])))
            if i < top:
                h = activate(self.activation, Y, params[f"mu{i}"], params[f"var{i}"])
        deltas = [lr * layers[i].competitive_increment(params[f"W{i}"], x, Y) for i, x, Y in records]
        # means over the rows of every rank under data_parallel: one all-reduce (identity in one process)
        deltas, moments = over_ranks(bk, deltas, moments, Xb.shape[0])
        for i, s1, s2 in moments:
            mu, var = params[f"mu{i}"], params[f"var{i}"]
            params[f"mu{i}"], params[f"var{i}"] = rules.abs_statistics_update(None, mu, var, self.stat_momentum, moments=(s1, s2))
        apply_deltas(params, [f"W{i}" for i, *_ in records], deltas)

    def _init_params(self, rng, dtype):
        params = {}
        for i, layer in enumerate(self._layers()):
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
        sizes = [n_outputs(layer) for layer in self._layers()]
        n = len(sizes)
        return {
            "coefs_": [to_numpy(params[f"W{i}"]) for i in range(n)],
            "running_mean_": [to_numpy(params[f"mu{i}"]) for i in range(n)],
            "running_var_": [to_numpy(params[f"var{i}"]) for i in range(n)],
            "_n_features_out": sum(sizes) if self.return_layers == "all" else sizes[-1],
        }

    def _stream(self, bk, data, y, dtype):
        return RowStream(bk, data, self.batch_size, dtype)

    def _monitor(self, bk, params):
        W = params[f"W{len(self._layers()) - 1}"]
        return f"sum w^2 (top layer) = {float(to_numpy(bk.xp.sum(W * W))):.4g}"

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
        return self._fit(X)

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
        return self._partial_fit(X)

    # ------------------------------------------------------------ inference
    def _feature_scales(self):
        """The factor on each layer's features in ``transform``: ``feature_scale``, or sqrt(units) for "auto"."""
        if self.feature_scale != "auto":
            return [float(self.feature_scale)] * len(self.coefs_)
        return [math.sqrt(W.shape[-1] * (W.shape[0] * W.shape[1] if W.ndim == 4 else 1)) for W in self.coefs_]

    def _output_grids(self):
        """(rows, columns, units) of every locally connected layer ``transform`` returns; None for dense layers."""
        if self.window is None:
            return None
        grids = [tuple(layer.out_shape) for layer in self._layers()]
        return grids if self.return_layers == "all" else grids[-1:]

    def _encode(self, bk, params, chunk):
        _, Hs = self._forward_all(bk, params, chunk)
        Hs = [h * s for h, s in zip(Hs, self._feature_scales())]
        return Hs[-1] if self.return_layers == "top" else bk.xp.concat(Hs, axis=1)

    def _score(self, bk, params, chunk):
        Ys, _ = self._forward_all(bk, params, chunk)
        return bk.xp.sum(Ys[-1] * Ys[-1], axis=1)

    def transform(self, X):
        """Features ``feature_scale`` x phi(y) of the top layer (``return_layers="top"``) or of every layer.

        Returns
        -------
        X_new : array of shape (n, units of the top layer) or (n, sum of units)
        """
        return self._map_chunks(X, self._encode, _CHUNK_ROWS, hints=())

    def score_samples(self, X):
        """Output activation ||y||^2 of the top layer's net input (Property 4).

        With ``normalize_input`` the input strength is 1, so the score lies
        (approximately, after training) in [0, 1]: high for typical samples,
        low for anomalies.

        Returns
        -------
        scores : array of shape (n,)
        """
        return self._map_chunks(X, self._score, _CHUNK_ROWS, hints=())

    def inverse_transform(self, X):
        """Reconstruction w y of the (normalised) input from a single linear layer (Property 1).

        Defined for one fully connected layer with ``activation="identity"``
        (the reconstruction of Eq. 6); other networks have no linear inverse.

        Parameters
        ----------
        X : array of shape (n, n_units)
            Output of ``transform`` (its ``feature_scale`` is divided out).

        Returns
        -------
        X_rec : array of shape (n, n_features_in_)
        """
        check_is_fitted(self)
        if len(self.coefs_) != 1 or self.activation != "identity" or self.window is not None:
            raise ValueError(
                "inverse_transform reconstructs w y for a single fully connected linear layer; "
                "use hidden_layer_sizes=(), activation='identity' and window=None."
            )
        from sklearn.utils import check_array

        from .._backend import is_foreign_array, resolve

        bk = resolve(X=X) if is_foreign_array(X) else self._backend()
        if not is_foreign_array(X):
            X = check_array(X, dtype=(np.float64, np.float32))
        dtype = compute_dtype(X)
        Z = bk.asarray(X, dtype=dtype)
        W = bk.asarray(self.coefs_[0], dtype=dtype)
        return to_output((Z @ W.T) / self._feature_scales()[0], X)

    def to_torch(self, *, dtype=None):
        """A torch module equal to ``transform``, for fine-tuning.

        Input normalisation (with ``normalize_input``), then per layer an
        ``nn.Linear`` (weight ``coefs_[i].T``, no bias) and the activation as a
        small module, in an ``nn.Sequential`` (``return_layers="top"``) or in a
        module that concatenates every layer's features (``return_layers="all"``). Fully
        connected layers only: locally connected ones raise a ValueError. See
        :func:`sklhebb.torch_export.competitive_to_torch`.

        Parameters
        ----------
        dtype : torch.dtype, default=None
            The module's dtype; None is float32, whatever dtype the model was
            fitted in. The module takes input of this dtype.

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
