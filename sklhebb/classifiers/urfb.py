"""URFBClassifier: deep networks trained with updated random feedback.

Y. Amit (2019), "Deep learning with asymmetric connections and Hebbian
updates", Front. Comput. Neurosci. 13:18 (arXiv:1812.07965).

fit
    Minibatches (shuffled every epoch) go through the forward pass of the
    layer kit :mod:`sklhebb.nn`. The output error is the local hinge signal of
    Eq. (6) (or y - softmax). The feedback pass runs top-down: at every weight
    layer the error at the field is sigma'(h) times the error arriving from
    above, the forward weights W and the feedback weights R receive the same
    Hebbian increment (1/B) x^T delta, and the error sent below goes through
    R (Eq. 2 with R in place of W^t). ``feedback="frfb"`` keeps R fixed
    (feedback alignment), ``feedback="bp"`` sends it through W
    (back-propagation). Plain SGD at a constant step.
predict
    The linear outputs x_L; ``predict`` is their argmax, ``predict_proba``
    their softmax.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets
from sklearn.utils.validation import _assert_all_finite, check_consistent_length, check_is_fitted, column_or_1d

from .. import rules
from .._backend import to_numpy, to_output
from .._base import BACKEND_CONSTRAINTS, BackendMixin, compute_dtype, validate_images
from .._training import RowStream, run_epochs
from ..image import iter_chunks, to_device_chunk
from ..nn import Dense, Dropout, Network, Sum, build_layers

__all__ = ["URFBClassifier"]

_PREDICT_CHUNK = 2048


def _correlation(a, b):
    """Pearson correlation of the entries of two arrays (NumPy, float64)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


