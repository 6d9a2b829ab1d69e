"""NSMEncoder: similarity matching by Hebbian/anti-Hebbian networks.

Obeid, Ramambason & Pehlevan (2019), "Structured and deep similarity matching
via structured and deep Hebbian networks" (NeurIPS): the network of Eq. (1)-(2)
for any monotonic activation, its structured (locally connected) layers of
Sec. 3, Eq. (14), (19), and the deep network with feedback of Sec. 4-5,
Eq. (13), (17), (19). Bahroun, Sridharan, Acharya, Chklovskii & Sengupta
(2023), "Unlocking the potential of similarity matching": the convolutional
NSM of Sec. 3 and the supervised / semi-supervised S^2M of Sec. 4, Eq. (5)-(8).

One network of one or more layers (a single layer is the deep network with
one layer). Its inputs are the rows of ``X``, or the patches of the images
(convolutional), or whole images (structured); the layer geometry lives in
:mod:`sklhebb.rules.structure`, the dynamics and the rules in
:mod:`sklhebb.rules.nsm`.

fit
    Every minibatch of inputs x is run through the neural dynamics to the
    fixed point of all layers (Eq. 1; Eq. 17 with feedback:
    :func:`sklhebb.rules.deep_fixed_point`), then every layer learns by the
    local rules Delta W = eta (r x^T - W), Delta L = (eta / 2)(r r^T - L)
    (Eq. 2, 19, with its layer below as x), averaged over the minibatch
    (:func:`sklhebb.rules.nsm_update`).
transform
    The fixed point of every input row, or of every patch followed by max- or
    sum-pooling (convolutional).
score
    Minus the similarity matching cost (Obeid Eq. 3; Eq. 11 with structure),
    summed over the layers.
"""

from __future__ import annotations

import inspect
import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .. import _ranks, rules
from .._backend import to_numpy
from .._base import BACKEND_CONSTRAINTS, HebbianEstimator, compute_dtype, host_normal
from .._constraints import ImageShape, LayerSizes, PerLayer
from .._feature_names import GridFeatureNamesMixin
from .._training import RowStream
from ..image import WHITENING_SAMPLES, PatchStream, extract_patches, max_pool, normalize_rows, pooled_size, whiten_rows
from ..rules.structure import dense_layers, lateral_identity, site_grid, structured_layers

__all__ = ["NSMEncoder"]

# patches cut at a time in fit (bounds memory)
_FIT_CHUNK_PATCHES = 2**17
# rows / patch positions run through the dynamics at a time in transform and score
_TRANSFORM_CHUNK_ROWS = 2**14
# input_scale="auto": inputs are scaled to this root-mean-square norm (benchmarks/RESULTS.md, Defaults)
_AUTO_INPUT_NORM = 10.0
# rows that input_scale="auto" measures the norm on (the first ones of the first fit)
_AUTO_SCALE_ROWS = 2000
# n_components="auto": 100 neurons, or 16 per site in the structured layout, which structure="auto"
# gives images (benchmarks/RESULTS.md, "Defaults (issue 15): NSMEncoder")
_AUTO_NEURONS = 100
_AUTO_SITE_NEURONS = 16


def _sum_pool(bk, F, size, stride):
    """Sum-pool a (n, h, w, K) map over its two spatial axes (separable)."""
    xp = bk.xp
    sy = min(size, F.shape[1])
    sx = min(size, F.shape[2])
    F = xp.sum(bk.sliding_windows(F, 1, sy, stride), axis=-1)
    return xp.sum(bk.sliding_windows(F, 2, sx, stride), axis=-1)


