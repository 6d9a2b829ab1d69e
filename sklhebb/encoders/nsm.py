"""NSMEncoder: similarity matching by Hebbian/anti-Hebbian networks.

Obeid, Ramambason & Pehlevan (2019), "Structured and deep similarity matching
via structured and deep Hebbian networks" (NeurIPS): the network of Eq. (1)-(2)
for any monotonic activation, and the structured (locally connected) network
of Sec. 3 and Eq. (14), (19), and the deep network with feedback of
Sec. 4-5, Eq. (13), (17), (19), fully connected or structured layer by layer.
Bahroun, Sridharan, Acharya, Chklovskii &
Sengupta (2023), "Unlocking the potential of similarity matching": the
convolutional NSM of Sec. 3 and the supervised / semi-supervised S^2M of
Sec. 4, Eq. (5)-(8).

fit
    Each minibatch of inputs x (rows, or image patches in convolutional mode)
    is run through the neural dynamics to its fixed point r* = f(W x - (L - I) r*)
    (:func:`sklhebb.rules.nsm_fixed_point`), then the local rules
    Delta W = eta (r x^T - W), Delta L = (eta / 2)(r r^T - L) are applied,
    averaged over the minibatch (:func:`sklhebb.rules.nsm_update`).
transform
    The fixed point r* of every sample (rows), or of every patch followed by
    max- or sum-pooling (convolutional mode).
score
    Minus the similarity matching cost (Obeid Eq. 3; Eq. 11 with structure;
    the sum of the layers' costs for a deep network).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .. import rules
from .._backend import to_numpy, to_output
from .._base import BACKEND_CONSTRAINTS, BackendMixin, compute_dtype, host_normal, validate_images
from .._training import RowStream, learning_rate_at, run_epochs
from ..image import PatchStream, extract_patches, iter_chunks, max_pool, normalize_rows, pooled_size, to_device_chunk

__all__ = ["NSMEncoder"]

# patches cut at a time in fit (bounds memory)
_FIT_CHUNK_PATCHES = 2**17
# rows / patch positions run through the dynamics at a time in transform and score
_TRANSFORM_CHUNK_ROWS = 2**14


def _sum_pool(bk, F, size, stride):
    """Sum-pool a (n, h, w, K) map over its two spatial axes (separable)."""
    xp = bk.xp
    sy = min(size, F.shape[1])
    sx = min(size, F.shape[2])
    F = xp.sum(bk.sliding_windows(F, 1, sy, stride), axis=-1)
    return xp.sum(bk.sliding_windows(F, 2, sx, stride), axis=-1)


def local_structure(image_shape, n_per_site, site_stride, radius, lateral_radius, *, dense_lateral=True):
    """Structure constants c^W, c^L of the locally connected network (Obeid Fig. 1A).

    Sites sit every ``site_stride`` pixels on the image grid (at the centres of
    the site_stride x site_stride blocks); each site holds ``n_per_site``
    neurons, connected to every channel of the pixels within Euclidean
    distance ``radius`` of the site; two neurons inhibit each other when their
    sites are within ``lateral_radius`` (0: neurons of the same site only).

    Returns (W_mask (N, H*W*C), L_mask (N, N)) as float64 0/1 arrays, neurons
    ordered (site row, site column, neuron), inputs (row, column, channel).
    ``dense_lateral=False`` returns None for L_mask (block-diagonal lateral
    structure, which the estimator stores as blocks).
    """
    H, W, C = image_shape
    s = site_stride
    ny, nx = -(-H // s), -(-W // s)
    cy = np.arange(ny) * s + (s - 1) / 2.0
    cx = np.arange(nx) * s + (s - 1) / 2.0
    sites = np.stack(np.meshgrid(cy, cx, indexing="ij"), axis=-1).reshape(-1, 2)  # (S, 2)
    pix = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), axis=-1).reshape(-1, 2)  # (HW, 2)
    d2 = ((sites[:, None, :] - pix[None, :, :]) ** 2).sum(-1)  # (S, HW)
    conn = d2 <= radius * radius + 1e-9
    conn = np.repeat(conn, C, axis=1)  # (S, HW*C), channel last
    W_mask = np.repeat(conn, n_per_site, axis=0).astype(np.float64)
    if not dense_lateral:
        return W_mask, None
    sd2 = ((sites[:, None, :] - sites[None, :, :]) ** 2).sum(-1)
    lat = sd2 <= lateral_radius * lateral_radius + 1e-9
    L_mask = np.kron(lat, np.ones((n_per_site, n_per_site))).astype(np.float64)
    return W_mask, L_mask


class NSMEncoder(BackendMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Similarity matching encoder (NSM, S^2M, convolutional and structured).

    A Hebbian/anti-Hebbian network (Obeid et al. 2019, Eq. 1-2): feedforward
    weights W learned by Delta W = eta (r x^T - W), lateral weights L by
    Delta L = (eta / 2)(r r^T - L), outputs r the fixed point of the neural
    dynamics r = f(W x - (L - I) r). With the ReLU this is nonnegative
    similarity matching (NSM); ``linear`` gives the principal subspace.

    Three layouts, chosen by the parameters:

    * fully connected (default): each row of ``X`` (or each flattened image) is
      one input vector x;
    * convolutional (``window`` set, image input): W and L are shared across the
      positions of an image, every window x window x C patch is an input and
      the outputs are max- or sum-pooled (Bahroun et al. 2023, Sec. 3);
    * structured (``structure="local"``, image input): a locally connected
      layer (Obeid Sec. 3, Fig. 1A, Sec. 6.3) whose disconnected weights stay
      exactly zero (structure constants c^W, c^L in {0, 1}, Eq. 14 and 19);
    * deep (``hidden_layer_sizes``): layers with feedback of strength
      ``gamma`` (Obeid Sec. 4-5, Eq. 17 and 19), all layers' dynamics run
      together; fully connected, or, with ``structure="local"``, structured
      and deep (Obeid Eq. 13, Sec. 6.2, Fig. 3): every layer is locally
      connected to the site grid of the layer below, with its own stride,
      radius and lateral radius (see ``site_stride``). The feedback weights
      are the transposes W^(p+1)^T of the feedforward ones, so the feedback
      structure is the transposed feedforward structure.

    ``fit(X, y)`` with ``alpha > 0`` is the supervised similarity matching S^2M
    (Bahroun Sec. 4, Eq. 5-8): the one-hot label scaled by sqrt(alpha) enters
    through its own Hebbian weights V, so that the output similarities match
    X^T X + alpha Y^T Y. Samples labelled -1 are unlabelled and learn from X
    alone (semi-supervised). In a deep network the labels enter the top layer
    only: its drive is W^(P) r^(P-1) + V y and V learns by Bahroun Eq. (8),
    i.e. the cost is Obeid Eq. (13) plus the label alignment term
    -(alpha / T^2) sum_{t,t'} (y_t . y_t')(r_t^(P) . r_t'^(P)) of the top
    layer. ``transform`` never uses labels.

    Parameters
    ----------
    n_components : int, default=100
        N, the number of output neurons of the (top) layer (channels in
        convolutional mode); the number of neurons per site in structured
        mode.
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
        learning rates.
    schedule : {"constant", "linear"}, default="constant"
        Learning rate over the epochs of ``fit``: constant, or falling
        linearly from ``learning_rate`` towards 0. ``partial_fit`` always
        uses ``learning_rate``.
    max_iter : int, default=10
        Epochs (passes over the data) of ``fit``.
    batch_size : int, default=100
        Samples (rows, or patches in convolutional mode) per minibatch.
    max_iter_dynamics : int, default=100
        Largest number of steps of the neural dynamics per minibatch.
    tol : float, default=1e-4
        A sample's dynamics stop once its fixed-point residual
        max_i |f(W x - (L - I) r)_i - r_i| is at most tol * max(1, max_i |(W x)_i|).
    dynamics_step : float or None, default=None
        Time step ds / tau of the discretised dynamics. None: 1 / lambda_max(L)
        (power iteration on L every minibatch), the largest safe step up to a
        factor 2 (capped at 1 for ``tanh``).
    dynamics : {"neural", "accelerated"}, default="neural"
        "neural": the discretised neural dynamics (projected steps in r for the
        ReLUs and ``linear``, Bahroun Eq. 3; Euler steps in u for ``tanh``,
        Obeid Eq. 1). "accelerated": Nesterov momentum on the projected steps,
        the same fixed point in fewer steps (ignored for ``tanh`` and for
        deep networks).
    alpha : float, default=0.0
        alpha of S^2M (Bahroun Eq. 5): weight of the label similarities. 0 (or
        ``y=None``) is plain unsupervised similarity matching. In
        convolutional mode every patch takes its image's label (the images
        are copied to host memory with the label as an extra channel).
    window : int or None, default=None
        Convolutional mode: side of the square patches. Ignored for flat
        (2-D, no ``image_shape``) input.
    stride : int, default=1
        Stride of the patches in ``transform`` (fit uses every patch).
    normalize_patches : bool, default=True
        Convolutional mode: scale every patch to unit norm (zero patches stay
        zero), in fit and transform alike.
    center : bool, default=False
        Convolutional mode: subtract each patch's mean first.
    pool : {"max", "sum"}, default="sum"
        Convolutional mode: pooling of the output maps.
    pool_size : int or None, default=None
        Pooling window; None pools the four quadrants of the map (windows of
        ceil(h / 2), the second ending at the edge), the Coates & Ng /
        Bahroun & Soltoggio set-up with a linear readout.
    pool_stride : int or None, default=None
        Pooling stride; None means ``pool_size`` (or the quadrant stride).
    hidden_layer_sizes : tuple of int, default=()
        Deep similarity matching (Obeid Sec. 4-5): sizes of the layers below
        the top layer (which has ``n_components`` neurons), bottom first; ()
        is the single layer network. With ``structure="local"`` these are
        neurons per site, like ``n_components``. Not with ``window``.
    gamma : float, default=0.0
        Feedback strength of the deep network (Obeid Eq. 12, 17); 0 is
        bottom-up only.
    return_layers : {"top", "all"}, default="top"
        Deep network: ``transform`` returns the top layer, or all layers
        concatenated (bottom first; in structured mode each layer ordered
        site row, site column, neuron).
    structure : {None, "local"}, default=None
        "local": locally connected structured network on the image grid
        (every layer of a deep network).
    site_stride : int or sequence of int, default=2
        Structured mode: distance between neighbouring sites, in units of the
        layer's input grid: pixels for the first layer, the sites of layer
        p-1 for layer p (layer p's input grid is layer p-1's site grid, of
        ceil(h / site_stride) x ceil(w / site_stride) sites, with that layer's
        neurons as channels). A number applies to every layer; a sequence
        gives one value per layer, bottom first (length
        ``len(hidden_layer_sizes) + 1``). Obeid Sec. 6.2's sites every 2, 4
        and 8 pixels are ``site_stride=(2, 2, 2)``.
    radius : float or sequence of float, default=4.0
        Structured mode: a neuron sees every channel of the input grid points
        within this Euclidean distance of its site (grid units of the layer's
        input, as ``site_stride``); one value or one per layer. Obeid's radii
        of 8, 12 and 24 pixels with strides 2, 4, 8 are ``radius=(8, 6, 6)``.
    lateral_radius : float or sequence of float, default=0.0
        Structured mode: neurons of sites within this distance (input grid
        units) inhibit each other (0: only neurons of the same site, as in
        Obeid Sec. 6.3); one value or one per layer. A layer whose
        ``lateral_radius < site_stride`` has a block-diagonal L, stored as
        blocks.
    image_shape : tuple of int, default=None
        (H, W) or (H, W, C) of the images when ``X`` is 2-D.
    shuffle : bool, default=True
        Shuffle the samples every epoch (on the host, the same order on every
        backend).
    chunk_size : int, default=None
        Images (convolutional mode) or rows moved to the device at a time.
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
        W, the feedforward weights (exact zeros outside the structure).
    lateral_ : ndarray of shape (n_units, n_units) or (n_sites, n_components, n_components)
        L, the lateral weights (symmetric positive definite) of the (top)
        layer. In structured mode with ``lateral_radius < site_stride`` L is
        block-diagonal (only neurons of the same site inhibit each other) and
        is stored as its diagonal blocks, one per site: memory and work grow
        with the number of sites, not with its square.
    label_components_ : ndarray of shape (n_units, n_classes)
        V, the label weights of S^2M (only when fitted with labels, alpha > 0).
    classes_ : ndarray of shape (n_classes,)
        Labels seen by S^2M (only when fitted with labels, alpha > 0).
    feedforward_mask_, lateral_mask_ : ndarray of bool
        Structure constants c^W, c^L of the (top) layer (structured mode only;
        ``lateral_mask_`` is None when L is stored as blocks).
    layer_components_, layer_laterals_ : list of ndarray
        Deep network only: W^(p) and L^(p) of every layer, bottom first (the
        last ones are ``components_`` and ``lateral_``; L^(p) as blocks where
        that layer's L is block-diagonal).
    layer_feedforward_masks_, layer_lateral_masks_ : list of ndarray of bool
        Deep structured network only: c^W,(p) and c^L,(p) of every layer,
        bottom first (None where L^(p) is stored as blocks). The feedback
        weights of layer p+1 onto layer p are W^(p+1)^T, with structure
        c^W,(p+1)^T.
    n_iter_ : int
        Epochs run (``fit``) or passes made (``partial_fit`` calls).
    n_steps_ : int
        Minibatch updates applied.
    n_dynamics_steps_ : float
        Mean number of dynamics steps per minibatch in the last ``fit`` or
        ``partial_fit`` call.
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
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(rules.NSM_ACTIVATIONS))],
        "threshold": [Interval(Real, 0, None, closed="left")],
        "cap": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [Interval(Real, 0, 1, closed="right")],
        "tau": [Interval(Real, 0, None, closed="neither")],
        "schedule": [StrOptions({"constant", "linear"})],
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
        "pool": [StrOptions({"max", "sum"})],
        "pool_size": [Interval(Integral, 1, None, closed="left"), None],
        "pool_stride": [Interval(Integral, 1, None, closed="left"), None],
        "hidden_layer_sizes": [tuple, list],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "return_layers": [StrOptions({"top", "all"})],
        "structure": [StrOptions({"local"}), None],
        "site_stride": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "radius": [Interval(Real, 0, None, closed="left"), tuple, list],
        "lateral_radius": [Interval(Real, 0, None, closed="left"), tuple, list],
        "image_shape": [tuple, list, None],
        "shuffle": ["boolean"],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        **BACKEND_CONSTRAINTS,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=100,
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
        pool="sum",
        pool_size=None,
        pool_stride=None,
        hidden_layer_sizes=(),
        gamma=0.0,
        return_layers="top",
        structure=None,
        site_stride=2,
        radius=4.0,
        lateral_radius=0.0,
        image_shape=None,
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
        self.pool = pool
        self.pool_size = pool_size
        self.pool_stride = pool_stride
        self.hidden_layer_sizes = hidden_layer_sizes
        self.gamma = gamma
        self.return_layers = return_layers
        self.structure = structure
        self.site_stride = site_stride
        self.radius = radius
        self.lateral_radius = lateral_radius
        self.image_shape = image_shape
        self.shuffle = shuffle
        self.chunk_size = chunk_size
        self.backend = backend
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------- geometry
    def _conv(self, image_shape):
        """True in convolutional mode (a window and real images)."""
        H, W, _ = image_shape
        return self.window is not None and self.structure is None and not (H == 1 and W == 1)

    def _n_inputs(self, image_shape):
        H, W, C = image_shape
        return self.window * self.window * C if self._conv(image_shape) else H * W * C

    def _deep(self):
        return len(self.hidden_layer_sizes) > 0

    def _n_layers(self):
        return len(self.hidden_layer_sizes) + 1

    def _per_layer(self, name):
        """A structure parameter's value for every layer, bottom first (a number is repeated)."""
        v = getattr(self, name)
        P = self._n_layers()
        if isinstance(v, (tuple, list)):
            if len(v) != P:
                raise ValueError(
                    f"{name}={v!r} has {len(v)} entries but the network has {P} layer(s) "
                    "(len(hidden_layer_sizes) + 1): give one entry per layer, bottom first, or a single number."
                )
            return list(v)
        return [v] * P

    def _check_geometry(self, image_shape):
        if self._deep():
            if self._conv(image_shape):
                raise ValueError(
                    "hidden_layer_sizes (deep similarity matching) is implemented for fully connected and "
                    "structured (structure='local') layers, not convolutional ones: use window=None."
                )
            if any(int(h) < 1 for h in self.hidden_layer_sizes):
                raise ValueError(f"hidden_layer_sizes must hold positive integers; got {self.hidden_layer_sizes!r}")
        H, W, _ = image_shape
        if self._conv(image_shape) and (self.window > H or self.window > W):
            raise ValueError(f"window={self.window} is larger than the images ({H} x {W}); choose window <= {min(H, W)}.")
        if self.structure is not None and self.window is not None:
            raise ValueError("structure='local' and window are exclusive: the structured network sees whole images.")
        if self.structure is not None:
            for name, lo, integral in (("site_stride", 1, True), ("radius", 0, False), ("lateral_radius", 0, False)):
                for v in self._per_layer(name):
                    if not isinstance(v, (Integral if integral else Real)) or isinstance(v, bool) or v < lo:
                        kind = "integers >= 1" if integral else "numbers >= 0"
                        raise ValueError(f"{name} must hold {kind}; got {getattr(self, name)!r}")

    def _layer_geometry(self, image_shape):
        """Structured mode, per layer bottom first: (input grid (h, w, c), neurons per site, stride, radius,
        lateral radius); layer p's input grid is layer p-1's site grid with its neurons as channels."""
        sizes = [int(h) for h in self.hidden_layer_sizes] + [int(self.n_components)]
        strides, radii, lats = (self._per_layer(n) for n in ("site_stride", "radius", "lateral_radius"))
        out, shape = [], tuple(int(v) for v in image_shape)
        for n, s, r, lr in zip(sizes, strides, radii, lats):
            s = int(s)
            out.append((shape, n, s, float(r), float(lr)))
            shape = (-(-shape[0] // s), -(-shape[1] // s), n)
        return out

    def _layer_masks(self, image_shape):
        """[(W_mask, L_mask)] per layer, bottom first, as float64 0/1 arrays; (None, None) without structure.

        L_mask is None where the layer's L is block-diagonal and stored as blocks.
        """
        if self.structure is None:
            return [(None, None)] * self._n_layers()
        return [
            local_structure(shape, n, s, r, lr, dense_lateral=self._n_lateral_blocks(image_shape, p) is None)
            for p, (shape, n, s, r, lr) in enumerate(self._layer_geometry(image_shape))
        ]

    def _n_lateral_blocks(self, image_shape, layer=0):
        """Number of sites S of ``layer`` when its L is block-diagonal (stored as (S, n, n) blocks), else None.

        Structured mode with ``lateral_radius < site_stride`` (of that layer): only neurons of the same
        site inhibit each other (Obeid Sec. 6.3), so L is block-diagonal.
        """
        if self.structure is None:
            return None
        (h, w, _), _, s, _, lr = self._layer_geometry(image_shape)[layer]
        if lr >= s:
            return None
        return (-(-h // s)) * (-(-w // s))

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
        return size, stride

    @property
    def _n_features_out(self):
        """Output width for get_feature_names_out (follows return_layers, set after fit)."""
        return self._n_out()

    def _n_out(self):
        N = self.components_.shape[0]
        if self._deep() and self.return_layers == "all":
            return int(sum(W.shape[0] for W in self.layer_components_))
        if not self._conv(self.image_shape_):
            return N
        oh, ow = self._conv_size()
        size, stride = self._pool_geometry(oh, ow)
        return pooled_size(oh, size, stride) * pooled_size(ow, size, stride) * N

    # ------------------------------------------------------------ the rule
    def _dynamics(self, D, L):
        return rules.nsm_fixed_point(
            D,
            L,
            activation=self.activation,
            threshold=self.threshold,
            cap=self.cap,
            step=self.dynamics_step,
            tol=self.tol,
            max_iter=self.max_iter_dynamics,
            accelerate=self.dynamics == "accelerated",
        )

    def _make_step(self, bk, masks, n_classes, counts):
        """One minibatch update; ``masks`` holds the (W_mask, L_mask) of every layer, bottom first."""
        if self._deep():
            return self._make_deep_step(bk, masks, n_classes, counts)

        W_mask, L_mask = masks[0]
        conv_labels = bool(n_classes) and self._conv(self.image_shape_)

        def step(params, batch, lr):
            if conv_labels:
                X, yb = self._split_labelled_patches(bk, batch)
            elif n_classes:
                X, yb = batch
            else:
                X = batch[0] if isinstance(batch, tuple) else batch
            W, L = params["W"], params["L"]
            D = X @ W.T
            if n_classes:
                Y = self._scaled_labels(bk, yb, n_classes, X.dtype)
                D = D + Y @ params["V"].T
            R, k = self._dynamics(D, L)
            counts.append(k)
            dW, dL = rules.nsm_update(W, L, X, R, W_mask=W_mask, L_mask=L_mask)
            params["W"] = W + lr * dW
            params["L"] = L + (lr / self.tau) * dL
            if n_classes:
                dV, _ = rules.nsm_update(params["V"], None, Y, R)  # Bahroun Eq. (8)
                params["V"] = params["V"] + lr * dV

        return step

    def _scaled_labels(self, bk, yb, n_classes, dtype):
        """sqrt(alpha) onehot(y); unlabelled samples (-1) give a zero row (Bahroun Eq. 6)."""
        xp = bk.xp
        return xp.astype(yb[:, None] == bk.arange(n_classes)[None, :], dtype) * math.sqrt(self.alpha)

    def _layer_keys(self):
        """Parameter names bottom to top: ('W_0', 'L_0'), ..., ('W', 'L')."""
        return [(f"W_{p}", f"L_{p}") for p in range(len(self.hidden_layer_sizes))] + [("W", "L")]

    def _deep_dynamics(self, X, Ws, Ls, top_drive=None):
        return rules.deep_fixed_point(
            X, Ws, Ls, gamma=self.gamma, activation=self.activation, threshold=self.threshold, cap=self.cap,
            step=self.dynamics_step, tol=self.tol, max_iter=self.max_iter_dynamics, top_drive=top_drive,
        )

    def _make_deep_step(self, bk, masks, n_classes, counts):
        """Obeid Eq. (17) for all layers together, then Eq. (19) for every layer (masked by its c^W, c^L).

        With labels (S^2M) the scaled one-hot label enters the top layer only, through V: drive
        W^(P) r^(P-1) + V y in Eq. (17), and Delta V = eta (r^(P) y^T - V) (Bahroun Eq. 6, 8).
        """
        keys = self._layer_keys()
        decay_low = 1.0 / (1.0 + self.gamma)

        def step(params, batch, lr):
            if n_classes:
                X, yb = batch
            else:
                X = batch[0] if isinstance(batch, tuple) else batch
            Ws = [params[w] for w, _ in keys]
            Ls = [params[l] for _, l in keys]
            top = None
            if n_classes:
                Y = self._scaled_labels(bk, yb, n_classes, X.dtype)
                top = Y @ params["V"].T
            Rs, k = self._deep_dynamics(X, Ws, Ls, top)
            counts.append(k)
            below = X
            for p, (wk, lk) in enumerate(keys):
                # Obeid Eq. (19), gamma^(p-P) absorbed into the learning rate (as the paper suggests);
                # c in {0, 1}: the Hebbian terms are masked, so weights outside the structure stay exactly 0
                decay = 1.0 if p == len(keys) - 1 else decay_low
                W_mask, L_mask = masks[p]
                dW, dL = rules.nsm_update(Ws[p], Ls[p], below, Rs[p], W_mask=W_mask, L_mask=L_mask,
                                          lateral_decay=decay)
                params[wk] = Ws[p] + lr * dW
                params[lk] = Ls[p] + (lr / self.tau) * dL
                below = Rs[p]
            if n_classes:
                dV, _ = rules.nsm_update(params["V"], None, Y, Rs[-1])  # Bahroun Eq. (8), top layer
                params["V"] = params["V"] + lr * dV

        return step

    # ---------------------------------------------------------------- data
    def _split_labelled_patches(self, bk, P):
        """Raw patches of label-augmented images -> (normalised patches, label codes).

        The label code + 1 travels as an extra constant channel of each image (see
        :meth:`_fit_stream`), so every patch carries its image's label through the
        shuffling of the patch stream; it is split off here and the pixel part is
        normalised as in the unlabelled case.
        """
        xp = bk.xp
        C = self.image_shape_[2]
        B = P.shape[0]
        P3 = xp.reshape(P, (B, P.shape[1] // (C + 1), C + 1))
        X = xp.reshape(P3[:, :, :C], (B, -1))
        codes = xp.astype(xp.round(P3[:, 0, C]), xp.int64) - 1
        if self.normalize_patches:
            X = normalize_rows(bk, X, center=self.center)
        elif self.center:
            X = X - xp.mean(X, axis=-1, keepdims=True)
        return X, codes

    def _fit_stream(self, bk, images, dtype, codes):
        if self._conv(self.image_shape_):
            normalize, center = self.normalize_patches, self.center
            if codes is not None:
                # convolutional S^2M: every patch takes its image's label (as pynsm's
                # SupervisedSimilarityMatching broadcasts the label over positions)
                host = np.asarray(to_numpy(images), dtype=dtype)
                lab = np.broadcast_to((codes + 1).astype(dtype)[:, None, None, None], host.shape[:3] + (1,))
                images = np.concatenate([host, lab], axis=-1)
                normalize, center = False, False  # done per patch after the label is split off
            H, W, _ = self.image_shape_
            per_image = (H - self.window + 1) * (W - self.window + 1)
            chunk = self.chunk_size or max(1, _FIT_CHUNK_PATCHES // per_image)
            return PatchStream(
                bk,
                images,
                self.window,
                self.batch_size,
                chunk,
                dtype,
                center=center,
                normalize=normalize,
            )
        rows = images.reshape(images.shape[0], -1)
        return RowStream(bk, rows, self.batch_size, dtype, y=codes, chunk_size=self.chunk_size)

    def _encode_labels(self, y, n, first, classes=None):
        """Integer codes for S^2M (-1 = unlabelled), or None without supervision."""
        if self.alpha == 0 or y is None:
            return None
        y = column_or_1d(y, warn=True)
        if y.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} samples but X has {n}.")
        if first:
            if classes is not None:
                labels = np.unique(np.asarray(classes))
            else:
                labels = np.unique(y[y != -1]) if y.dtype.kind in "iuf" else np.unique(y)
            labels = labels[labels != -1] if labels.dtype.kind in "iuf" else labels
            self.classes_ = labels
        if not hasattr(self, "classes_") or len(self.classes_) == 0:
            return None
        codes = np.searchsorted(self.classes_, y)
        codes = np.clip(codes, 0, len(self.classes_) - 1)
        known = self.classes_[codes] == y
        unlabelled = (y == -1) if y.dtype.kind in "iuf" else np.zeros(n, dtype=bool)
        if np.any(~known & ~unlabelled):
            raise ValueError(f"y has labels not in classes_ {self.classes_.tolist()} (use -1 for unlabelled samples).")
        return np.where(known, codes, -1).astype(np.int64)

    def _monitor_factory(self, counts):
        def monitor(params):
            return f"mean dynamics steps = {np.mean(counts) if counts else 0:.1f}"

        return monitor

    def _train(self, bk, images, params, masks, codes, *, n_epochs, lr_at, rng):
        dtype = str(params["W"].dtype).split(".")[-1]
        stream = self._fit_stream(bk, images, dtype, codes)
        n_classes = params["V"].shape[1] if "V" in params else 0
        counts = []
        dev_masks = [tuple(None if m is None else bk.asarray(m, dtype=dtype) for m in layer) for layer in masks]
        step = self._make_step(bk, dev_masks, n_classes, counts)
        with bk.memory_hint("batch_size", "chunk_size"):
            result = run_epochs(
                bk,
                params,
                lambda epoch: stream.epoch(rng if self.shuffle else None),
                step,
                n_epochs=n_epochs,
                lr_at=lr_at,
                name=type(self).__name__,
                verbose=self.verbose,
                monitor=self._monitor_factory(counts),
                hint="lower learning_rate, or set dynamics_step lower",
                estimator=self,
                X=images,
                y=None if codes is None else codes,
                reconstruct=lambda p: self._fitted_attributes(p, float(np.mean(counts)) if counts else 0.0, masks),
            )
        return result, float(np.mean(counts)) if counts else 0.0

    def _init_params(self, rng, dtype, masks, n_classes):
        """Initial weights, drawn on the host layer by layer (bottom first), then V.

        W: standard normal / sqrt(fan-in), times the structure mask c^W (exact zeros outside it);
        L = I (positive definite), as (S, n, n) identity blocks where L is block-diagonal.
        """
        fan_ins = [self._n_inputs(self.image_shape_)]
        params = {}
        keys = self._layer_keys()
        for p, (wk, lk) in enumerate(keys):
            W_mask, _ = masks[p]
            K = fan_ins[p]
            if W_mask is not None:
                N = W_mask.shape[0]
                fan_in = np.maximum(W_mask.sum(axis=1, keepdims=True), 1.0)
                W = host_normal(rng, (N, K), "float64") * W_mask / np.sqrt(fan_in)
            else:
                N = int(self.hidden_layer_sizes[p]) if p < len(keys) - 1 else int(self.n_components)
                W = host_normal(rng, (N, K), "float64") / np.sqrt(K)
            S = self._n_lateral_blocks(self.image_shape_, p)
            if S is not None:  # block-diagonal L = I, stored as its S diagonal blocks
                L0 = np.broadcast_to(np.eye(N // S, dtype=dtype), (S, N // S, N // S)).copy()
            else:
                L0 = np.eye(N, dtype=dtype)
            params[wk], params[lk] = W.astype(dtype), L0
            fan_ins.append(N)
        if n_classes:
            # random like W (drawn after it): V = 0 is a saddle where r carries no label information
            N = params["W"].shape[0]
            params["V"] = (host_normal(rng, (N, n_classes), "float64") / np.sqrt(n_classes)).astype(dtype)
        return params

    def _fitted_attributes(self, p, n_dyn, masks=((None, None),)):
        """Fitted attributes from the driver's params (also for scikit-learn callbacks)."""
        attrs = {"components_": to_numpy(p["W"]), "lateral_": to_numpy(p["L"]), "n_dynamics_steps_": n_dyn}
        if "V" in p:
            attrs["label_components_"] = to_numpy(p["V"])
        if self._deep():
            attrs["layer_components_"] = [to_numpy(p[w]) for w, _ in self._layer_keys()]
            attrs["layer_laterals_"] = [to_numpy(p[l]) for _, l in self._layer_keys()]
        attrs.update(self._mask_attributes(masks))
        return attrs

    def _mask_attributes(self, masks):
        if masks[-1][0] is None:
            return {}
        as_bool = lambda m: None if m is None else m.astype(bool)  # noqa: E731
        attrs = {"feedforward_mask_": as_bool(masks[-1][0]), "lateral_mask_": as_bool(masks[-1][1])}
        if self._deep():
            attrs["layer_feedforward_masks_"] = [as_bool(m[0]) for m in masks]
            attrs["layer_lateral_masks_"] = [as_bool(m[1]) for m in masks]
        return attrs

    def _store(self, result, n_dyn, masks):
        for k, v in self._fitted_attributes(result.params, n_dyn, masks).items():
            setattr(self, k, v)

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
        images = validate_images(self, X, image_shape=self.image_shape, reset=True)
        self._check_geometry(self.image_shape_)
        for attr in ("classes_", "label_components_", "feedforward_mask_", "lateral_mask_", "layer_components_",
                     "layer_laterals_", "layer_feedforward_masks_", "layer_lateral_masks_"):
            if hasattr(self, attr):
                delattr(self, attr)
        codes = self._encode_labels(y, images.shape[0], first=True)
        bk = self._backend(X)
        dtype = compute_dtype(X)
        rng = check_random_state(self.random_state)
        masks = self._layer_masks(self.image_shape_)
        n_classes = 0 if codes is None else len(self.classes_)
        params = {k: bk.asarray(v, dtype=dtype) for k, v in self._init_params(rng, dtype, masks, n_classes).items()}
        result, n_dyn = self._train(
            bk,
            images,
            params,
            masks,
            codes,
            n_epochs=self.max_iter,
            lr_at=lambda e: learning_rate_at(self.schedule, self.learning_rate, e, self.max_iter),
            rng=rng,
        )
        self._store(result, n_dyn, masks)
        self.n_iter_ = result.n_epochs
        self.n_steps_ = result.n_steps
        return self

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
        first = not hasattr(self, "components_")
        images = validate_images(self, X, image_shape=self.image_shape, reset=first)
        if first:
            self._check_geometry(self.image_shape_)
        bk = self._backend(X)
        if first or not hasattr(self, "_random_state"):
            self._random_state = check_random_state(self.random_state)
        codes = self._encode_labels(y, images.shape[0], first=first and not hasattr(self, "classes_"), classes=classes)
        masks = self._layer_masks(self.image_shape_)
        if first:
            dtype = compute_dtype(X)
            n_classes = 0 if codes is None else len(self.classes_)
            host = self._init_params(self._random_state, dtype, masks, n_classes)
            self.n_iter_ = 0
            self.n_steps_ = 0
        else:
            dtype = str(self.components_.dtype)
            host = {"W": self.components_, "L": self.lateral_}
            if self._deep():
                for p, (wk, lk) in enumerate(self._layer_keys()):
                    host[wk], host[lk] = self.layer_components_[p], self.layer_laterals_[p]
            if hasattr(self, "label_components_"):
                host["V"] = self.label_components_
            elif codes is not None:
                host["V"] = np.zeros((self.components_.shape[0], len(self.classes_)), dtype=dtype)
        if "V" in host and codes is None:
            # unlabelled chunk: every sample is unlabelled (V only decays)
            codes = np.full(images.shape[0], -1, dtype=np.int64)
        params = {k: bk.asarray(v, dtype=dtype) for k, v in host.items()}
        result, n_dyn = self._train(
            bk,
            images,
            params,
            masks,
            codes,
            n_epochs=1,
            lr_at=lambda e: self.learning_rate,
            rng=self._random_state,
        )
        self._store(result, n_dyn, masks)
        self.n_iter_ += 1
        self.n_steps_ += result.n_steps
        return self

    # ------------------------------------------------------------ transform
    def _weights(self, bk, X):
        dtype = compute_dtype(X) if hasattr(X, "dtype") else str(self.components_.dtype)
        return bk.asarray(self.components_, dtype=dtype), bk.asarray(self.lateral_, dtype=dtype), dtype

    def _patches(self, bk, chunk, stride):
        P = extract_patches(bk, chunk, self.window, stride)
        if self.normalize_patches:
            return normalize_rows(bk, P, center=self.center)
        if self.center:
            P = P - bk.xp.mean(P, axis=-1, keepdims=True)
        return P

    def _deep_weights(self, bk, dtype):
        Ws = [bk.asarray(W, dtype=dtype) for W in self.layer_components_]
        Ls = [bk.asarray(L, dtype=dtype) for L in self.layer_laterals_]
        return Ws, Ls

    def _encode(self, bk, chunk, W, L):
        xp = bk.xp
        if self._deep():
            Rs, _ = self._deep_dynamics(xp.reshape(chunk, (chunk.shape[0], -1)), *W)
            return Rs[-1] if self.return_layers == "top" else xp.concat(Rs, axis=1)
        if not self._conv(self.image_shape_):
            X = xp.reshape(chunk, (chunk.shape[0], -1))
            R, _ = self._dynamics(X @ W.T, L)
            return R
        P = self._patches(bk, chunk, self.stride)
        n, oh, ow, K = P.shape
        R, _ = self._dynamics(xp.reshape(P, (-1, K)) @ W.T, L)
        F = xp.reshape(R, (n, oh, ow, R.shape[1]))
        size, stride = self._pool_geometry(oh, ow)
        F = max_pool(bk, F, size, stride) if self.pool == "max" else _sum_pool(bk, F, size, stride)
        return xp.reshape(F, (n, -1))

    def _row_chunk(self):
        if self.chunk_size is not None:
            return self.chunk_size
        if not self._conv(self.image_shape_):
            return _TRANSFORM_CHUNK_ROWS
        oh, ow = self._conv_size()
        return max(1, _TRANSFORM_CHUNK_ROWS // (oh * ow))

    def transform(self, X):
        """Encode ``X`` with the fixed points of the learned network.

        Returns
        -------
        X_new : array of shape (n, n_features_out)
            The outputs r* (fully connected and structured modes; for a deep
            network the top layer's, or every layer's, bottom first, with
            ``return_layers="all"``), or the pooled output maps ordered
            (pooled row, pooled column, channel) (convolutional mode). NumPy
            for NumPy input; torch/CuPy input gets output of its own kind and
            device.
        """
        check_is_fitted(self)
        images = validate_images(self, X, reset=False)
        bk = self._backend(X)
        W, L, dtype = self._weights(bk, X)
        if self._deep():
            W = self._deep_weights(bk, dtype)
        out = []
        with bk.memory_hint("chunk_size"):
            for index in iter_chunks(images.shape[0], self._row_chunk()):
                out.append(self._encode(bk, to_device_chunk(bk, images, index, dtype), W, L))
        Z = out[0] if len(out) == 1 else bk.xp.concat(out, axis=0)
        return to_output(Z, X)

    def score(self, X, y=None):
        """Minus the similarity matching cost of ``X`` under the learned network.

        The cost of Obeid Eq. (3),
        (1 / 2T^2) sum_{t,t'} (x_t . x_t' - r_t . r_t')^2 + (2 / T) sum_t ||F(r_t)||_1,
        with r_t the fixed points (inputs x are the rows, or every patch in
        convolutional mode, normalised as in fit); with structure the masked
        cost of Eq. (11) plus the constant input term; for a deep network the
        sum of the layers' costs (Eq. 12 with the gamma weights absorbed, as in
        the learning rule; each layer's masked by its structure, Eq. 13). Labels are not used (``y`` is ignored). Higher is
        better.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        images = validate_images(self, X, reset=False)
        bk = self._backend(X)
        W, L, dtype = self._weights(bk, X)
        xp = bk.xp
        if self._conv(self.image_shape_):
            stream = PatchStream(
                bk, images, self.window, _TRANSFORM_CHUNK_ROWS, self._row_chunk(), dtype,
                center=self.center, normalize=self.normalize_patches,
            )
            batches = stream.epoch(None)
        else:
            rows = images.reshape(images.shape[0], -1)
            batches = RowStream(bk, rows, _TRANSFORM_CHUNK_ROWS, dtype).epoch(None)
        if self._deep():
            return self._deep_score(bk, batches, dtype)
        XX = RX = RR = None
        reg = 0.0
        n = 0
        for Xb in batches:
            R, _ = self._dynamics(Xb @ W.T, L)
            terms = rules.sm_gram_terms(Xb, R, n_blocks=L.shape[0] if L.ndim == 3 else None)
            if XX is None:
                XX, RX, RR = terms
            else:
                XX, RX, RR = XX + terms[0], RX + terms[1], RR + terms[2]
            reg += float(xp.sum(rules.nsm_regularizer(R, self.activation, threshold=self.threshold)))
            n += Xb.shape[0]
        masks = [None, None]
        if getattr(self, "feedforward_mask_", None) is not None:
            masks[0] = bk.asarray(self.feedforward_mask_, dtype=dtype)
            if self.lateral_mask_ is not None:
                masks[1] = bk.asarray(self.lateral_mask_, dtype=dtype)
        cost = rules.sm_cost_from_grams(XX, RX, RR, n, reg, W_mask=masks[0], L_mask=masks[1])
        return -cost

    def _deep_score(self, bk, batches, dtype):
        """Sum over layers of the per-layer cost (Eq. 12 with the gamma^(p-P) weights set to 1), each
        layer's cost masked by its structure (Eq. 13 with c in {0, 1})."""
        xp = bk.xp
        Ws, Ls = self._deep_weights(bk, dtype)
        P = len(Ws)
        masks = [(None, None)] * P
        if getattr(self, "layer_feedforward_masks_", None) is not None:
            masks = [(bk.asarray(cW, dtype=dtype), None if cL is None else bk.asarray(cL, dtype=dtype))
                     for cW, cL in zip(self.layer_feedforward_masks_, self.layer_lateral_masks_)]
        grams = [None] * P
        regs = [0.0] * P
        n = 0
        for Xb in batches:
            Rs, _ = self._deep_dynamics(Xb, Ws, Ls)
            below = Xb
            for p in range(P):
                t = rules.sm_gram_terms(below, Rs[p], n_blocks=Ls[p].shape[0] if Ls[p].ndim == 3 else None)
                grams[p] = t if grams[p] is None else tuple(a + b for a, b in zip(grams[p], t))
                regs[p] += float(xp.sum(rules.nsm_regularizer(Rs[p], self.activation, threshold=self.threshold)))
                below = Rs[p]
            n += Xb.shape[0]
        return -sum(rules.sm_cost_from_grams(*grams[p], n, regs[p], W_mask=masks[p][0], L_mask=masks[p][1])
                    for p in range(P))

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
            The fitted dtype (float32, or float64 when fitted in float64).

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
