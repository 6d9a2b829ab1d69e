"""URFBClassifier: deep networks trained with updated random feedback.

Y. Amit (2019), "Deep learning with asymmetric connections and Hebbian
updates", Front. Comput. Neurosci. 13:18 (arXiv:1812.07965).

fit
    Minibatches (shuffled every epoch) of ``X / input_scale_`` go through the
    forward pass of the layer kit :mod:`sklhebb.nn`. The output error is
    y - softmax (the default) or the paper's local hinge signal of Eq. (6). The feedback pass runs top-down: at every weight
    layer the error at the field is sigma'(h) times the error arriving from
    above (Eq. 3 shuts it off at saturated units), the forward weights W and
    the feedback weights R receive the same Hebbian increment (1/B) x^T delta
    (:func:`sklhebb.rules.urfb_update`), and the error sent below goes through
    R (Eq. 2 with R in place of W^t). ``feedback="frfb"`` keeps R fixed
    (feedback alignment), ``feedback="bp"`` sends it through W
    (back-propagation). Plain SGD, its step falling linearly to zero by default
    (``schedule``).
predict
    The linear outputs x_L; ``predict`` is their argmax, ``predict_proba``
    their softmax.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from threadpoolctl import threadpool_limits

from .. import _ranks, rules
from .._backend import backend_of, to_numpy
from .._base import BACKEND_CONSTRAINTS, HebbianClassifierMixin, HebbianEstimator
from .._constraints import ImageShape, LayerSizes, LayerSpec
from .._training import RowStream
from ..nn import Dense, Dropout, Network, Sum, UntiedConv, UntiedDense, build_layers

__all__ = ["URFBClassifier"]

_PREDICT_CHUNK = 2048
# batch_size="auto": n // 50 samples per minibatch (50 steps per epoch), from 10 to the paper's 500
_AUTO_STEPS_PER_EPOCH = 50
_AUTO_BATCH_MIN, _AUTO_BATCH_MAX = 10, 500


def _over_ranks(bk, incs, count):
    """One layer's increments (means over ``count`` rows) as means over the rows of every rank."""
    keys = sorted(incs)
    means = _ranks.mean_over_ranks(bk, *[incs[k] for k in keys], count=count)
    return dict(zip(keys, means if len(keys) > 1 else (means,)))