class NSMEncoder(HebbianEstimator, GridFeatureNamesMixin, TransformerMixin, BaseEstimator):
    """Similarity matching encoder (NSM, S^2M; fully connected, convolutional, structured; deep).

    A Hebbian/anti-Hebbian network (Obeid et al. 2019, Eq. 1-2): feedforward
    weights W learned by Delta W = eta (r x^T - W), lateral weights L by
    Delta L = (eta / 2)(r r^T - L), outputs r the fixed point of the neural
    dynamics r = f(W x - (L - I) r). With the ReLU this is nonnegative
    similarity matching (NSM); ``linear`` gives the principal subspace.

    The network has ``len(hidden_layer_sizes) + 1`` layers (one by default),
    with feedback of strength ``gamma`` between them (Obeid Sec. 4-5, Eq. 17
    and 19; the feedback weights are the transposes W^(p+1)^T of the
    feedforward ones); all layers' dynamics run together. Its input comes in
    one of three layouts:

    * fully connected (flat rows): each row of ``X`` (or each flattened image) is
      one input vector x;
    * convolutional (``window`` set, image input, one layer): W and L are
      shared across the positions of an image, every window x window x C patch
      is an input and the outputs are max- or sum-pooled (Bahroun et al. 2023,
      Sec. 3);
    * structured (``structure="local"``, and the default for images: 3-D/4-D
      ``X``, or rows of s x s features with s >= 8): every layer is locally
      connected (Obeid Sec. 3, Fig. 1A, Sec. 6.2-6.3, Eq. 13) to the grid of
      the layer below (the pixels, or the sites of the layer below), with its
      own stride, radius and lateral radius (see ``site_stride``); the
      disconnected weights stay exactly zero (structure constants c^W, c^L in
      {0, 1}, Eq. 14 and 19), and the feedback structure is the transposed
      feedforward structure.

    ``fit(X, y)`` with ``alpha > 0`` is the supervised similarity matching S^2M
    (Bahroun Sec. 4, Eq. 5-8): the one-hot label scaled by sqrt(alpha) enters
    the top layer through its own Hebbian weights V, so that the output
    similarities match X^T X + alpha Y^T Y. Samples labelled -1 are
    unlabelled and learn from X alone (semi-supervised). In a deep network the
    top layer's drive is W^(P) r^(P-1) + V y and V learns by Bahroun Eq. (8),
    i.e. the cost is Obeid Eq. (13) plus the label alignment term
    -(alpha / T^2) sum_{t,t'} (y_t . y_t')(r_t^(P) . r_t'^(P)) of the top
    layer. In the convolutional layout every patch takes its image's label.
    ``transform`` never uses labels.

    A parameter that has no effect for the given input or layout (a
    convolutional or structured one outside its layout, ``gamma`` with one
    layer, ``threshold`` with ``tanh`` / ``linear``, ``cap`` without
    ``capped_relu``, ``dynamics="accelerated"`` where the Euler dynamics run,
    ``alpha`` without labels) gives a UserWarning that names it.

    Parameters
    ----------
    n_components : int or "auto", default="auto"
        N, the number of output neurons of the top layer (channels in the
        convolutional layout; neurons per site in the structured one).
        "auto": 16 neurons per site in the structured layout (3,136 features
        for 28 x 28 images), else 100.
    activation : {"relu", "capped_relu", "tanh", "linear"}, default="relu"
        f. ``relu``: max(u - threshold, 0) (NSM, Bahroun Eq. 3);
        ``capped_relu``: min(max(u - threshold, 0), cap); ``tanh``;
        ``linear``: f(u) = u (principal subspace network).
    threshold : float, default=0.0
        lambda, the threshold of the ReLUs (regularizer F(r) = lambda r).
    cap : float, default=1.0
        b, the upper bound of ``capped_relu``.
    learning_rate : float, default=0.02
        eta of Eq. (2), applied to the minibatch average of the updates.
    tau : float, default=1.0
        Ratio of time scales of the lateral and feedforward weights:
        Delta L = (eta / (2 tau))(r r^T - L). tau = 1 is Obeid Eq. (2); smaller
        values make L faster (the ``tau`` of Pehlevan et al. 2018 and pynsm,
        whose default is 0.1), which stabilises the min-max learning at larger
        learning rates. On image patches (convolutional layout, 50 channels of
        6 x 6 Fashion-MNIST patches) tau = 1 collapses the effective filters
        L^-1 W (participation ratio of their singular values 0.18 of its
        maximum, against 0.55 at tau = 0.25 and 0.61 for random filters) and
        costs 2.5 points of accuracy against tau = 0.25; tau = 0.25 to 0.5 is
        what that measurement supports (benchmarks/RESULTS.md, "Convolutional
        NSM: why the filters collapse"). The structured layer (8 per site,
        tanh) gains 1.06 and 0.80 points at tau = 0.25 over tau = 1 (means
        over seeds, Fashion-MNIST 5,000 and 10,000 images; "Structured and
        deep structured NSM with a faster lateral rate"). The default stays
        the paper's.
    schedule : {"constant", "linear", "step"} or callable, default="constant"
        Learning rate over the epochs of ``fit``: constant; falling linearly
        from ``learning_rate`` towards 0; x0.1 from 90% of the epochs on
        ("step"); or ``learning_rate * schedule(epoch, max_iter)``.
        ``partial_fit`` always uses ``learning_rate``.
    max_iter : int, default=10
        Epochs (passes over the data) of ``fit``.
    batch_size : int, default=100
        Samples (rows, or patches in the convolutional layout) per minibatch.
    max_iter_dynamics : int, default=100
        Largest number of steps of the neural dynamics per minibatch.
    tol : float, default=1e-4
        A sample's dynamics stop once its fixed-point residual
        max_i |f(W x - (L - I) r)_i - r_i| is at most tol * max(1, max_i |(W x)_i|)
        (in every layer).
    dynamics_step : float or None, default=None
        Time step ds / tau of the discretised dynamics. None: 1 / lambda_max(L)
        (power iteration on L every minibatch), the largest safe step up to a
        factor 2 (capped at 1 for ``tanh``; min(1, 1 / max_p lambda_max(L^(p)))
        / (1 + gamma) for several layers).
    dynamics : {"neural", "accelerated"}, default="neural"
        "neural": the discretised neural dynamics (projected steps in r for the
        ReLUs and ``linear``, Bahroun Eq. 3; Euler steps in u for ``tanh``,
        Obeid Eq. 1, and for several layers, Eq. 17). "accelerated": Nesterov
        momentum on the projected steps, the same fixed point in fewer steps
        (ignored for ``tanh`` and for networks of several layers).
    alpha : float, default=0.0
        alpha of S^2M (Bahroun Eq. 5): weight of the label similarities. 0 (or
        ``y=None``) is plain unsupervised similarity matching.
    window : int or None, default=None
        Convolutional layout: side of the square patches. On flat rows
        (2-D, no ``image_shape``) it has no effect, and a warning says so.
    stride : int, default=1
        Stride of the patches in ``transform`` (fit uses every patch).
    normalize_patches : bool, default=True
        Convolutional layout: scale every patch to unit norm (zero patches stay
        zero), in fit and transform alike.
    center : bool, default=False
        Convolutional layout: subtract each patch's mean first.
    whiten : None or float, default=None
        Convolutional layout: None, no whitening (the papers' path). A float
        eps > 0: ZCA whitening of the patches (Coates & Ng 2011; Bahroun &
        Soltoggio 2017 whiten theirs), fitted at the first ``fit`` /
        ``partial_fit`` on a sample of at most 100,000 of its patches
        (normalised and centred as above): W = (Sigma + eps' I)^(-1/2), eps' =
        eps times the mean eigenvalue of their covariance (Coates & Ng's 0.1
        means the same here). Every patch, in fit, transform and score alike,
        is whitened, (p - mean) W, after ``normalize_patches`` / ``center`` and,
        with ``normalize_patches``, scaled to a unit vector again.
    pool : {"max", "sum"}, default="sum"
        Convolutional layout: pooling of the output maps.
    pool_size : int or None, default=None
        Pooling window; None pools the four quadrants of the map (windows of
        ceil(h / 2), the second ending at the edge), the Coates & Ng /
        Bahroun & Soltoggio set-up with a linear readout.
    pool_stride : int or None, default=None
        Pooling stride; None means ``pool_size`` (or the quadrant stride).
    output_layout : {"flat", "image"}, default="flat"
        Convolutional layout: ``transform`` returns rows of pooled features
        ("flat") or the pooled maps as images (n, pooled rows, pooled
        columns, n_components) ("image"), the input of a next layer.
    hidden_layer_sizes : tuple of int, default=()
        Deep similarity matching (Obeid Sec. 4-5): sizes of the layers below
        the top layer (which has ``n_components`` neurons), bottom first; ()
        is the single layer network. With ``structure="local"`` these are
        neurons per site, like ``n_components``. Not with ``window``.
    gamma : float, default=0.0
        Feedback strength between the layers (Obeid Eq. 12, 17); 0 is
        bottom-up only.
    layer_input_scale : float or sequence of float, default=1.0
        Deep network: the factor c_p by which layer p's input, the outputs
        r^(p-1) of the layer below, is multiplied, x^(p) = c_p r^(p-1)
        (p = 2, ..., P; the first layer's input is scaled by
        ``input_scale``). One number for every layer above the first, or one
        per layer above the first, bottom first (length
        ``len(hidden_layer_sizes)``). 1.0 is the paper's network (Obeid Eq.
        17, 19). With c_p the network is the paper's with x^(p) in place of
        r^(p-1) in every term: drive W^(p) x^(p), feedback
        gamma c_p W^(p)^T r^(p) onto layer p-1 (the gradient of the cost in
        which layer p matches the similarities of x^(p)), and
        Delta W^(p) = eta (r^(p) x^(p)^T - W^(p)). Trained tanh layers give
        outputs of a larger norm than their input (18 against 8 for
        mean-subtracted Fashion-MNIST pixels), which saturates layer 2; 0.5
        removes that saturation there (benchmarks/RESULTS.md, issue 14).
    return_layers : {"top", "all"}, default="top"
        ``transform`` returns the top layer, or all layers concatenated
        (bottom first; in the structured layout each layer ordered site row,
        site column, neuron).
    structure : {"auto", "local"} or None, default="auto"
        "local": the structured layout, every layer locally connected on the
        grid of the layer below; None: fully connected (or convolutional with
        ``window``). "auto": "local" for images without ``window``, None for
        flat rows (measured: structured 16 per site against fully connected
        100 on 10,000 Fashion-MNIST images and 4,000 MNIST digits,
        benchmarks/RESULTS.md).
    site_stride : int or sequence of int, default=2
        Structured layout: distance between neighbouring sites, in units of
        the layer's input grid: pixels for the first layer, the sites of layer
        p-1 for layer p (layer p's input grid is layer p-1's site grid, of
        ceil(h / site_stride) x ceil(w / site_stride) sites, with that layer's
        neurons as channels). A number applies to every layer; a sequence
        gives one value per layer, bottom first (length
        ``len(hidden_layer_sizes) + 1``). Obeid Sec. 6.2's sites every 2, 4
        and 8 pixels are ``site_stride=(2, 2, 2)``.
    radius : float or sequence of float, default=4.0
        Structured layout: a neuron sees every channel of the input grid
        points within this Euclidean distance of its site (grid units of the
        layer's input, as ``site_stride``); one value or one per layer.
        Obeid's radii of 8, 12 and 24 pixels with strides 2, 4, 8 are
        ``radius=(8, 6, 6)``.
    lateral_radius : float or sequence of float, default=0.0
        Structured layout: neurons of sites within this distance (input grid
        units) inhibit each other (0: only neurons of the same site, as in
        Obeid Sec. 6.3); one value or one per layer. A layer whose
        ``lateral_radius < site_stride`` has a block-diagonal L, stored as
        blocks.
    input_scale : "auto" or float, default="auto"
        Factor every input vector (row, image, or patch after
        ``normalize_patches``) is multiplied by before the network, in fit,
        transform and score alike. "auto": the factor that gives the first
        fit's inputs a root-mean-square norm of 10 (measured on its first
        2,000 samples; the same rule for uint8 0-255 pixels, [0, 1] floats or
        digits' 0-16, which then give the same network up to rounding), and
        1 in the convolutional layout, whose patches ``normalize_patches``
        scales. 1.0: the inputs as given. The factor is ``input_scale_``.
    image_shape : "auto", tuple of int or None, default="auto"
        (H, W) or (H, W, C) of the images when ``X`` is 2-D. "auto": rows of
        s x s features with s >= 8 (digits, MNIST rows) are s x s images,
        other rows flat vectors (the rule of KrotovPatchEncoder); None: every
        row is one flat vector.
    shuffle : bool, default=True
        Shuffle the samples every epoch (on the host, the same order on every
        backend).
    chunk_size : int, default=None
        Images (convolutional layout) or rows moved to the device at a time.
    backend : {"numpy", "torch", "cupy"}, default="numpy"
        Where to compute for NumPy input; torch/CuPy input computes (and
        returns) in its own namespace and device.
    device : str, default=None
        Device for ``backend`` ("cpu", "cuda", "cuda:1").
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights (drawn on the host) and the shuffling.
    verbose : int, default=0
        1 prints one line per epoch; 2 adds a progress bar (tqdm).

    Attributes
    ----------
    components_ : ndarray of shape (n_units, n_inputs)
        W, the feedforward weights of the top layer (exact zeros outside the
        structure).
    lateral_ : ndarray of shape (n_units, n_units) or (n_sites, n_components, n_components)
        L, the lateral weights (symmetric positive definite) of the top
        layer. In the structured layout with ``lateral_radius < site_stride``
        L is block-diagonal (only neurons of the same site inhibit each other)
        and is stored as its diagonal blocks, one per site: memory and work
        grow with the number of sites, not with its square.
    layer_components_, layer_laterals_ : list of ndarray
        W^(p) and L^(p) of every layer, bottom first (the last ones are
        ``components_`` and ``lateral_``; one entry for a single layer; L^(p)
        as blocks where that layer's L is block-diagonal).
    label_components_ : ndarray of shape (n_units, n_classes)
        V, the label weights of S^2M (only when fitted with labels, alpha > 0).
    classes_ : ndarray of shape (n_classes,)
        Labels seen by S^2M (only when fitted with labels, alpha > 0).
    feedforward_mask_, lateral_mask_ : ndarray of bool
        Structure constants c^W, c^L of the top layer (structured layout only;
        ``lateral_mask_`` is None when L is stored as blocks).
    layer_feedforward_masks_, layer_lateral_masks_ : list of ndarray of bool
        Structured layout only: c^W,(p) and c^L,(p) of every layer, bottom
        first (None where L^(p) is stored as blocks). The feedback weights of
        layer p+1 onto layer p are W^(p+1)^T, with structure c^W,(p+1)^T.
    n_iter_ : int
        Epochs run (``fit``) or passes made (``partial_fit`` calls).
    n_steps_ : int
        Minibatch updates applied.
    n_dynamics_steps_ : float
        Mean number of dynamics steps per minibatch in the last ``fit`` or
        ``partial_fit`` call.
    whitening_mean_, whitening_ : ndarray of shape (d,) and (d, d)
        The fitted patch whitening's mean and symmetric ZCA matrix (only with
        ``whiten`` in the convolutional layout; d = window * window * C).
    input_scale_ : float
        The factor applied to every input (see ``input_scale``).
    n_features_in_ : int
    image_shape_ : tuple (H, W, C)
    feature_names_in_ : ndarray of str
        Only for input with string column names.

    References
    ----------
    D. Obeid, H. Ramambason, C. Pehlevan. Structured and deep similarity
    matching via structured and deep Hebbian networks. NeurIPS 2019.
    Y. Bahroun, S. Sridharan, A. Acharya, D. Chklovskii, A. Sengupta.
    Unlocking the potential of similarity matching: scalability, supervision
    and pre-training. ICML 2023 Localized Learning Workshop.

    Examples
    --------
    >>> import numpy as np
    >>> from sklhebb.encoders.nsm import NSMEncoder
    >>> X = np.abs(np.random.RandomState(0).standard_normal((200, 10)))
    >>> enc = NSMEncoder(n_components=4, max_iter=3, random_state=0).fit(X)
    >>> enc.transform(X).shape
    (200, 4)
    >>> bool(enc.transform(X).min() >= 0)
    True
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "activation": [StrOptions(set(rules.NSM_ACTIVATIONS))],
        "threshold": [Interval(Real, 0, None, closed="left")],
        "cap": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [Interval(Real, 0, 1, closed="right")],
        "tau": [Interval(Real, 0, None, closed="neither")],
        "schedule": [StrOptions({"constant", "linear", "step"}), callable],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter_dynamics": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "dynamics_step": [Interval(Real, 0, None, closed="neither"), None],
        "dynamics": [StrOptions({"neural", "accelerated"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "window": [Interval(Integral, 1, None, closed="left"), None],
        "stride": [Interval(Integral, 1, None, closed="left")],
        "normalize_patches": ["boolean"],
        "center": ["boolean"],
        "whiten": [None, Interval(Real, 0, None, closed="neither")],
        "output_layout": [StrOptions({"flat", "image"})],
        "pool": [StrOptions({"max", "sum"})],
        "pool_size": [Interval(Integral, 1, None, closed="left"), None],
        "pool_stride": [Interval(Integral, 1, None, closed="left"), None],
        "hidden_layer_sizes": [LayerSizes()],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "layer_input_scale": [PerLayer(Interval(Real, 0, None, closed="neither"))],
        "return_layers": [StrOptions({"top", "all"})],
        "structure": [StrOptions({"auto", "local"}), None],
        "site_stride": [PerLayer(Interval(Integral, 1, None, closed="left"))],
        "radius": [PerLayer(Interval(Real, 0, None, closed="left"))],
        "lateral_radius": [PerLayer(Interval(Real, 0, None, closed="left"))],
        "input_scale": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "image_shape": [StrOptions({"auto"}), ImageShape(), None],
        "shuffle": ["boolean"],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        **BACKEND_CONSTRAINTS,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components="auto",
        *,
        activation="relu",
        threshold=0.0,
        cap=1.0,
        learning_rate=0.02,
        tau=1.0,
        schedule="constant",
        max_iter=10,
        batch_size=100,
        max_iter_dynamics=100,
        tol=1e-4,
        dynamics_step=None,
        dynamics="neural",
        alpha=0.0,
        window=None,
        stride=1,
        normalize_patches=True,
        center=False,
        whiten=None,
        output_layout="flat",
        pool="sum",
        pool_size=None,
        pool_stride=None,
        hidden_layer_sizes=(),
        gamma=0.0,
        layer_input_scale=1.0,
        return_layers="top",
        structure="auto",
        site_stride=2,
        radius=4.0,
        lateral_radius=0.0,
        input_scale="auto",
        image_shape="auto",
        shuffle=True,
        chunk_size=None,
        backend="numpy",
        device=None,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.activation = activation
        self.threshold = threshold
        self.cap = cap
        self.learning_rate = learning_rate
        self.tau = tau
        self.schedule = schedule
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.max_iter_dynamics = max_iter_dynamics
        self.tol = tol
        self.dynamics_step = dynamics_step
        self.dynamics = dynamics
        self.alpha = alpha
        self.window = window
        self.stride = stride
        self.normalize_patches = normalize_patches
        self.center = center
        self.whiten = whiten
        self.output_layout = output_layout
        self.pool = pool
        self.pool_size = pool_size
        self.pool_stride = pool_stride
        self.hidden_layer_sizes = hidden_layer_sizes
        self.gamma = gamma
        self.layer_input_scale = layer_input_scale
        self.return_layers = return_layers
        self.structure = structure
        self.site_stride = site_stride
        self.radius = radius
        self.lateral_radius = lateral_radius
        self.input_scale = input_scale
        self.image_shape = image_shape
        self.shuffle = shuffle
        self.chunk_size = chunk_size
        self.backend = backend
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------- the network
    _divergence_hint = "lower learning_rate, or set dynamics_step lower"
    _memory_hints = ("batch_size", "chunk_size")
    # L of a layer whose c^L is block-diagonal is stored as its diagonal blocks (False: dense and masked)
    _block_laterals = True

    def _images(self):
        """Whether the fitted input is images (not flat rows)."""
        H, W, _ = self.image_shape_
        return not getattr(self, "_flat_input", False) and not (H == 1 and W == 1)

    def _structure(self):
        """``structure`` with "auto" resolved: "local" for images without a window, else None."""
        if self.structure != "auto":
            return self.structure
        return "local" if self._images() and self.window is None else None

    def _conv(self):
        """The convolutional layout: a window and real images (not flat rows)."""
        H, W, _ = self.image_shape_
        return self.window is not None and self._structure() is None and not (H == 1 and W == 1)

    def _n_components(self):
        """``n_components`` with "auto" resolved (16 per site when structured, else 100)."""
        if self.n_components != "auto":
            return int(self.n_components)
        return _AUTO_SITE_NEURONS if self._structure() == "local" else _AUTO_NEURONS

    def _sizes(self):
        """Neurons (per site, when structured) of every layer, bottom first."""
        return [int(n) for n in self.hidden_layer_sizes] + [self._n_components()]

    def _keys(self):
        """Parameter names of the layers, bottom first: ('W_0', 'L_0'), ..., ('W', 'L') for the top."""
        return [(f"W_{p}", f"L_{p}") for p in range(len(self.hidden_layer_sizes))] + [("W", "L")]

    def _weights(self, params):
        """[W^(1), ..., W^(P)], [L^(1), ..., L^(P)] from the parameters."""
        return [params[wk] for wk, _ in self._keys()], [params[lk] for _, lk in self._keys()]

    def _layer_scales(self):
        """c_p of every layer, bottom first: 1 for the first (``input_scale`` scales it), then ``layer_input_scale``."""
        c = self.layer_input_scale
        above = len(self.hidden_layer_sizes)
        if not isinstance(c, (tuple, list)):
            return [1.0] + [float(c)] * above
        if len(c) != above:
            raise ValueError(
                f"layer_input_scale has {len(c)} entries but the network has {above} layers above the first "
                f"(len(hidden_layer_sizes) = {above}): give one entry per layer above the first, bottom first, or a single number."
            )
        return [1.0] + [float(v) for v in c]

    def _setup(self, images, codes, dtype):
        """The layers (:mod:`sklhebb.rules.structure`), fixed at the first fit."""
        for name in ("feedforward_mask_", "lateral_mask_", "layer_feedforward_masks_", "layer_lateral_masks_"):
            if hasattr(self, name):  # from an earlier fit with structure
                delattr(self, name)
        H, W, C = self.image_shape_
        if self.structure == "local" and self.window is not None:
            raise ValueError("structure='local' and window are exclusive: the structured network sees whole images.")
        if self._conv() and self.hidden_layer_sizes:
            raise ValueError(
                "hidden_layer_sizes (deep similarity matching) is implemented for fully connected and "
                "structured (structure='local') layers, not convolutional ones: use window=None."
            )
        if self._conv() and (self.window > H or self.window > W):
            raise ValueError(f"window={self.window} is larger than the images ({H} x {W}); choose window <= {min(H, W)}.")
        self.input_scale_ = self._input_scale(images)
        self._layer_scales()  # checks the length of layer_input_scale
        if self._structure() == "local":
            self._layers = structured_layers(
                self.image_shape_, self._sizes(), self.site_stride, self.radius, self.lateral_radius, blocks=self._block_laterals
            )
        else:
            self._layers = dense_layers(self.window * self.window * C if self._conv() else H * W * C, self._sizes())
        for name in ("whitening_mean_", "whitening_"):
            if hasattr(self, name):  # from an earlier fit with whiten
                delattr(self, name)
        if self.whiten is not None and self._conv():
            stream = self._stream(self._backend(images), images, None, dtype)
            self.whitening_mean_, self.whitening_ = stream.fit_whitening(WHITENING_SAMPLES, self.whiten, check_random_state(self.random_state))

    def _whitening(self, bk, dtype):
        """(mean, W) of the fitted patch whitening on ``bk`` in ``dtype``, or None without ``whiten``."""
        if not hasattr(self, "whitening_"):
            return None
        return bk.asarray(self.whitening_mean_, dtype=dtype), bk.asarray(self.whitening_, dtype=dtype)

    def _input_scale(self, images):
        """The factor of ``input_scale``: "auto" scales the first samples to a root-mean-square norm of 10."""
        if self.input_scale != "auto":
            return float(self.input_scale)
        if self._conv():
            return 1.0
        first = to_numpy(images[:_AUTO_SCALE_ROWS]).reshape(min(images.shape[0], _AUTO_SCALE_ROWS), -1)
        # the mean squared norm (under data_parallel: over the first rows of every rank)
        n, squares = _ranks.total(first.shape[0]), _ranks.total(float(np.sum(np.sum(np.square(first, dtype=np.float64), axis=1))))
        rms = float(np.sqrt(squares / n)) if n else 0.0
        return _AUTO_INPUT_NORM / rms if rms > 0 and np.isfinite(rms) else 1.0

    def _scaled(self, X):
        """The network's input: ``X`` times ``input_scale_``."""
        return X if self.input_scale_ == 1.0 else X * self.input_scale_

    def _init_params(self, rng, dtype):
        """Initial weights, drawn on the host layer by layer (bottom first), then V.

        W: standard normal / sqrt(fan-in), times the structure mask c^W (exact zeros outside it, fan-in
        the connections c^W allows); L = I (positive definite, Obeid Note 1), as identity blocks where L
        is stored as blocks. V, in fit and partial_fit alike, random like W (drawn after it), not zero:
        S^2M is similarity matching of the augmented input [x, sqrt(alpha) y] with feedforward weights
        [W, V] (Bahroun Eq. 5-8), which start random because zero weights are a saddle of the min-max
        problem (W = 0 gives r = 0 and Delta W = 0).
        """
        params = {}
        for layer, (wk, lk) in zip(self._layers, self._keys()):
            W = host_normal(rng, (layer.n_units, layer.n_inputs), "float64")
            if layer.W_mask is None:
                W /= np.sqrt(layer.n_inputs)
            else:
                W *= layer.W_mask / np.sqrt(np.maximum(layer.W_mask.sum(axis=1, keepdims=True), 1.0))
            params[wk], params[lk] = W.astype(dtype), lateral_identity(layer, dtype)
        if self._n_classes():
            K = self._n_classes()
            params["V"] = (host_normal(rng, (self._layers[-1].n_units, K), "float64") / np.sqrt(K)).astype(dtype)
        return params

    def _params_from_fitted(self):
        """The fitted state as parameters: the top layer is ``components_`` and ``lateral_``."""
        Ws, Ls = self.layer_components_[:-1] + [self.components_], self.layer_laterals_[:-1] + [self.lateral_]
        params = {}
        for W, L, (wk, lk) in zip(Ws, Ls, self._keys()):
            params[wk], params[lk] = W, L
        if hasattr(self, "label_components_"):
            params["V"] = self.label_components_
        return params

    def _fitted_attributes(self, params):
        Ws, Ls = ([to_numpy(a) for a in arrays] for arrays in self._weights(params))
        counts = getattr(self, "_dynamics_counts", None)
        attrs = {
            "components_": Ws[-1],
            "lateral_": Ls[-1],
            "layer_components_": Ws,
            "layer_laterals_": Ls,
            "n_dynamics_steps_": float(np.mean(counts)) if counts else 0.0,
        }
        if "V" in params:
            attrs["label_components_"] = to_numpy(params["V"])
        if self._structure() is not None:
            attrs["layer_feedforward_masks_"] = [layer.W_mask for layer in self._layers]
            attrs["layer_lateral_masks_"] = [layer.L_mask for layer in self._layers]
            attrs["feedforward_mask_"], attrs["lateral_mask_"] = self._layers[-1].W_mask, self._layers[-1].L_mask
        return attrs

    # -------------------------------------------------------------- the rules
    def _fixed_point(self, X, Ws, Ls, top_drive=None):
        """Outputs r* of every layer for inputs X (rows): Obeid Eq. (1), Eq. (17) for several layers.

        With ``layer_input_scale`` the network of Eq. (17) on the inputs x^(p) = c_p r^(p-1): its drive
        W^(p) c_p r^(p-1) and feedback gamma c_p W^(p)^T r^(p) are those of Eq. (17) with c_p W^(p).
        """
        return rules.deep_fixed_point(
            X,
            [W if c == 1.0 else c * W for c, W in zip(self._layer_scales(), Ws)],
            Ls,
            gamma=self.gamma,
            activation=self.activation,
            threshold=self.threshold,
            cap=self.cap,
            step=self.dynamics_step,
            tol=self.tol,
            max_iter=self.max_iter_dynamics,
            top_drive=top_drive,
            accelerate=self.dynamics == "accelerated",
        )

    def _scaled_labels(self, bk, codes, n_classes, dtype):
        """sqrt(alpha) onehot(y); unlabelled samples (-1) give a zero row (Bahroun Eq. 6)."""
        xp = bk.xp
        return xp.astype(codes[:, None] == bk.arange(n_classes)[None, :], dtype) * math.sqrt(self.alpha)

    def _step(self, bk, params, batch, lr, masks):
        """One minibatch: the fixed point of all layers (Obeid Eq. 17; Eq. 1 for one layer), then Eq. (19)
        for every layer, masked by its c^W, c^L (Eq. 2 without structure), and Bahroun Eq. (8) for V.

        With labels (S^2M) the scaled one-hot label enters the top layer only, through V: its drive is
        W^(P) r^(P-1) + V y, and Delta V = eta (r^(P) y^T - V) (Bahroun Eq. 6, 8).
        """
        X, codes = batch if isinstance(batch, tuple) else (batch, None)
        X = self._scaled(X)
        keys = self._keys()
        Ws, Ls = self._weights(params)
        Y = None if codes is None else self._scaled_labels(bk, codes, params["V"].shape[1], X.dtype)
        Rs, k = self._fixed_point(X, Ws, Ls, None if Y is None else Y @ params["V"].T)
        self._dynamics_counts.append(k)
        below, changes, scales = X, [], self._layer_scales()
        for p in range(len(keys)):
            # Obeid Eq. (19), gamma^(p-P) absorbed into the learning rate (as the paper suggests), so the
            # lateral decay is 1 / (1 + gamma) below the top; c in {0, 1}: the Hebbian terms are masked,
            # so weights outside the structure stay exactly 0
            decay = 1.0 if p == len(keys) - 1 else 1.0 / (1.0 + self.gamma)
            changes += rules.nsm_update(Ws[p], Ls[p], below, Rs[p], W_mask=masks[p][0], L_mask=masks[p][1], lateral_decay=decay)
            below = Rs[p] if p + 1 == len(keys) or scales[p + 1] == 1.0 else scales[p + 1] * Rs[p]  # x^(p+1)
        if Y is not None:
            changes.append(rules.nsm_update(params["V"], None, Y, Rs[-1])[0])  # Bahroun Eq. (8), top layer
        # means over the rows of every rank under data_parallel, in one all-reduce (identity in one process)
        changes = _ranks.mean_over_ranks(bk, *changes, count=X.shape[0])
        for p, (wk, lk) in enumerate(keys):
            params[wk] = Ws[p] + lr * changes[2 * p]
            params[lk] = Ls[p] + (lr / self.tau) * changes[2 * p + 1]
        if Y is not None:
            params["V"] = params["V"] + lr * changes[-1]

    def _epoch_record(self, bk, params, totals):
        """Under data_parallel: each step's dynamics steps become the most any rank took (the
        steps of the whole minibatch), in one all-reduce per epoch."""
        done = self._dynamics_combined
        self._dynamics_counts[done:] = _ranks.largest_each(self._dynamics_counts[done:])
        self._dynamics_combined = len(self._dynamics_counts)
        return super()._epoch_record(bk, params, totals)

    def _monitor(self, bk, params):
        counts = self._dynamics_counts
        return f"mean dynamics steps = {np.mean(counts) if counts else 0:.1f}"

    # ------------------------------------------------------------------- data
    def _n_classes(self):
        """Classes of the label weights V (0 without supervision)."""
        return len(self.classes_) if self.alpha > 0 and hasattr(self, "classes_") else 0

    def _validate_fit_data(self, X, y, *, reset, whole_fit, classes=None):
        images = self._validate_input(X, reset=reset)
        if reset:
            self._warn_ineffective(supervised=y is not None or classes is not None)
        return images, self._label_codes(y, images.shape[0], first=reset, classes=classes)

    # parameters that only one layout reads
    _CONV_PARAMETERS = ("stride", "normalize_patches", "center", "whiten", "pool", "pool_size", "pool_stride", "output_layout")
    _STRUCTURE_PARAMETERS = ("site_stride", "radius", "lateral_radius")

    def _changed(self, names):
        """Those of ``names`` set away from their defaults, as 'name=value' strings."""
        defaults = inspect.signature(type(self).__init__).parameters
        return [f"{n}={getattr(self, n)!r}" for n in names if getattr(self, n) != defaults[n].default]

    def _warn_ineffective(self, *, supervised):
        """Say which parameters have no effect on this input and layout, instead of dropping them silently."""
        name, flat = type(self).__name__, getattr(self, "_flat_input", False)
        notes = []
        if flat and self.window is not None:
            notes.append(
                f"window={self.window!r} has no effect: X holds flat rows and image_shape is None, so each "
                "row is one input vector. Pass image_shape=(H, W[, C]) to read the rows as images, or "
                "window=None"
            )
        if flat and self.structure == "local":
            notes.append(
                f"structure={self.structure!r} has no effect: X holds flat rows and image_shape is None "
                "(one site that sees every input). Pass image_shape=(H, W[, C]), or structure=None"
            )
        changed = self._changed(self._CONV_PARAMETERS)
        if changed and not self._conv():
            notes.append(
                f"{', '.join(changed)} only apply to the convolutional layout (window set, image input), "
                "which this is not; leave them at their defaults"
            )
        changed = self._changed(self._STRUCTURE_PARAMETERS)
        if changed and self._structure() is None:
            notes.append(f"{', '.join(changed)} only apply to structure='local'; leave them at their defaults")
        if self.layer_input_scale != 1.0 and not self.hidden_layer_sizes:
            notes.append(
                f"layer_input_scale={self.layer_input_scale!r} has no effect: the network has one layer "
                "(hidden_layer_sizes=()); its input is scaled by input_scale"
            )
        if self.gamma > 0 and not self.hidden_layer_sizes:
            notes.append(
                f"gamma={self.gamma} has no effect: the network has one layer (hidden_layer_sizes=()), so there is no feedback between layers"
            )
        if self.threshold > 0 and self.activation in ("tanh", "linear"):
            notes.append(f"threshold={self.threshold} has no effect with activation={self.activation!r}; use 'relu' or 'capped_relu'")
        if self.cap != 1.0 and self.activation != "capped_relu":
            notes.append(f"cap={self.cap} has no effect with activation={self.activation!r}; use 'capped_relu'")
        if self.dynamics == "accelerated" and (self.activation == "tanh" or self.hidden_layer_sizes):
            notes.append(
                "dynamics='accelerated' has no effect with activation='tanh' or several layers (the "
                "Euler dynamics run instead); use dynamics='neural'"
            )
        if self.alpha > 0 and not supervised:
            notes.append(
                f"alpha={self.alpha} has no effect without labels: pass y to fit (or y / classes to the first partial_fit) for S^2M, or alpha=0"
            )
        for note in notes:
            warnings.warn(f"{name}: {note}.", UserWarning, stacklevel=5)

    def _label_codes(self, y, n, *, first, classes=None):
        """Integer codes for S^2M (-1 = unlabelled), or None without supervision.

        ``first``: the call that starts the network, which learns ``classes_`` (from ``classes`` when
        given); later calls check ``y`` against them. A network that has label weights V gets all-unlabelled
        codes for ``y=None`` (V only decays); one started without them refuses labels.
        """
        if first:
            for name in ("classes_", "label_components_"):
                if hasattr(self, name):
                    delattr(self, name)
        if self.alpha == 0:
            return None
        if y is None:
            return None if first or not hasattr(self, "label_components_") else np.full(n, -1, dtype=np.int64)
        y = column_or_1d(y, warn=True)
        if y.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} samples but X has {n}.")
        numeric = y.dtype.kind in "iuf"
        unlabelled = (y == -1) if numeric else np.zeros(n, dtype=bool)
        if first:
            # without classes=: the labels of every rank under data_parallel
            labels = np.unique(np.asarray(classes)) if classes is not None else _ranks.union(np.unique(y[~unlabelled]))
            self.classes_ = labels[labels != -1] if labels.dtype.kind in "iuf" else labels
            if len(self.classes_) == 0:
                del self.classes_
                return None
        elif not hasattr(self, "label_components_"):
            if np.all(unlabelled):
                return None
            raise ValueError(
                f"{type(self).__name__} was started without labels, so it has no label weights V to learn "
                "them with: pass y (or classes=) to the first partial_fit call, or refit with fit(X, y)."
            )
        codes = np.clip(np.searchsorted(self.classes_, y), 0, len(self.classes_) - 1)
        known = self.classes_[codes] == y
        if np.any(~known & ~unlabelled):
            raise ValueError(f"y has labels not in classes_ {self.classes_.tolist()} (use -1 for unlabelled samples).")
        return np.where(known, codes, -1).astype(np.int64)

    def _stream(self, bk, images, codes, dtype):
        """Minibatches of input rows (or of normalised patches, convolutional), with their label codes."""
        if self._conv():
            H, W, _ = self.image_shape_
            per_image = (H - self.window + 1) * (W - self.window + 1)
            chunk = self.chunk_size or max(1, _FIT_CHUNK_PATCHES // per_image)
            # convolutional S^2M: every patch takes its image's label (as pynsm's
            # SupervisedSimilarityMatching broadcasts the label over positions)
            return PatchStream(
                bk,
                images,
                self.window,
                self.batch_size,
                chunk,
                dtype,
                center=self.center,
                normalize=self.normalize_patches,
                y=codes,
                whitening=self._whitening(bk, dtype),
            )
        rows = images.reshape(images.shape[0], -1)
        return RowStream(bk, rows, self.batch_size, dtype, y=codes, chunk_size=self.chunk_size)

    def _steps(self, bk, params, stream, rng, stage, stack):
        """The base's epochs, with a step that is given the structure constants on the device."""
        dtype = str(params["W"].dtype).split(".")[-1]
        masks = [tuple(None if m is None else bk.asarray(m, dtype=dtype) for m in (layer.W_mask, layer.L_mask)) for layer in self._layers]
        self._dynamics_counts, self._dynamics_combined = [], 0
        epoch_fn, _ = super()._steps(bk, params, stream, rng, stage, stack)
        return epoch_fn, (lambda p, batch, lr: self._step(bk, p, batch, lr, masks))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn W and L (and V with labels) from ``X``.

        Parameters
        ----------
        X : array of shape (n, d), (n, H, W) or (n, H, W, C)
            NumPy (memmaps are streamed chunk by chunk), torch or CuPy arrays.
        y : array of shape (n,), default=None
            Class labels for S^2M (used only when ``alpha > 0``); -1 marks an
            unlabelled sample.

        Returns
        -------
        self
        """
        return self._fit(X, y)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, classes=None):
        """One pass over ``X`` at the constant ``learning_rate``.

        Continues from the fitted weights (or starts from new ones). With
        ``shuffle=False`` the samples come in order, so k calls over
        consecutive chunks equal one epoch of ``fit`` (``schedule="constant"``)
        whenever the chunk boundaries fall on minibatch boundaries.

        Parameters
        ----------
        X : array
        y : array of shape (n,), default=None
            Labels for S^2M (``alpha > 0``); -1 marks unlabelled samples.
        classes : array, default=None
            All labels, needed on the first call when the first chunk does not
            contain every class.

        Returns
        -------
        self
        """
        return self._partial_fit(X, y, classes)

    # -------------------------------------------------------------- transform
    def _patches(self, bk, chunk, stride):
        xp = bk.xp
        P = extract_patches(bk, chunk, self.window, stride)
        grid = P.shape[:3]
        P = xp.reshape(P, (-1, P.shape[-1]))  # rows: one product for the whitening, not one per image row
        if self.normalize_patches:
            P = normalize_rows(bk, P, center=self.center)
        elif self.center:
            P = P - xp.mean(P, axis=-1, keepdims=True)
        whitening = self._whitening(bk, str(P.dtype).split(".")[-1])
        if whitening is not None:
            P = whiten_rows(bk, P, whitening, normalize=self.normalize_patches)
        return xp.reshape(P, (*grid, -1))

    def _encode(self, bk, params, chunk):
        """Outputs of a chunk of images: the fixed point of its rows, or of its patches, pooled."""
        xp = bk.xp
        Ws, Ls = self._weights(params)
        if not self._conv():
            Rs, _ = self._fixed_point(self._scaled(xp.reshape(chunk, (chunk.shape[0], -1))), Ws, Ls)
            return Rs[-1] if self.return_layers == "top" else xp.concat(Rs, axis=1)
        P = self._scaled(self._patches(bk, chunk, self.stride))
        n, oh, ow, K = P.shape
        Rs, _ = self._fixed_point(xp.reshape(P, (-1, K)), Ws, Ls)
        F = xp.reshape(Rs[-1], (n, oh, ow, Rs[-1].shape[1]))
        size, stride = self._pool_geometry(oh, ow)
        F = max_pool(bk, F, size, stride) if self.pool == "max" else _sum_pool(bk, F, size, stride)
        return F if self.output_layout == "image" else xp.reshape(F, (n, -1))

    def _conv_size(self):
        H, W, _ = self.image_shape_
        return (H - self.window) // self.stride + 1, (W - self.window) // self.stride + 1

    def _pool_geometry(self, oh, ow):
        size_y = self.pool_size if self.pool_size is not None else -(-oh // 2)
        size_x = self.pool_size if self.pool_size is not None else -(-ow // 2)
        size = max(size_y, size_x)
        if self.pool_stride is not None:
            return size, self.pool_stride
        if self.pool_size is None:  # two windows per axis, the second ending at the edge
            return size, max(1, max(oh, ow) - size)
        return size, size

    @property
    def _n_features_out(self):
        """Output width for get_feature_names_out (follows return_layers, set after fit)."""
        if not self._conv():
            layers = self.layer_components_ if self.return_layers == "all" else [self.components_]
            return int(sum(W.shape[0] for W in layers))
        oh, ow = self._conv_size()
        size, stride = self._pool_geometry(oh, ow)
        return pooled_size(oh, size, stride) * pooled_size(ow, size, stride) * self.components_.shape[0]

    def _output_grids(self):
        """(rows, columns, units) of every layer ``transform`` returns: the pooled maps (convolutional),
        the site grids (structured); None for the fully connected network."""
        if self._conv():
            oh, ow = self._conv_size()
            size, stride = self._pool_geometry(oh, ow)
            return [(pooled_size(oh, size, stride), pooled_size(ow, size, stride), self.components_.shape[0])]
        if self._structure() is None or getattr(self, "_flat_input", False):
            return None
        sizes = self._sizes()
        strides = list(self.site_stride) if isinstance(self.site_stride, (tuple, list)) else [self.site_stride] * len(sizes)
        (rows, cols, _), grids = self.image_shape_, []
        for n, s in zip(sizes, strides):
            rows, cols = site_grid(rows, cols, int(s))
            grids.append((rows, cols, n))
        return grids if self.return_layers == "all" else grids[-1:]

    def _rows_per_chunk(self):
        if self.chunk_size is not None:
            return self.chunk_size
        if not self._conv():
            return _TRANSFORM_CHUNK_ROWS
        oh, ow = self._conv_size()
        return max(1, _TRANSFORM_CHUNK_ROWS // (oh * ow))

    def transform(self, X):
        """Encode ``X`` with the fixed points of the learned network.

        Returns
        -------
        X_new : array of shape (n, n_features_out)
            The outputs r* of the top layer (or of every layer, bottom first,
            with ``return_layers="all"``), or the pooled output maps ordered
            (pooled row, pooled column, channel) (convolutional layout; with
            ``output_layout="image"`` shaped (n, pooled rows, pooled columns,
            n_components)). NumPy
            for NumPy input; torch/CuPy input gets output of its own kind and
            device.
        """
        check_is_fitted(self)
        return self._map_chunks(X, self._encode, self._rows_per_chunk())

    def score(self, X, y=None):
        """Minus the similarity matching cost of ``X`` under the learned network.

        The cost of Obeid Eq. (3),
        (1 / 2T^2) sum_{t,t'} (x_t . x_t' - r_t . r_t')^2 + (2 / T) sum_t ||F(r_t)||_1,
        with r_t the fixed points (inputs x are the rows, or every patch in
        the convolutional layout, normalised as in fit); with structure the
        masked cost of Eq. (11) plus the constant input term; summed over the
        layers of a deep network (Eq. 12 with the gamma weights absorbed, as
        in the learning rule; each layer's masked by its structure, Eq. 13).
        Labels are not used (``y`` is ignored). Higher is better.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        images = self._validate_input(X, reset=False)
        bk = self._backend(X)
        dtype = compute_dtype(X) if hasattr(X, "dtype") else str(self.components_.dtype)
        params = self._to_device(bk, self._params_from_fitted(), dtype)
        xp = bk.xp
        if self._conv():
            stream = PatchStream(
                bk,
                images,
                self.window,
                _TRANSFORM_CHUNK_ROWS,
                self._rows_per_chunk(),
                dtype,
                center=self.center,
                normalize=self.normalize_patches,
                whitening=self._whitening(bk, dtype),
            )
        else:
            stream = RowStream(bk, images.reshape(images.shape[0], -1), _TRANSFORM_CHUNK_ROWS, dtype)
        Ws, Ls = self._weights(params)
        P, scales = len(Ws), self._layer_scales()
        grams, regs, n = [None] * P, [0.0] * P, 0
        for Xb in stream.epoch(None):
            Xb = self._scaled(Xb)
            Rs, _ = self._fixed_point(Xb, Ws, Ls)
            below = Xb
            for p in range(P):
                t = rules.sm_gram_terms(below, Rs[p], n_blocks=Ls[p].shape[0] if Ls[p].ndim == 3 else None)
                grams[p] = t if grams[p] is None else tuple(a + b for a, b in zip(grams[p], t))
                regs[p] += float(xp.sum(rules.nsm_regularizer(Rs[p], self.activation, threshold=self.threshold)))
                below = Rs[p] if p + 1 == P or scales[p + 1] == 1.0 else scales[p + 1] * Rs[p]  # x^(p+1)
            n += Xb.shape[0]
        masks = [(None, None)] * P
        if self._structure() is not None:
            masks = list(zip(self.layer_feedforward_masks_, self.layer_lateral_masks_))
        return -sum(rules.sm_cost_from_grams(*grams[p], n, regs[p], W_mask=masks[p][0], L_mask=masks[p][1]) for p in range(P))

    def to_torch(self, *, lateral=False, dtype=None):
        """The learned feedforward weights as a torch module, for fine-tuning.

        Fully connected: ``nn.Linear`` (weight W, no bias) giving W x;
        convolutional: ``nn.Conv2d`` with the shared filters on NCHW images,
        giving the drive of every raw patch. The lateral dynamics (and the patch
        normalisation and pooling of ``transform``) are not part of the module,
        except that ``lateral=True`` with ``activation="linear"`` appends the
        exact linear fixed point r = L^{-1} W x, which equals ``transform``.
        See :func:`sklhebb.torch_export.nsm_to_torch`.

        Parameters
        ----------
        lateral : bool, default=False
        dtype : torch.dtype, default=None
            The module's dtype; None is float32, whatever dtype the model was
            fitted in. The module takes input of this dtype.

        Returns
        -------
        module : torch.nn.Module whose weights require grad
        """
        check_is_fitted(self)
        from ..torch_export import nsm_to_torch

        return nsm_to_torch(self, lateral=lateral, dtype=dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.three_d_array = True
        return tags