class URFBClassifier(BackendMixin, ClassifierMixin, BaseEstimator):
    """Classifier trained with updated random feedback (URFB), FRFB or backprop.

    A feed-forward network (dense, convolutional, locally connected, max-pool,
    dropout and residual-sum layers) whose feedback connections R are separate
    from the forward weights W, drawn independently at random, and updated by
    the same local Hebbian increment as W (Amit 2019). The output error is the
    multi-class hinge signal of Eq. (6), local to each output unit.

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
    loss : {"hinge", "softmax"}, default="hinge"
        Multi-class hinge of Eq. (4)-(6), or softmax cross-entropy.
    off_class_weight : float, default=1.0
        kappa: the hinge's balancing factor is mu = kappa / (C - 1), as in the
        author's code (mu = 1/9 for ten classes).
    ramp_scale : float, default=0.5
        s of the saturated linearity sigma(h) = clip(s h, -1, 1). The paper
        writes s = 1; the author's runs used 0.5.
    learning_rate : float, default=0.1
        eta, the constant SGD step for W.
    feedback_learning_rate : float, default=None
        Step for R under "urfb" (None: ``learning_rate``; the paper's
        epsilon of Section 5 is the ratio of the two). Ignored otherwise.
    batch_size : int, default=500
    max_iter : int, default=20
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
    image_shape : tuple of int, default=None
        (H, W) or (H, W, C) of the images when ``X`` is 2-D and the
        hidden layers have convolutions.
    backend : {"numpy", "torch", "cupy"}, default="numpy"
    device : str, default=None
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the masks, the shuffling and dropout (all drawn on
        the host, so every backend sees the same numbers).
    verbose : int, default=0

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
    image_shape_ : tuple (H, W, C)
        Shape of one sample as the network sees it ((1, 1, d) for rows).
    feature_names_in_ : ndarray of str
        Only for input with string column names.

    Notes
    -----
    Inputs are used as given: scale images to about [0, 1] (pixels / 255, as
    the paper and the code do); uint8 images fed raw saturate every unit.
    With ``ramp_scale=0.5`` (the code) a deep network starts with outputs
    near zero and needs many epochs to leave that plateau (the paper trains
    for 200 to 1000 epochs); ``ramp_scale=1.0`` (the paper's formula) learns
    faster on short budgets. See ``benchmarks/RESULTS.md`` (URFB section).

    References
    ----------
    Y. Amit. Deep learning with asymmetric connections and Hebbian updates.
    Frontiers in Computational Neuroscience 13:18 (2019).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklhebb.classifiers.urfb import URFBClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = URFBClassifier(hidden_layer_sizes=(100,), batch_size=50, max_iter=10,
    ...                      random_state=0).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.9
    True
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [tuple, list, str],
        "feedback": [StrOptions({"urfb", "frfb", "bp"})],
        "feedback_init": [StrOptions({"random", "copy"})],
        "loss": [StrOptions({"hinge", "softmax"})],
        "off_class_weight": [Interval(Real, 0, None, closed="left")],
        "ramp_scale": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "feedback_learning_rate": [Interval(Real, 0, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "connectivity": [Interval(Real, 0, 1, closed="right")],
        "untied": ["boolean"],
        "untied_init": [StrOptions({"copy", "independent"})],
        "feedback_refresh": [StrOptions({"step", "epoch"})],
        "propagate_with": [StrOptions({"pre_update", "post_update"})],
        "error_clip": [Interval(Real, 0, None, closed="left")],
        "use_bias": ["boolean"],
        "image_shape": [tuple, list, None],
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
        loss="hinge",
        off_class_weight=1.0,
        ramp_scale=0.5,
        learning_rate=0.1,
        feedback_learning_rate=None,
        batch_size=500,
        max_iter=20,
        shuffle=True,
        connectivity=1.0,
        untied=False,
        untied_init="copy",
        feedback_refresh="step",
        propagate_with="pre_update",
        error_clip=0.0,
        use_bias=False,
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
        self.image_shape = image_shape
        self.backend = backend
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------- network
    def _network(self, input_shape, n_classes):
        layers = build_layers(self.hidden_layer_sizes, n_classes, untied=self.untied, untied_init=self.untied_init)
        spatial = any(not isinstance(layer, (Dense, Dropout, Sum)) for layer in layers)
        if spatial and input_shape[0] == input_shape[1] == 1 and input_shape[2] > 1:
            raise ValueError(
                f"hidden_layer_sizes={self.hidden_layer_sizes!r} has convolution or pooling layers but X holds flat rows of "
                f"{input_shape[2]} features; pass image_shape=(H, W) or (H, W, C), or 3-D/4-D image arrays."
            )
        return Network(layers, input_shape, ramp_scale=self.ramp_scale, use_bias=self.use_bias)

    def _mu(self):
        C = len(self.classes_)
        return self.off_class_weight / (C - 1)

    def _check_targets(self, X, y):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        y = column_or_1d(y, warn=True)
        if y.dtype.kind in "fc":
            _assert_all_finite(y, input_name="y")
        check_consistent_length(X, y)
        check_classification_targets(y)
        return y

    # ------------------------------------------------------------- train
    def _train(self, bk, net, images, y_enc, params, masks, *, rng, n_epochs, host_masks=None):
        """Run the driver; returns (params, result, losses, alignments)."""
        dtype = str(params[f"W{net.weight_nodes[0]}"].dtype).split(".")[-1]
        xp = bk.xp
        feedback = self.feedback
        use = "W" if feedback == "bp" else "R"
        lr_R = 0.0
        if feedback == "urfb":
            lr_R = self.learning_rate if self.feedback_learning_rate is None else self.feedback_learning_rate
        mu = self._mu()
        stream = RowStream(bk, images, self.batch_size, dtype, y=y_enc)
        # dropout masks come from a generator seeded by the host RandomState
        noise = np.random.default_rng(rng.randint(np.iinfo(np.int32).max))
        losses, aligns = [], []
        acc = {"loss": 0.0, "n": 0}
        stale = {} if self.feedback_refresh == "epoch" else None

        def step(p, batch, lr):
            Xb, yb = batch
            B = Xb.shape[0]
            drop = {i: bk.asarray(m) for i, m in net.draw_masks(noise, B, dtype).items()}
            out, caches = net.forward(bk, p, Xb, train=True, masks=drop)
            if self.loss == "hinge":
                delta = rules.hinge_error(out, yb, mu)
                batch_loss = rules.hinge_loss(out, yb, mu)
            else:
                delta = rules.softmax_error(out, yb)
                batch_loss = rules.softmax_loss(out, yb)
            acc["loss"] = acc["loss"] + xp.sum(batch_loss)
            acc["n"] += B

            def apply(i, incs):
                dW, dR = rules.urfb_update(
                    incs["W"], lr, lr_R, mask_W=masks.get(f"W{i}"), mask_R=masks.get(f"R{i}")
                )
                p[f"W{i}"] += dW
                if dR is not None:
                    p[f"R{i}"] += dR
                if "b" in incs:
                    p[f"b{i}"] += lr * incs["b"]

            net.feedback(
                bk, p, caches, delta, use=use, on_increment=apply,
                propagate=self.propagate_with, error_clip=self.error_clip, feedback_weights=stale,
            )

        def batches(epoch):
            if stale is not None:
                for i in net.weight_nodes:
                    stale[i] = xp.asarray(params[f"{use}{i}"], copy=True)
            yield from stream.epoch(rng if self.shuffle else None)
            # end of the epoch: bookkeeping before the driver's checks
            losses.append(float(acc["loss"]) / max(acc["n"], 1))
            acc["loss"], acc["n"] = 0.0, 0
            aligns.append(self._alignment(net, params))

        with bk.memory_hint("batch_size"):
            result = run_epochs(
                bk,
                params,
                batches,
                step,
                n_epochs=n_epochs,
                lr_at=lambda e: self.learning_rate,
                name=type(self).__name__,
                verbose=self.verbose,
                monitor=lambda p: f"loss = {losses[-1]:.4g}" if losses else "",
                hint="lower learning_rate or ramp_scale",
                estimator=self,
                X=images,
                y=y_enc,
                reconstruct=lambda p: self._fitted_attributes(net, p, {} if host_masks is None else host_masks),
            )
        return result, losses, aligns

    def _alignment(self, net, params):
        row = []
        for i in net.weight_nodes:
            if f"R{i}" not in params:
                row.append(1.0)
            else:
                row.append(_correlation(to_numpy(params[f"W{i}"]), to_numpy(params[f"R{i}"])))
        return row

    def _device_params(self, bk, net, dtype):
        params = {}
        for n, i in enumerate(net.weight_nodes):
            params[f"W{i}"] = bk.asarray(np.array(self.coefs_[n], dtype=dtype))
            if self.feedback != "bp" and self.feedback_coefs_ is not None:
                params[f"R{i}"] = bk.asarray(np.array(self.feedback_coefs_[n], dtype=dtype))
            if self.use_bias and self.intercepts_:
                params[f"b{i}"] = bk.asarray(np.array(self.intercepts_[n], dtype=dtype))
        masks = {k: bk.asarray(np.asarray(v, dtype=dtype)) for k, v in self._masks.items()}
        return params, masks

    def _fitted_attributes(self, net, params, host_masks):
        """Fitted attributes from the driver's params (also for scikit-learn callbacks)."""
        has_R = all(f"R{i}" in params for i in net.weight_nodes)
        return {
            "coefs_": [to_numpy(params[f"W{i}"]) for i in net.weight_nodes],
            "feedback_coefs_": [to_numpy(params[f"R{i}"]) for i in net.weight_nodes] if has_R else None,
            "intercepts_": [to_numpy(params[f"b{i}"]) for i in net.weight_nodes if f"b{i}" in params],
            "_masks": {k: np.asarray(to_numpy(v)).astype(bool) for k, v in host_masks.items()},
            "layers_": net.describe(),
        }

    def _store(self, net, params, host_masks):
        for k, v in self._fitted_attributes(net, params, host_masks).items():
            setattr(self, k, v)

    def _start(self, bk, net, rng, dtype):
        init = None if self.feedback == "bp" else self.feedback_init
        host, host_masks = net.init_params(rng, dtype, feedback=init, connectivity=self.connectivity)
        params = {k: bk.asarray(v, dtype=dtype) for k, v in host.items()}
        if bk.name == "numpy":  # the driver's arrays must not alias anything the caller holds
            params = {k: np.array(v) for k, v in params.items()}
        masks = {k: bk.asarray(v, dtype=dtype) for k, v in host_masks.items()}
        return params, masks, host_masks

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the network on images or rows ``X`` with labels ``y``.

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
        images = validate_images(self, X, image_shape=self.image_shape, reset=True)
        y = self._check_targets(images, y)
        classes, y_enc = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data; got 1 class ({classes[0]!r})."
            )
        bk = self._backend(X)
        dtype = compute_dtype(X)
        rng = check_random_state(self.random_state)
        self.classes_ = classes
        net = self._network(self.image_shape_, len(classes))
        params, masks, host_masks = self._start(bk, net, rng, dtype)
        result, losses, aligns = self._train(
            bk, net, images, y_enc, params, masks, rng=rng, n_epochs=self.max_iter, host_masks=host_masks
        )
        self._store(net, result.params, host_masks)
        self.loss_curve_ = losses
        self.alignment_ = np.asarray(aligns, dtype=np.float64)
        self.n_iter_ = result.n_epochs
        self.n_steps_ = result.n_steps
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """One pass over ``(X, y)`` in minibatches, continuing from the fitted state.

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
        first = _check_partial_fit_first_call(self, classes)
        images = validate_images(self, X, image_shape=self.image_shape, reset=first)
        y = self._check_targets(images, y)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes; got classes={self.classes_!r}.")
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"y contains labels {unseen.tolist()} that are not in classes {self.classes_.tolist()}.")
        y_enc = np.searchsorted(self.classes_, y)
        bk = self._backend(X)
        if first or not hasattr(self, "_random_state"):
            self._random_state = check_random_state(self.random_state)
        rng = self._random_state
        net = self._network(self.image_shape_, len(self.classes_))
        if first:
            dtype = compute_dtype(X)
            params, masks, host_masks = self._start(bk, net, rng, dtype)
            self.loss_curve_, self.n_iter_, self.n_steps_ = [], 0, 0
            self.alignment_ = np.zeros((0, len(net.weight_nodes)))
        else:
            dtype = str(self.coefs_[0].dtype)
            if self.feedback != "bp" and self.feedback_coefs_ is None:
                # switched from bp: start R at random
                host, _ = net.init_params(rng, dtype, feedback="random")
                self.feedback_coefs_ = [host[f"R{i}"] for i in net.weight_nodes]
            params, masks = self._device_params(bk, net, dtype)
            host_masks = self._masks
        result, losses, aligns = self._train(
            bk, net, images, y_enc, params, masks, rng=rng, n_epochs=1, host_masks=host_masks
        )
        self._store(net, result.params, host_masks)
        self.loss_curve_ = list(self.loss_curve_) + losses
        self.alignment_ = np.concatenate([self.alignment_, np.asarray(aligns, dtype=np.float64)], axis=0)
        self.n_iter_ += 1
        self.n_steps_ += result.n_steps
        return self

    # ------------------------------------------------------------ predict
    def _outputs(self, X):
        check_is_fitted(self)
        images = validate_images(self, X, reset=False)
        bk = self._backend(X)
        dtype = str(self.coefs_[0].dtype) if not hasattr(X, "dtype") else compute_dtype(X)
        net = self._network(self.image_shape_, len(self.classes_))
        params, _ = self._device_params(bk, net, dtype)
        out = []
        with bk.memory_hint("batch_size"):
            for index in iter_chunks(images.shape[0], max(self.batch_size, _PREDICT_CHUNK)):
                o, _ = net.forward(bk, params, to_device_chunk(bk, images, index, dtype), train=False)
                out.append(o)
        return bk, (out[0] if len(out) == 1 else bk.xp.concat(out, axis=0))

    def decision_function(self, X):
        """Linear outputs x_L of the network.

        Returns
        -------
        scores : array of shape (n,) for two classes (x_{L,1} - x_{L,0}), else (n, n_classes)
        """
        bk, o = self._outputs(X)
        if o.shape[1] == 2:
            o = o[:, 1] - o[:, 0]
        return to_output(o, X)

    def predict_proba(self, X):
        """Softmax of the outputs (rows sum to 1). Shape (n, n_classes)."""
        bk, o = self._outputs(X)
        xp = bk.xp
        z = o - xp.max(o, axis=1, keepdims=True)
        e = xp.exp(z)
        return to_output(e / xp.sum(e, axis=1, keepdims=True), X)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`."""
        bk, o = self._outputs(X)
        xp = bk.xp
        z = o - xp.max(o, axis=1, keepdims=True)
        return to_output(z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True)), X)

    def predict(self, X):
        """Class of the largest output, ``classes_[argmax x_L]``."""
        bk, o = self._outputs(X)
        idx = to_numpy(bk.xp.argmax(o, axis=1))
        return self.classes_[np.asarray(idx)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
