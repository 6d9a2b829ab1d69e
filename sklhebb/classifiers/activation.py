"""ActivationLearningClassifier: classification by maximal output activation.

H. Zhou, "Activation Learning by Local Competitions" (arXiv 2209.13400),
Sections III-V, with the details of the authors' code as written down in the
project's spec (``activation_learning.md``, cited as "spec" below).

The network sees the data and the label together: input = [x^, l_c], the
unit-normalised sample and the normalised label code, each normalised on its
own (spec 2.1). Every layer learns by the local competitive rule (Eq. 4), all
layers from one forward pass; the hidden activations are magnitude-preserving
(``std_abs`` of Eq. 7, or ``abs``), and the output activation
A(x, c) = ||y_L||^2 is the squared norm of the top layer's linear output.

* predict: argmax_c A(x, c). The first layer is linear in its input, so its
  data part x^ W_img is computed once and the label rows l_c W_lab are
  broadcast-added (spec 6.1); only the layers above run once per label.
* feedback (Eq. 12-14): the positive sample (true label) is learned and the
  strongest wrong label is unlearned with factor lambda, both scaled by
  gamma(g) = clip(1 - slope * g, 0, 1) of the activation gap g (spec 4.4).
"""

from __future__ import annotations

import inspect
import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import _ranks, rules
from .._backend import to_numpy, to_output
from .._base import BACKEND_CONSTRAINTS, HebbianClassifierMixin, HebbianEstimator, compute_dtype, validate_images
from .._constraints import ImageShape, LayerSizes
from .._training import RowStream
from ..nn import UntiedConv
from ..nn.competitive import (
    activate,
    apply_deltas,
    dense,
    forward,
    init_statistics,
    init_weights,
    input_gradient,
    local,
    n_outputs,
    normalize_input,
    over_ranks,
)

__all__ = ["ActivationLearningClassifier"]

_GAMMA_MOMENTUM = 0.99  # EMA of mean gamma (spec 4.4 step 3)
# parameters of the accuracy feedback (Eq. 12-14), without effect when feedback=False
_FEEDBACK_PARAMETERS = ("unlearning_factor", "gap_slope", "renormalize_gamma", "feedback_update", "feedback_order", "unlearning_threshold")
# max_iter=None: the authors' step budget in epochs, capped at about 100,000 sample presentations,
# from 10 to 40 epochs (a fit on small data takes seconds; benchmarks/RESULTS.md, "Defaults")
_AUTO_PRESENTATIONS = 100_000
_AUTO_EPOCHS = (10, 40)
# batch_size="auto": n // 500 samples per minibatch, from 20 to the paper's 100 (the rule needs
# thousands of steps and a minibatch's cost is nearly proportional to its size; 10 diverged on MNIST)
_AUTO_BATCH_DIVISOR = 500
_AUTO_BATCH = (20, 100)
_PREDICT_FLOATS = 1 << 25  # floats per (sample, label) chunk in predict (~128 MB in float32)


def label_codes(n_classes, repeat, strength=1.0, dtype="float32"):
    """l_c: one-hot(c) tiled ``repeat`` times, scaled to squared norm ``strength`` (spec 2.1).

    Returns (n_classes, n_classes * repeat); column j * n_classes + c is 1 for class c.
    """
    E = np.tile(np.eye(n_classes), (1, repeat)) * math.sqrt(strength / repeat)
    return E.astype(dtype)