def _correlation(a, b):
    """Pearson correlation of the entries of two arrays (NumPy, float64)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


class URFBClassifier(HebbianClassifierMixin, HebbianEstimator, ClassifierMixin, BaseEstimator):
    """Classifier trained with updated random feedback (URFB), FRFB or backprop.

    A feed-forward network (dense, convolutional, locally connected, max-pool,
    dropout and residual-sum layers) whose feedback connections R are separate
    from the forward weights W, drawn independently at random, and updated by
    the same local Hebbian increment as W (Amit 2019). The output error is
    y - softmax(x_L) by default, or the paper's multi-class hinge signal of
    Eq. (6), local to each output unit (``loss="hinge"``).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int or str, default=(500,)
        The hidden layers: every layer between the input and the linear
        output layer (one unit per class, always added), as in scikit-learn's
        MLPClassifier. A tuple of ints gives the sizes of fully connected
        layers (for tabular data). A string is a layer spec in the paper's
        notation, e.g. ``"conv 32 5x5; maxpool 3; drop .8; full 500; drop
        .3"``, or a preset name: ``"simpnet"``, ``"deepnet"``,
        ``"deepernet"``, ``"deepnet_s"`` (both read by
        :func:`sklhebb.nn.parse_architecture`).
    feedback : {"urfb", "frfb", "bp"}, default="urfb"
        "urfb": R receives the same increment as W (step
        ``feedback_learning_rate``); "frfb": R stays at its random start
        (feedback alignment); "bp": the error goes back through W
        (back-propagation; no R is kept).
    feedback_init : {"random", "copy"}, default="random"
        R drawn independently of W (the paper), or R = W (Zipser & Rumelhart:
        URFB then equals back-propagation exactly).
    loss : {"hinge", "softmax"}, default="softmax"
        Multi-class hinge of Eq. (4)-(6) (the paper's), or softmax
        cross-entropy (the default: 0.01 to 0.02 more accurate on digits,
        Fashion-MNIST and MNIST in 50 epochs; benchmarks/RESULTS.md, Defaults).
    off_class_weight : float, default=1.0
        kappa: the hinge's balancing factor is mu = kappa / (C - 1), as in the
        author's code (mu = 1/9 for ten classes). Hinge loss only.
    ramp_scale : float, default=1.0
        s of the saturated linearity sigma(h) = clip(s h, -1, 1). The paper
        writes s = 1 (the default); the author's runs used 0.5, which learns
        more slowly on short budgets.
    learning_rate : float, default=0.2
        eta, the SGD step for W at the start of ``fit`` (the paper: 0.1,
        constant).
    schedule : {"constant", "linear", "step"} or callable, default="linear"
        Learning rate of ``fit`` per epoch: "constant" keeps ``learning_rate``
        (the paper's), "linear" (the default) falls to zero over ``max_iter``
        epochs, "step"
        multiplies it by 0.1 for the last 10 % of the epochs, a callable
        ``schedule(epoch, n_epochs)`` gives the factor. The step for R follows
        the same schedule. ``partial_fit`` always uses ``learning_rate``.
    feedback_learning_rate : float, default=None
        Step for R under "urfb" (None: ``learning_rate``; the paper's
        epsilon of Section 5 is the ratio of the two). Under "frfb" and "bp"
        it has no effect, and a value other than None gives a UserWarning.
    batch_size : int or "auto", default="auto"
        Samples per minibatch. "auto": ``min(500, max(10, n // 50))`` for
        ``n`` training samples, i.e. 50 steps per epoch up to the paper's 500
        (reached at 25,000 samples): with 500 on small data an epoch makes
        too few steps (2,000 Fashion images, 20 epochs: 0.49 with 500, 0.765
        with 50). Fixed at the first ``fit`` / ``partial_fit``
        (``batch_size_``), so that later ``partial_fit`` calls use the same
        minibatches.
    max_iter : int, default=50
        Epochs.
    shuffle : bool, default=True
        Shuffle the rows every epoch.
    connectivity : float in (0, 1], default=1.0
        Fraction of connections kept; W and R get independent random masks
        and the pruned entries stay exactly zero (Section 4, "50%
        connectivity"). The output layer is never pruned (as in the code).
    untied : bool, default=False
        Make every convolution locally connected (Section 4.1).
    untied_init : {"copy", "independent"}, default="copy"
        Locally connected layers start with the same filter at every position
        (the author's code) or with independent draws.
    feedback_refresh : {"step", "epoch"}, default="step"
        Propagate through the current feedback weights, or through a copy
        refreshed at the start of every epoch (the author's untied phase:
        "still works fine"; there even "bp" is then only approximately bp).
    propagate_with : {"pre_update", "post_update"}, default="pre_update"
        Send the error down through the feedback weights before (paper-era
        code) or after (author's code from 2019-04) this step's update.
    error_clip : float, default=0.0
        beta_b > 0 clips the propagated error to clip(beta_b G, -1, 1)
        (an option of the code, off in its configs); 0 turns it off.
    use_bias : bool, default=False
        Give every weight layer a bias (the paper has none).
    input_scale : float or "auto", default="auto"
        The network sees ``X / input_scale``; the units saturate at |s h| = 1,
        so inputs belong in about [-1, 1]. "auto": the largest |x| of the
        training data (of the first ``partial_fit`` call) when it exceeds 1
        (255 for uint8 pixels, 16 for scikit-learn's digits), else 1; so X and
        X / X.max() give the same model. Fixed at the first fit
        (``input_scale_``); 1.0 feeds X as it is.
    image_shape : tuple of int, default=None
        (H, W) or (H, W, C) of the images when ``X`` is 2-D and the
        hidden layers have convolutions.
    backend : {"numpy", "torch", "cupy"}, default="numpy"
        Where to compute for NumPy input. Torch and CuPy input is computed in
        its own namespace and device and returned there.
    device : str, default=None
        Device for ``backend`` ("cpu", "cuda", "cuda:1"); None is the CPU for
        NumPy and torch and the current GPU for CuPy.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the masks, the shuffling and dropout (all drawn on
        the host, so every backend sees the same numbers).
    verbose : int, default=0
        1 prints one line per epoch; 2 adds a progress bar (tqdm).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coefs_ : list of ndarray
        Forward weights W of every weight layer, bottom up (dense: (n_in,
        n_out); conv: (k, k, C_in, C_out); untied: (H, W, k, k, C_in, C_out)).
    feedback_coefs_ : list of ndarray or None
        Feedback weights R (same shapes); None under ``feedback="bp"``.
    intercepts_ : list of ndarray
        Biases (only with ``use_bias=True``).
    alignment_ : ndarray of shape (n_iter_, n_weight_layers)
        Correlation between W and R of each layer after each epoch (Fig. 10-11);
        1 under back-propagation.
    loss_curve_ : list of float
        Mean training loss of each epoch (over the minibatches, with dropout,
        before each step's update).
    n_iter_ : int
        Epochs run (fit) or passes made (partial_fit calls) in total.
    n_steps_ : int
        Minibatch updates applied.
    layers_ : str
        The network in the paper's notation, output layer included.
    n_features_in_ : int
    input_scale_ : float
        The divisor of the inputs (``input_scale``, resolved).
    batch_size_ : int
        Samples per minibatch (``batch_size`` with "auto" resolved).
    image_shape_ : tuple (H, W, C)
        Shape of one sample as the network sees it ((1, 1, d) for rows).
    feature_names_in_ : ndarray of str
        Only for input with string column names.

    Notes
    -----
    The defaults (one hidden layer of 500, softmax, s = 1, SGD from 0.2
    falling linearly to 0 over 50 epochs, ``batch_size="auto"``) were chosen by measurement on digits, 10,000
    Fashion-MNIST images and 4,000 MNIST digits, each fed as it ships
    (``input_scale="auto"`` scales them): see ``benchmarks/RESULTS.md``,
    "Defaults (issue 15): URFBClassifier". With ``ramp_scale=0.5`` (the code)
    a deep network starts with outputs near zero and needs many epochs to
    leave that plateau (the paper trains for 200 to 1000 epochs).
    On the NumPy backend ``fit`` and ``partial_fit`` run BLAS on one thread:
    the minibatch products are small, and OpenBLAS's threads on them made
    the digits fit with the defaults 9x slower on the shared 2-core machine
    (26-30 s against 3 s at load average 10; RESULTS.md). The torch backend
    keeps torch's own thread setting.
    Parameters without effect in the configuration given
    (``feedback_learning_rate`` or ``propagate_with``/``feedback_refresh``
    under FRFB, ``feedback_init`` under bp, ``off_class_weight`` with softmax,
    ``untied_init`` without a locally connected layer) give a UserWarning.

    References
    ----------
    Y. Amit. Deep learning with asymmetric connections and Hebbian updates.
    Frontiers in Computational Neuroscience 13:18 (2019).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklhebb.classifiers.urfb import URFBClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = URFBClassifier(random_state=0).fit(X, y)
    >>> clf.input_scale_, clf.score(X, y) > 0.9
    (16.0, True)
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [LayerSizes(), LayerSpec()],
        "feedback": [StrOptions({"urfb", "frfb", "bp"})],
        "feedback_init": [StrOptions({"random", "copy"})],
        "loss": [StrOptions({"hinge", "softmax"})],
        "off_class_weight": [Interval(Real, 0, None, closed="left")],
        "ramp_scale": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "schedule": [StrOptions({"constant", "linear", "step"}), callable],
        "feedback_learning_rate": [Interval(Real, 0, None, closed="left"), None],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "connectivity": [Interval(Real, 0, 1, closed="right")],
        "untied": ["boolean"],
        "untied_init": [StrOptions({"copy", "independent"})],
        "feedback_refresh": [StrOptions({"step", "epoch"})],
        "propagate_with": [StrOptions({"pre_update", "post_update"})],
        "error_clip": [Interval(Real, 0, None, closed="left")],
        "use_bias": ["boolean"],
        "input_scale": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "image_shape": [ImageShape(), None],
        **BACKEND_CONSTRAINTS,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        hidden_layer_sizes=(500,),
        *,
        feedback="urfb",
        feedback_init="random",
        loss="softmax",
        off_class_weight=1.0,
        ramp_scale=1.0,
        learning_rate=0.2,
        schedule="linear",
        feedback_learning_rate=None,
        batch_size="auto",
        max_iter=50,
        shuffle=True,
        connectivity=1.0,
        untied=False,
        untied_init="copy",
        feedback_refresh="step",
        propagate_with="pre_update",
        error_clip=0.0,
        use_bias=False,
        input_scale="auto",
        image_shape=None,
        backend="numpy",
        device=None,
        random_state=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.feedback = feedback
        self.feedback_init = feedback_init
        self.loss = loss
        self.off_class_weight = off_class_weight
        self.ramp_scale = ramp_scale
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.feedback_learning_rate = feedback_learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.connectivity = connectivity
        self.untied = untied
        self.untied_init = untied_init
        self.feedback_refresh = feedback_refresh
        self.propagate_with = propagate_with
        self.error_clip = error_clip
        self.use_bias = use_bias
        self.input_scale = input_scale
        self.image_shape = image_shape
        self.backend = backend
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------- network
    def _network(self):
        """The network for the fitted input shape and classes (layers hold no weights)."""
        layers = build_layers(self.hidden_layer_sizes, len(self.classes_), untied=self.untied, untied_init=self.untied_init)
        return Network(layers, self.image_shape_, ramp_scale=self.ramp_scale, use_bias=self.use_bias)

    def _feedback_rate(self, lr):
        """eps * eta: the step for R at W's step ``lr`` (0 unless ``feedback="urfb"``)."""
        if self.feedback != "urfb":
            return 0.0
        if self.feedback_learning_rate is None:
            return lr
        return self.feedback_learning_rate * (lr / self.learning_rate)

    # --------------------------------------------------------------- fit
    _divergence_hint = "lower learning_rate or ramp_scale"

    def _setup(self, images, y, dtype):
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data; got {len(self.classes_)} class ({self.classes_[0]!r})."
            )
        layers = self._network().layers
        self._warn_ineffective(layers)
        self.input_scale_ = self._input_scale_of(images)
        # under data_parallel "auto" takes the largest over the ranks, so that every rank steps alike
        self.batch_size_ = _ranks.largest(self._auto_batch_size(images.shape[0])) if self.batch_size == "auto" else int(self.batch_size)
        spatial = any(not isinstance(layer, (Dense, Dropout, Sum)) for layer in layers)
        H, W, C = self.image_shape_
        if spatial and H == W == 1 and C > 1:
            raise ValueError(
                f"hidden_layer_sizes={self.hidden_layer_sizes!r} has convolution or pooling layers but X holds flat rows "
                f"of {C} features; pass image_shape=(H, W) or (H, W, C), or 3-D/4-D image arrays."
            )

    def _input_scale_of(self, images):
        """The divisor of the inputs: ``input_scale``, or under "auto" the largest |x| of the
        (first) training data when it is above 1 (255 for uint8 pixels, 16 for digits), else 1."""
        if self.input_scale != "auto":
            return float(self.input_scale)
        top = 0.0
        if images.shape[0]:
            xp = backend_of(images).xp
            top = max(float(to_numpy(xp.max(images))), -float(to_numpy(xp.min(images))))
        top = _ranks.largest(top)  # over every rank's data under data_parallel
        return top if top > 1.0 else 1.0

    @staticmethod
    def _auto_batch_size(n_samples):
        """``batch_size="auto"``: the rule of n in the docstring."""
        return int(min(_AUTO_BATCH_MAX, max(_AUTO_BATCH_MIN, n_samples // _AUTO_STEPS_PER_EPOCH)))

    def _batch_size(self):
        return self.batch_size_ if self.batch_size == "auto" else int(self.batch_size)

    def _warn_ineffective(self, layers):
        """A UserWarning for every parameter set to a value that changes nothing in this configuration."""
        moot = []
        if self.feedback_learning_rate is not None and self.feedback != "urfb":
            moot.append(("feedback_learning_rate", self.feedback_learning_rate, "R is only updated under feedback='urfb'", None))
        if self.feedback_init != "random" and self.feedback == "bp":
            moot.append(("feedback_init", self.feedback_init, "feedback='bp' keeps no R", "random"))
        if self.feedback == "frfb":  # R never changes: when it is read makes no difference
            if self.propagate_with != "pre_update":
                moot.append(("propagate_with", self.propagate_with, "R never changes under feedback='frfb'", "pre_update"))
            if self.feedback_refresh != "step":
                moot.append(("feedback_refresh", self.feedback_refresh, "R never changes under feedback='frfb'", "step"))
        if self.off_class_weight != 1.0 and self.loss != "hinge":
            moot.append(("off_class_weight", self.off_class_weight, "it weighs the hinge loss only", 1.0))
        if self.untied_init != "copy" and not any(isinstance(layer, (UntiedConv, UntiedDense)) for layer in layers):
            moot.append(("untied_init", self.untied_init, "the network has no locally connected layer", "copy"))
        for name, value, why, default in moot:
            warnings.warn(
                f"{type(self).__name__}: {name}={value!r} has no effect here ({why}, with feedback="
                f"{self.feedback!r}, loss={self.loss!r}); set {name}={default!r} to silence this warning.",
                UserWarning,
                stacklevel=5,
            )

    def _init_params(self, rng, dtype):
        """Glorot-uniform W and (independently, or copied) R per weight layer, and the
        connectivity masks of Section 4 (``mask_W<i>``, ``mask_R<i>``)."""
        init = None if self.feedback == "bp" else self.feedback_init
        params, masks = self._network().init_params(rng, dtype, feedback=init, connectivity=self.connectivity)
        return {**params, **{f"mask_{k}": m for k, m in masks.items()}}

    def _params_from_fitted(self):
        """Copies of the fitted arrays (the steps update them in place)."""
        nodes = self._network().weight_nodes
        dtype = self.coefs_[0].dtype
        params = {f"W{i}": np.array(w) for i, w in zip(nodes, self.coefs_)}
        if self.feedback != "bp" and self.feedback_coefs_ is not None:
            params.update({f"R{i}": np.array(r) for i, r in zip(nodes, self.feedback_coefs_)})
        params.update({f"b{i}": np.array(b) for i, b in zip(nodes, self.intercepts_)} if self.use_bias else {})
        params.update({f"mask_{k}": m.astype(dtype) for k, m in self._masks.items()})
        return params

    def _fitted_attributes(self, params):
        net = self._network()
        nodes = net.weight_nodes
        return {
            "coefs_": [to_numpy(params[f"W{i}"]) for i in nodes],
            "feedback_coefs_": [to_numpy(params[f"R{i}"]) for i in nodes] if all(f"R{i}" in params for i in nodes) else None,
            "intercepts_": [to_numpy(params[f"b{i}"]) for i in nodes if f"b{i}" in params],
            "_masks": {k[len("mask_") :]: to_numpy(v).astype(bool) for k, v in params.items() if k.startswith("mask_")},
            "layers_": net.describe(),
        }

    def _stream(self, bk, images, y, dtype):
        return RowStream(bk, images, self._batch_size(), dtype, y=y)

    def _steps(self, bk, params, stream, rng, stage, stack):
        """The epochs and :meth:`_minibatch_step` with what one fit shares across its steps: the
        network, the dropout noise (a generator seeded from ``rng``: the masks are drawn on the
        host, the same on every backend) and, with ``feedback_refresh="epoch"``, the copy of
        the feedback weights that the errors go down through, refreshed at each epoch's start.
        On NumPy, BLAS runs on one thread for the fit (``stack`` ends the limit with it)."""
        net = self._network()
        if bk.name == "numpy":  # small minibatch products: BLAS threads only contend (see the Notes)
            stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        use = "W" if self.feedback == "bp" else "R"
        if use == "R" and f"R{net.weight_nodes[0]}" not in params:  # partial_fit after feedback="bp": R starts at random
            dtype = str(params[f"W{net.weight_nodes[0]}"].dtype).split(".")[-1]
            host, _ = net.init_params(rng, dtype, feedback="random")
            params.update({f"R{i}": bk.asarray(host[f"R{i}"]) for i in net.weight_nodes})
        noise = np.random.default_rng(rng.randint(np.iinfo(np.int32).max))
        stale = {} if self.feedback_refresh == "epoch" else None
        order = rng if self.shuffle else None

        def epoch(e):
            if stale is not None:
                stale.update({i: bk.xp.asarray(params[f"{use}{i}"], copy=True) for i in net.weight_nodes})
            return stream.epoch(_ranks.epoch_rng(order))

        return epoch, lambda p, batch, lr: self._minibatch_step(bk, p, batch, lr, net=net, use=use, noise=noise, stale=stale)

    def _minibatch_step(self, bk, params, batch, lr, *, net, use, noise, stale):
        """One minibatch: forward pass, output error (Eq. 6, or y - softmax), the top-down
        feedback pass through R (or W), and the updates of W and R from their shared
        Hebbian increment. Reports the minibatch's summed loss (before the update).

        Under data_parallel the increments are means over the rows of every rank (one all-reduce
        after the feedback pass; one per layer with ``propagate_with="post_update"``, whose errors
        go down through the updated weights), and the dropout masks are the rows of this rank in
        the masks of the whole minibatch of all ranks."""
        X, y = batch
        X = X / self.input_scale_
        first, rows = _ranks.rows_in_step(X.shape[0])
        drawn = net.draw_masks(noise, rows, str(X.dtype).split(".")[-1])
        masks = {i: bk.asarray(m[first : first + X.shape[0]]) for i, m in drawn.items()}
        out, caches = net.forward(bk, params, X, train=True, masks=masks)
        if self.loss == "hinge":
            mu = self.off_class_weight / (len(self.classes_) - 1)
            delta, loss = rules.hinge_error(out, y, mu), rules.hinge_loss(out, y, mu)
        else:
            delta, loss = rules.softmax_error(out, y), rules.softmax_loss(out, y)
        lr_R = self._feedback_rate(lr)

        def update(i, incs):
            dW, dR = rules.urfb_update(incs["W"], lr, lr_R, mask_W=params.get(f"mask_W{i}"), mask_R=params.get(f"mask_R{i}"))
            params[f"W{i}"] += dW
            if dR is not None:
                params[f"R{i}"] += dR
            if "b" in incs:
                params[f"b{i}"] += lr * incs["b"]

        # pre_update: the errors go down through the weights as they were, so the updates may wait
        # for the end of the pass (and travel in one all-reduce)
        pending = {}
        post = self.propagate_with == "post_update"
        net.feedback(
            bk,
            params,
            caches,
            delta,
            use=use,
            on_increment=(lambda i, incs: update(i, _over_ranks(bk, incs, X.shape[0]))) if post else pending.__setitem__,
            propagate=self.propagate_with,
            error_clip=self.error_clip,
            feedback_weights=stale,
        )
        if pending:
            names = [(i, k) for i in sorted(pending) for k in sorted(pending[i])]
            means = _ranks.mean_over_ranks(bk, *[pending[i][k] for i, k in names], count=X.shape[0])
            means = means if len(names) > 1 else (means,)
            combined = {i: {} for i in pending}
            for (i, k), m in zip(names, means):
                combined[i][k] = m
            for i in sorted(combined, reverse=True):  # top down, as the pass made them
                update(i, combined[i])
        return {"loss": bk.xp.sum(loss), "samples": X.shape[0]}

    def _epoch_record(self, bk, params, totals):
        """The epoch's mean training loss and corr(W, R) of every weight layer at its end."""
        alignment = []
        for i in self._network().weight_nodes:
            R = params.get(f"R{i}")
            alignment.append(1.0 if R is None else _correlation(to_numpy(params[f"W{i}"]), to_numpy(R)))
        return {"loss": float(totals["loss"]) / max(totals["samples"], 1), "alignment": alignment}

    def _record_history(self, history, *, reset):
        if reset:
            self.loss_curve_, self.alignment_ = [], np.zeros((0, len(self.coefs_)))
        self.loss_curve_ = self.loss_curve_ + [r["loss"] for r in history]
        new = np.asarray([r["alignment"] for r in history], dtype=np.float64).reshape(len(history), len(self.coefs_))
        self.alignment_ = np.concatenate([self.alignment_, new], axis=0)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the network on images or rows ``X`` with labels ``y``.

        ``max_iter`` epochs from a fresh start, at the learning rates of
        ``schedule`` (constant by default, the paper's).

        Parameters
        ----------
        X : array of shape (n, d), (n, H, W) or (n, H, W, C)
            2-D input is read as rows, or as images with ``image_shape``.
            NumPy, torch or CuPy arrays.
        y : array-like of shape (n,)

        Returns
        -------
        self
        """
        return self._fit(X, y)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """One pass over ``(X, y)`` in minibatches at ``learning_rate``, continuing from the fitted state.

        Parameters
        ----------
        X : array of shape (n, d), (n, H, W) or (n, H, W, C)
        y : array-like of shape (n,)
        classes : array-like of shape (n_classes,), default=None
            All the classes; required on the first call.

        Returns
        -------
        self
        """
        return self._partial_fit(X, y, classes)

    # ------------------------------------------------------------ predict
    def _encode(self, bk, params, chunk):
        """The linear outputs x_L of a chunk (no dropout)."""
        return self._network().forward(bk, params, chunk / self.input_scale_, train=False)[0]

    def _outputs(self, X, then=None):
        """x_L of every chunk of ``X`` (or ``then(x_L)``, computed where the chunk is)."""
        fn = self._encode if then is None else (lambda bk, params, chunk: then(self._encode(bk, params, chunk)))
        rows = _PREDICT_CHUNK if self.batch_size == "auto" else max(self.batch_size, _PREDICT_CHUNK)
        return self._map_chunks(X, fn, rows, hints=("batch_size",))

    def decision_function(self, X):
        """Linear outputs x_L of the network.

        Returns
        -------
        scores : array of shape (n,) for two classes (x_{L,1} - x_{L,0}), else (n, n_classes)
        """
        o = self._outputs(X)
        return o[:, 1] - o[:, 0] if o.shape[1] == 2 else o

    def predict_proba(self, X):
        """Softmax of the outputs (rows sum to 1). Shape (n, n_classes)."""
        return self._outputs(X, lambda o: backend_of(o).xp.exp(rules.log_softmax(o)))

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`."""
        return self._outputs(X, rules.log_softmax)

    def predict(self, X):
        """Class of the largest output, ``classes_[argmax x_L]``, in the input's library (NumPy for
        NumPy input; torch or CuPy on the input's device for numeric labels)."""
        o = self._outputs(X)
        return self._labels(backend_of(o).xp.argmax(o, axis=1))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