class ActivationLearningClassifier(HebbianClassifierMixin, HebbianEstimator, ClassifierMixin, BaseEstimator):
    """Activation learning: a network of local competitive layers over data and label.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int or None, default=None
        Units of the weight layers, bottom first: L = len(hidden_layer_sizes)
        layers whose top one gives the output activation (the paper's
        "two-layer network" of 1064 units per layer is ``(1064, 1064)``, the
        counterpart of an MLP's ``hidden_layer_sizes=(1064, 1064)``). With
        ``window`` every layer but the top one is locally connected and its
        entry is its units per image position; the top layer is fully
        connected (unless it is the only layer). None is the paper's network:
        two layers as wide as the input, ``(d, d)`` with
        d = n_features + n_classes * label_repeat, or ``(C, H * W * C)`` for
        images of C channels with ``window``.
    activation : {"std_abs", "abs"}, default="std_abs"
        Magnitude-preserving phi between layers (Eq. 7 with running
        statistics, or |y|). The top layer is linear.
    label_repeat : int, default=28
        R, copies of the one-hot label code (28 for MNIST, 10 for CIFAR).
    input_strength, label_strength : float, default=1.0
        Squared norms of the data part and of the label part of the input
        (spec: 1 and 1 for MNIST, 2 and 1 for CIFAR).
    learning_rate : float, default=0.1
        eta.
    schedule : {"step", "constant", "linear"} or callable, default="step"
        Learning rate per epoch: "step" multiplies eta by 0.1 for the last 10%
        of the epochs (the authors' MNIST code), "constant" keeps it,
        "linear" lowers it to zero, a callable ``schedule(epoch, n_epochs)``
        gives the factor. ``partial_fit`` always uses the constant
        ``learning_rate``.
    max_iter : int or None, default=None
        Epochs. None: the authors' step budget
        S = max(60000 * sqrt(n / 60000), 10000) minibatches (spec 5.1) in
        epochs, capped at 100,000 // n epochs but never below 10 nor above 40
        (40 epochs of digits, 10 of 10,000 Fashion-MNIST images), so that a
        fit on small data takes seconds (uncapped, S is at least 10,000
        minibatches: 352 s on 1,257 digits); set an int for the paper's long
        runs.
    batch_size : int or "auto", default="auto"
        Samples per minibatch. "auto": n // 500 of the first fit's n samples,
        from 20 to the paper's 100 (20 up to 10,000 samples, 100 from 50,000
        on): the rule needs thousands of steps, and a step costs about in
        proportion to its samples (10 diverged on MNIST at the default
        learning rate). The change of Eq. (4) is averaged over the minibatch.
        The value used is ``batch_size_``.
    shuffle : bool, default=True
        Shuffle the samples every epoch (on the host, the same order on every
        backend).
    init_std : float, default=0.01
        Truncated-normal initial weights (+-2 std).
    stat_momentum : float, default=0.995
        Decay of the running statistics of std_abs.
    feedback : bool, default=True
        Learn with accuracy feedback (positive and negative samples, Eq. 13);
        False is the plain paradigm: every sample learned once with its label.
    unlearning_factor : float, default=0.9
        lambda in Eq. (13) (0.7 in the paper's CIFAR runs).
    gap_slope : float or "auto", default="auto"
        gamma(g) = clip(1 - gap_slope * g, 0, 1). "auto": 5, or 2 when ``fit``
        gets 1000 samples or fewer (authors' MNIST code); ``partial_fit``
        uses 5. (The paper's min(max(5g + 1, 0), 1) has a sign slip, spec 9.1.)
    renormalize_gamma : bool, default=True
        Divide gamma by an EMA (0.99) of its batch mean (authors' MNIST code,
        not in the paper).
    feedback_update : {"sequential", "summed"}, default="sequential"
        "sequential": two steps, the second from the weights the first
        left (authors' code); "summed": Eq. (13) literally, one change
        gamma (dW+ - lambda dW-) from one set of weights.
    feedback_order : {"positive_first", "negative_first"}, default="positive_first"
        Order of the sequential steps (MNIST code: positive first; CIFAR
        code: negative first).
    unlearning_threshold : float or None, default=None
        Skip the negative step for samples whose positive activation is at
        most this value (the paper's CIFAR start-up gate, 3 - L / 2 there).
    weight_decay : float, default=0.0
        Subtract weight_decay * W after every step, not scaled by eta (CIFAR
        code: 1e-5).
    weight_clip : float or None, default=None
        Clip weights to [-weight_clip, weight_clip] after every step (CIFAR: 1).
    temperature : float, default=0.05
        ``predict_proba`` is softmax(A / temperature), the paper's
        p proportional to exp(a ||y||^2) with a = 1 / temperature (the paper
        does not fix a; activations lie in [0, input_strength + label_strength]).
    window : int or None, default=None
        K (odd): locally connected layers without weight sharing (Section V).
        Layer 1 = a K x K locally connected image block plus a fully
        connected label block; the layers above it locally connected too,
        but the top one, which is fully connected. Needs images (3-D/4-D X
        or ``image_shape``).
    image_shape : tuple of int, default=None
        (H, W) or (H, W, C) for 2-D X with ``window``.
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
    classes_ : ndarray of shape (n_classes,)
    coefs_ : list of ndarray
        Weights per layer; ``coefs_[0]`` is the data block of layer 1
        ((n_features, units), or (H, W, K*K*C, units per position) when
        locally connected).
    label_coef_ : ndarray of shape (n_classes * label_repeat, units of layer 1)
        The label block of layer 1.
    label_codes_ : ndarray of shape (n_classes, n_classes * label_repeat)
    running_mean_, running_var_ : list of ndarray
        Statistics of |y| of the hidden layers (std_abs).
    gamma_scale_ : float
        EMA of the batch-mean gamma (``renormalize_gamma``).
    batch_size_ : int
        Samples per minibatch (``batch_size`` with "auto" resolved).
    error_curve_ : list of float or None
        Training error per epoch (``feedback=True``): the share of the
        epoch's samples whose strongest wrong label won or tied when their
        step began, i.e. before the change that learned them. None with
        ``feedback=False``, which computes no activation gap.
    n_iter_, n_steps_ : int
    n_features_in_ : int
    image_shape_ : tuple

    References
    ----------
    H. Zhou. Activation Learning by Local Competitions. arXiv:2209.13400.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklhebb.classifiers.activation import ActivationLearningClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = ActivationLearningClassifier((100, 100), label_repeat=8, max_iter=20,
    ...                                    batch_size=50, learning_rate=0.2, random_state=0)
    >>> clf.fit(X[:1200], y[:1200]).score(X[1200:], y[1200:]) > 0.75
    True
    >>> clf.decision_function(X[:2]).shape  # output activation per class
    (2, 10)
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [LayerSizes(allow_empty=False), None],
        "activation": [StrOptions({"std_abs", "abs"})],
        "label_repeat": [Interval(Integral, 1, None, closed="left")],
        "input_strength": [Interval(Real, 0, None, closed="neither")],
        "label_strength": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "schedule": [StrOptions({"step", "constant", "linear"}), callable],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "init_std": [Interval(Real, 0, None, closed="neither")],
        "stat_momentum": [Interval(Real, 0, 1, closed="both")],
        "feedback": ["boolean"],
        "unlearning_factor": [Interval(Real, 0, None, closed="left")],
        "gap_slope": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "renormalize_gamma": ["boolean"],
        "feedback_update": [StrOptions({"sequential", "summed"})],
        "feedback_order": [StrOptions({"positive_first", "negative_first"})],
        "unlearning_threshold": [Real, None],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "weight_clip": [Interval(Real, 0, None, closed="neither"), None],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "window": [Interval(Integral, 1, None, closed="left"), None],
        "image_shape": [ImageShape(), None],
        **BACKEND_CONSTRAINTS,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    _memory_hints = ("batch_size", "hidden_layer_sizes")

    def __init__(
        self,
        hidden_layer_sizes=None,
        *,
        activation="std_abs",
        label_repeat=28,
        input_strength=1.0,
        label_strength=1.0,
        learning_rate=0.1,
        schedule="step",
        max_iter=None,
        batch_size="auto",
        shuffle=True,
        init_std=0.01,
        stat_momentum=0.995,
        feedback=True,
        unlearning_factor=0.9,
        gap_slope="auto",
        renormalize_gamma=True,
        feedback_update="sequential",
        feedback_order="positive_first",
        unlearning_threshold=None,
        weight_decay=0.0,
        weight_clip=None,
        temperature=0.05,
        window=None,
        image_shape=None,
        backend="numpy",
        device=None,
        random_state=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.label_repeat = label_repeat
        self.input_strength = input_strength
        self.label_strength = label_strength
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.init_std = init_std
        self.stat_momentum = stat_momentum
        self.feedback = feedback
        self.unlearning_factor = unlearning_factor
        self.gap_slope = gap_slope
        self.renormalize_gamma = renormalize_gamma
        self.feedback_update = feedback_update
        self.feedback_order = feedback_order
        self.unlearning_threshold = unlearning_threshold
        self.weight_decay = weight_decay
        self.weight_clip = weight_clip
        self.temperature = temperature
        self.window = window
        self.image_shape = image_shape
        self.backend = backend
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ geometry
    def _sizes(self):
        """Units of every layer, bottom first, or None for the paper's widths."""
        if self.hidden_layer_sizes is None:
            return None
        return [int(s) for s in self.hidden_layer_sizes]

    def _layers(self):
        """(data block of layer 1, label block of layer 1, layers 2..L), built from the parameters (never stored)."""
        n_label = len(self.classes_) * self.label_repeat
        if self.window is None:
            sizes = self._sizes() or [self.n_features_in_ + n_label] * 2
            first = dense(self.n_features_in_, sizes[0])
            rest = [dense(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        else:
            H, W, C = self.image_shape_
            if H == 1 and W == 1:
                raise ValueError("window needs images: pass 3-D/4-D X or set image_shape=(H, W[, C]).")
            sizes = self._sizes() or [C, H * W * C]
            first = local((H, W, C), self.window, sizes[0])
            rest = [local((H, W, a), self.window, b) for a, b in zip(sizes[:-2], sizes[1:-1])]
            if len(sizes) >= 2:
                rest.append(dense(H * W * sizes[-2], sizes[-1]))
        return first, dense(n_label, n_outputs(first)), rest

    def _floats_per_row(self):
        """Largest intermediate (patches or outputs) one (sample, label) row needs."""
        first, _, rest = self._layers()
        sizes = [n_outputs(first)]
        for layer in rest:
            sizes.append(n_outputs(layer))
            if isinstance(layer, UntiedConv):
                H, W, C = layer.in_shape
                sizes.append(H * W * layer.size * layer.size * C)
        return max(sizes)

    def _setup(self, data, y, dtype):
        self.label_codes_ = label_codes(len(self.classes_), self.label_repeat, self.label_strength, dtype)
        self._layers()  # a window without images fails here, before any weight is drawn
        self._fit_gap_slope = self._gap_slope(_ranks.total(data.shape[0]))  # the rows of all ranks under data_parallel
        lo, hi = _AUTO_BATCH
        # under data_parallel "auto" takes the largest over the ranks, so that every rank steps alike
        auto = _ranks.largest(min(hi, max(lo, data.shape[0] // _AUTO_BATCH_DIVISOR)))
        self.batch_size_ = auto if self.batch_size == "auto" else int(self.batch_size)
        self._warn_ineffective()

    def _warn_ineffective(self):
        """A UserWarning for every parameter set away from its default that has no effect here."""
        defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()}
        unused = []
        if not self.feedback:
            unused += [(k, "feedback=False") for k in _FEEDBACK_PARAMETERS]
        if self.activation != "std_abs":
            unused.append(("stat_momentum", f"activation={self.activation!r}"))
        for name, reason in unused:
            if getattr(self, name) != defaults[name]:
                warnings.warn(
                    f"{name}={getattr(self, name)!r} has no effect with {reason}; leave it at its default to silence this warning.",
                    UserWarning,
                    stacklevel=5,
                )

    def _validate_input(self, X, *, reset):
        images = validate_images(self, X, image_shape=self.image_shape, reset=reset)
        return images.reshape(images.shape[0], -1)

    # -------------------------------------------------------------- network
    def _phi(self, params, i, Y):
        return activate(self.activation, Y, params[f"mu{i}"], params[f"var{i}"])

    def _class_activations(self, bk, params, Xn):
        """A(x, c) for every sample and label, (B, n_classes), by the shortcut of spec 6.1."""
        xp = bk.xp
        first, _, rest = self._layers()
        B = Xn.shape[0]
        C = params["codes"].shape[0]
        Yimg = forward(bk, first, params["W0"], Xn)  # (B, m), once
        Lrow = params["codes"] @ params["Wlab"]  # (C, m)
        Y = xp.reshape(Yimg[:, None, :] + Lrow[None, :, :], (B * C, Yimg.shape[1]))
        for i, layer in enumerate(rest):
            Y = forward(bk, layer, params[f"W{i + 1}"], self._phi(params, i, Y))
        return xp.reshape(xp.sum(Y * Y, axis=1), (B, C))

    def _learn(self, bk, params, Xn, labels, rates):
        """One local-rule step of every layer from one forward pass with the given labels.

        rates: per-sample signed r_b (eta included). Updates the std_abs
        statistics (normalise with the old ones first, spec 3.2).
        """
        first, label_layer, rest = self._layers()
        lab = bk.xp.take(params["codes"], labels, axis=0)
        Y = forward(bk, first, params["W0"], Xn) + lab @ params["Wlab"]
        deltas = [
            first.competitive_increment(params["W0"], Xn, Y, rates),
            label_layer.competitive_increment(params["Wlab"], lab, Y, rates),
        ]
        names, moments = ["W0", "Wlab"], []
        for i, layer in enumerate(rest):
            h = self._phi(params, i, Y)
            if self.activation == "std_abs":
                moments.append((i, *rules.abs_moments(Y, params[f"mu{i}"])))
            Wn = params[f"W{i + 1}"]
            Y = forward(bk, layer, Wn, h)
            deltas.append(layer.competitive_increment(Wn, h, Y, rates))
            names.append(f"W{i + 1}")
        # means over the rows of every rank under data_parallel: one all-reduce (identity in one process)
        deltas, moments = over_ranks(bk, deltas, moments, Xn.shape[0])
        for i, s1, s2 in moments:
            mu, var = params[f"mu{i}"], params[f"var{i}"]
            params[f"mu{i}"], params[f"var{i}"] = rules.abs_statistics_update(None, mu, var, self.stat_momentum, moments=(s1, s2))
        apply_deltas(params, names, deltas, self.weight_decay, self.weight_clip, bk.xp)

    # ------------------------------------------------------------ learning
    def _gap_slope(self, n):
        """The slope of gamma: ``gap_slope``, or for "auto" 2 for a fit on 1000 samples or fewer, else 5."""
        if self.gap_slope != "auto":
            return float(self.gap_slope)
        return 5.0 if n is None or n > 1000 else 2.0

    def _stages(self):
        """fit is one stage of every layer; its value is the feedback's gap slope for the fit's sample count."""
        return [self._fit_gap_slope]

    def _step(self, bk, params, batch, lr, stage):
        """One minibatch, with accuracy feedback (Eq. 12-14, spec 4.4) unless ``feedback=False``.

        ``stage`` is fit's gap slope; partial_fit (stage None) uses ``gap_slope`` or 5. Under
        data_parallel each learning pass combines its changes over the ranks in one all-reduce, and
        the renormalisation of gamma its batch mean in another: the passes depend on each other.
        """
        xp = bk.xp
        Xb, yb = batch
        Xn = normalize_input(bk, Xb, self.input_strength)
        B = Xn.shape[0]
        C = params["codes"].shape[0]
        ones = bk.zeros((B,), dtype=Xn.dtype) + 1.0
        if not self.feedback or C < 2:
            self._learn(bk, params, Xn, yb, lr * ones)
            return None
        # 1. activations of every label, no updates; the gap to the strongest wrong label (Eq. 12)
        A = self._class_activations(bk, params, Xn)
        gap, A_pos, neg = rules.activation_gap(A, yb)
        # 2. gamma, a truncated linear function of the gap (spec 4.4 / 9.1), and the rates of Eq. (13)
        gamma = rules.feedback_gamma(gap, self._gap_slope(None) if stage is None else stage)
        if self.renormalize_gamma:
            gamma, params["gscale"] = rules.renormalize_gamma(gamma, params["gscale"], _GAMMA_MOMENTUM)
        r_pos, r_neg = rules.feedback_rates(gamma, lr, self.unlearning_factor, A_pos, self.unlearning_threshold)
        # 3. learn the positive sample, unlearn the negative one (Eq. 13)
        if self.feedback_update == "summed":
            both = xp.concat([Xn, Xn], axis=0)
            self._learn(bk, params, both, xp.concat([yb, neg]), 2.0 * xp.concat([r_pos, r_neg]))
        elif self.feedback_order == "positive_first":
            self._learn(bk, params, Xn, yb, r_pos)
            self._learn(bk, params, Xn, neg, r_neg)
        else:
            self._learn(bk, params, Xn, neg, r_neg)
            self._learn(bk, params, Xn, yb, r_pos)
        # the samples a wrong label won (or tied) before this step's change: the epoch's training error
        return {"errors": xp.sum(xp.astype(gap <= 0, Xn.dtype)), "samples": B}

    def _epoch_record(self, bk, params, totals):
        """The epoch's training error: the share of samples whose strongest wrong label won or tied
        before the step that learned them (feedback only: the plain paradigm computes no gap)."""
        if "errors" not in totals:
            return {}
        return {"training_error": float(totals["errors"]) / max(int(totals["samples"]), 1)}

    def _record_history(self, history, *, reset):
        if reset:
            self.error_curve_ = [] if self.feedback else None
        if self.error_curve_ is not None:
            self.error_curve_ = self.error_curve_ + [r["training_error"] for r in history if "training_error" in r]

    def _batch_size(self):
        return self.batch_size_ if self.batch_size == "auto" else int(self.batch_size)

    def _n_epochs(self, n_samples):
        """``max_iter``, or the authors' step budget S = max(60000 sqrt(n / 60000), 10000) minibatches in epochs,
        capped at 100,000 // n epochs within [10, 40]."""
        if self.max_iter is not None:
            return self.max_iter
        steps = max(int(60000 * math.sqrt(n_samples / 60000)), 10000)
        lo, hi = _AUTO_EPOCHS
        cap = min(hi, max(lo, _AUTO_PRESENTATIONS // max(n_samples, 1)))
        # under data_parallel n_samples is every rank's and a step's minibatch is batch_size per rank
        return min(max(steps // max(n_samples // (self._batch_size() * _ranks.world()), 1), 1), cap)

    def _init_params(self, rng, dtype):
        first, label_layer, rest = self._layers()
        p = {
            "W0": init_weights(rng, first, self.init_std, dtype),
            "Wlab": init_weights(rng, label_layer, self.init_std, dtype),
        }
        for i, layer in enumerate(rest):
            p[f"W{i + 1}"] = init_weights(rng, layer, self.init_std, dtype)
            p[f"mu{i}"], p[f"var{i}"] = init_statistics(n_outputs(first if i == 0 else rest[i - 1]), dtype)
        p["gscale"] = np.ones((), dtype=dtype)
        p["codes"] = self.label_codes_
        return p

    def _params_from_fitted(self):
        p = {"W0": self.coefs_[0], "Wlab": self.label_coef_, "gscale": np.asarray(self.gamma_scale_, dtype=self.coefs_[0].dtype)}
        for i in range(len(self.coefs_) - 1):
            p[f"W{i + 1}"] = self.coefs_[i + 1]
            p[f"mu{i}"] = self.running_mean_[i]
            p[f"var{i}"] = self.running_var_[i]
        p["codes"] = self.label_codes_
        return p

    def _fitted_attributes(self, params):
        n = 1 + len(self._layers()[2])
        return {
            "coefs_": [to_numpy(params[f"W{i}"]) for i in range(n)],
            "label_coef_": to_numpy(params["Wlab"]),
            "running_mean_": [to_numpy(params[f"mu{i}"]) for i in range(n - 1)],
            "running_var_": [to_numpy(params[f"var{i}"]) for i in range(n - 1)],
            "gamma_scale_": float(to_numpy(params["gscale"])),
        }

    def _stream(self, bk, data, y, dtype):
        return RowStream(bk, data, self._batch_size(), dtype, y=y)

    def _monitor(self, bk, params):
        W = params[f"W{len(self._layers()[2])}"]
        top = float(to_numpy(bk.xp.sum(W * W)))
        return f"sum w^2 (top layer) = {top:.4g}, gamma EMA = {float(to_numpy(params['gscale'])):.3f}"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train on samples ``X`` with labels ``y``.

        Parameters
        ----------
        X : array of shape (n, d), or images (n, H, W[, C])
        y : array of shape (n,)

        Returns
        -------
        self
        """
        return self._fit(X, y)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """One pass over ``(X, y)`` at the constant ``learning_rate``.

        Parameters
        ----------
        X : array of shape (n, d), or images
        y : array of shape (n,)
        classes : array of shape (n_classes,), default=None
            Every class; required on the first call.

        Returns
        -------
        self
        """
        return self._partial_fit(X, y, classes)

    # ------------------------------------------------------------ inference
    def _rows_per_chunk(self):
        """Rows per chunk of inference, so that (rows x labels) intermediates stay near _PREDICT_FLOATS."""
        check_is_fitted(self)  # before the geometry is read: NotFittedError, not AttributeError
        return max(1, _PREDICT_FLOATS // (len(self.classes_) * self._floats_per_row()))

    def _activations(self, bk, params, chunk):
        """(rows, n_classes) output activations A(x, c) of a chunk of rows."""
        return self._class_activations(bk, params, normalize_input(bk, chunk, self.input_strength))

    def decision_function(self, X):
        """Output activation A(x, c) = ||y_L||^2 for every class.

        Returns
        -------
        scores : array of shape (n, n_classes), or (n,) = A(x, c1) - A(x, c0)
            for two classes (scikit-learn's binary convention).
        """

        def scores(bk, params, chunk):
            A = self._activations(bk, params, chunk)
            return A[:, 1] - A[:, 0] if A.shape[1] == 2 else A

        return self._map_chunks(X, scores, self._rows_per_chunk(), hints=())

    def predict_proba(self, X):
        """softmax(A(x, c) / temperature) over the classes (the paper's Eq. 8).

        Returns
        -------
        proba : array of shape (n, n_classes); rows sum to 1.
        """

        def proba(bk, params, chunk):
            return bk.xp.exp(rules.log_softmax(self._activations(bk, params, chunk) / self.temperature))

        return self._map_chunks(X, proba, self._rows_per_chunk(), hints=())

    def _predict_index(self, X):
        """Index into ``classes_`` of the largest output activation, in ``X``'s namespace."""
        return self._map_chunks(X, lambda bk, p, c: bk.xp.argmax(self._activations(bk, p, c), axis=1), self._rows_per_chunk(), hints=())

    def predict(self, X):
        """The label whose input gives the largest output activation.

        Returns
        -------
        y : array of shape (n,)
            NumPy for NumPy input; torch or CuPy on the input's device for
            numeric labels.
        """
        return self._labels(self._predict_index(X))

    def score_samples(self, X):
        """Typicality for anomaly detection: max_c A(x, c) (Section VI-A).

        Fit the model on normal data only; low scores flag anomalies. (For
        data without labels use
        :class:`~sklhebb.encoders.competitive.LocalCompetitiveEncoder` with
        ``activation="std_abs", training="joint"`` and its ``score_samples``:
        the same network without the label part.)

        Returns
        -------
        scores : array of shape (n,)
        """
        return self._map_chunks(X, lambda bk, p, c: bk.xp.max(self._activations(bk, p, c), axis=1), self._rows_per_chunk(), hints=())

    # -------------------------------------------- inference by optimisation
    def _input_gradient(self, bk, params, Xin, labels, weights=None):
        """A(x^, c) and its gradient with respect to the data part x^ (Eq. 10).

        Xin: (B, d) data part as the first layer sees it; labels: (B,) class
        indices; weights: optional (B, m_L) factors (1 + delta_j) of Eq. (16).
        """
        xp = bk.xp
        first, _, rest = self._layers()
        Y = forward(bk, first, params["W0"], Xin) + xp.take(params["codes"], labels, axis=0) @ params["Wlab"]
        saved = []
        for i, layer in enumerate(rest):
            saved.append(Y)
            Y = forward(bk, layer, params[f"W{i + 1}"], self._phi(params, i, Y))
        Wy = Y if weights is None else Y * weights
        A = xp.sum(Wy * Y, axis=1)
        G = 2.0 * Wy
        for i in range(len(rest) - 1, -1, -1):
            G = input_gradient(bk, rest[i], params[f"W{i + 1}"], G)
            G = rules.activation_backward(self.activation, saved[i], G, params[f"mu{i}"], params[f"var{i}"])
        return A, input_gradient(bk, first, params["W0"], G)

    def _optimise(self, bk, X0, labels, loss_grad, free, *, n_steps, learning_rate):
        """Adam on the free entries of z (the authors' optimiser) maximising A - penalties.

        Runs on ``bk`` in the fitted dtype; X0, labels and free may be host or
        ``bk`` arrays. Returns z on ``bk``.
        """
        xp = bk.xp
        dtype = str(self.coefs_[0].dtype)
        params = self._to_device(bk, self._params_from_fitted(), dtype)
        z = bk.asarray(X0, dtype=dtype)
        free = bk.asarray(free, dtype=dtype)
        labels = bk.asarray(labels, dtype="int64")
        m = xp.zeros_like(z)
        v = xp.zeros_like(z)
        b1, b2, eps = 0.9, 0.999, 1e-8
        for t in range(1, n_steps + 1):
            g = loss_grad(bk, params, z, labels, free) * free
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            z = z - learning_rate * (m / (1 - b1**t)) / (xp.sqrt(v / (1 - b2**t)) + eps)
        return z

    def _normalised_grad(self, bk, params, z, labels, weights=None):
        """A and dA/dz for a raw image z that the network normalises itself."""
        xp = bk.xp
        nz = xp.sqrt(xp.sum(z * z, axis=1, keepdims=True))
        nz = xp.where(nz > 1e-7, nz, xp.ones_like(nz))
        u = z / nz
        s = math.sqrt(self.input_strength)
        A, g = self._input_gradient(bk, params, s * u, labels, weights)
        g = s * g
        return A, (g - xp.sum(g * u, axis=1, keepdims=True) * u) / nz, u, nz

    def generate(self, y, *, n_steps=1000, learning_rate=0.01, sparsity=0.003, noise=0.03, random_state=None):
        """Images of the classes ``y`` by maximising the output activation (Eq. 15-16).

        Starting from Uniform(0, 1) images scaled to unit norm, Adam minimises
        0.1 (||z|| - 1)^2 + sparsity * ||z / ||z|| ||_1 - sum_j (1 + delta_j) y_j^2
        (the authors' code; the paper's Eq. 11/15 with the L1 sharpening),
        delta_j ~ Uniform(-noise, noise) drawn once per image (Eq. 16; the
        paper uses Gaussian noise of std 0.03). The authors ran 3,000,000 steps.

        Parameters
        ----------
        y : array of shape (n,)
            Class labels (values of ``classes_``).
        n_steps, learning_rate : Adam steps and rate.
        sparsity : float
            beta of Eq. (15).
        noise : float
            Half-width of the output noise delta (0 for none).
        random_state : int, RandomState or None

        Returns
        -------
        images : array of shape (n, n_features_in_), unit norm (the
            network's view of an image; rescale for display). Computed on the
            estimator's ``backend``/``device`` (or that of a torch/CuPy ``y``);
            NumPy unless ``y`` is a torch/CuPy array.
        """
        check_is_fitted(self)
        bk = self._backend(y)  # the estimator's backend/device, or that of a torch/CuPy y
        y_in, y = y, np.asarray(to_numpy(y))
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y has labels {unknown.tolist()} not in classes_={self.classes_.tolist()}.")
        labels = np.searchsorted(self.classes_, y)
        rng = check_random_state(random_state)
        z0 = rng.uniform(0, 1, size=(len(y), self.n_features_in_))
        z0 /= np.linalg.norm(z0, axis=1, keepdims=True)
        m_top = self.coefs_[-1].shape[-1] if len(self.coefs_) > 1 else self.label_coef_.shape[1]
        delta = rng.uniform(-noise, noise, size=(len(y), m_top)) if noise else None

        def loss_grad(bk, params, z, lab, free):
            xp = bk.xp
            w = None if delta is None else bk.asarray(1.0 + delta, dtype=str(z.dtype).split(".")[-1])
            _, gA, u, nz = self._normalised_grad(bk, params, z, lab, w)
            g_norm = 0.2 * (nz - 1.0) * u
            su = xp.sign(u)
            g_l1 = sparsity * (su - xp.sum(su * u, axis=1, keepdims=True) * u) / nz
            return g_norm + g_l1 - gA

        # z0 and delta are drawn on the host, so every backend starts from the same images
        Z = self._optimise(bk, z0, labels, loss_grad, np.ones_like(z0), n_steps=n_steps, learning_rate=learning_rate)
        xp = bk.xp
        nz = xp.sqrt(xp.sum(Z * Z, axis=1, keepdims=True))
        return to_output(Z / xp.where(nz > 1e-12, nz, xp.full_like(nz, 1e-12)), y_in)

    def complete(self, X, mask, *, n_steps=1000, learning_rate=0.01, sparsity=0.003):
        """Fill in the masked entries of ``X`` by maximising the output activation (Eq. 17).

        First the label is chosen as argmax_c A with the masked entries at 0,
        then Adam (from 0) minimises
        sum(relu(z - 1)^2 + relu(-z)^2) + sparsity * ||z / ||[x_v, z]|| ||_1
        - A([x_v, z], c) over the masked entries z, the visible and hidden
        parts normalised together by the network (authors' code). Each row is
        first divided by the largest visible value so that z is kept in the
        visible range [0, 1]; the result is scaled back. The authors ran
        10,000,000 steps.

        Parameters
        ----------
        X : array of shape (n, n_features_in_) or images
        mask : bool array of the same shape, True where the value is missing.

        Returns
        -------
        X_completed : array of shape (n, n_features_in_)
            Computed on the estimator's ``backend``/``device`` (or that of a
            torch/CuPy ``X``); NumPy for NumPy input, else the input's kind.
        """
        check_is_fitted(self)
        bk = self._backend(X)  # the estimator's backend/device, or that of a torch/CuPy X
        xp = bk.xp
        dtype = compute_dtype(X) if hasattr(X, "dtype") else "float64"
        X2 = bk.asarray(self._validate_input(X, reset=False), dtype=dtype)
        hidden = bk.asarray(mask, dtype="bool") if hasattr(mask, "shape") else bk.asarray(np.asarray(mask, dtype=bool))
        hidden = xp.reshape(hidden, X2.shape)
        X2 = xp.where(hidden, xp.zeros_like(X2), X2)
        scale = xp.max(xp.abs(X2), axis=1, keepdims=True)
        scale = xp.where(scale > 1e-12, scale, xp.full_like(scale, 1e-12))
        labels = self._predict_index(X2)  # the label: argmax_c A with the hidden entries at 0
        free = xp.astype(hidden, X2.dtype)

        def loss_grad(bk, params, z, lab, free):
            xp = bk.xp
            _, gA, u, nz = self._normalised_grad(bk, params, z, lab)
            zero = xp.zeros_like(z)
            g_box = 2.0 * xp.maximum(z - 1.0, zero) - 2.0 * xp.maximum(-z, zero)
            su = xp.sign(u) * free
            g_l1 = sparsity * (su - xp.sum(su * u, axis=1, keepdims=True) * u) / nz
            return g_box + g_l1 - gA

        Z = self._optimise(bk, X2 / scale, labels, loss_grad, free, n_steps=n_steps, learning_rate=learning_rate)
        return to_output(xp.where(hidden, xp.astype(Z, X2.dtype) * scale, X2), X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
