"""Pictures of fitted estimators: ReceptiveFieldDisplay (the learned filters, as in Krotov et al.'s Fig. 1)
and TrainingHistoryDisplay (the classifiers' per-epoch loss and feedback alignment).

Both follow scikit-learn's Display contract: ``__init__`` stores computed data
only, ``from_estimator`` builds it from a fitted estimator, ``plot(...)``
draws it (matplotlib is imported lazily) and stores the artists in
``figure_``, ``axes_`` and the drawn images or lines.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np

__all__ = ["ReceptiveFieldDisplay", "TrainingHistoryDisplay", "crop_to_fields", "filters_to_images"]

# colour of the pixels outside a unit's receptive field (structured layers), and of the grid's background
_OUTSIDE = (0.93, 0.86, 0.72)
# input rows whose wins are counted at a time (their patches, for the convolutional encoders)
_WIN_CHUNK_ROWS = 256


def filters_to_images(filters, shape):
    """Reshape filters (n, prod(shape)) to images, each stretched linearly to [0, 1].

    As in Fig. 1 of Grinberg, Hopfield & Krotov: every filter is stretched on
    its own segment [min, max] -> [0, 1], so black is the most negative (or
    zero) weight and white the largest; colour filters keep their RGB
    channels. A constant filter becomes mid-grey. NaN entries (pixels outside
    a receptive field) stay NaN.
    """
    F = np.asarray(filters, dtype=np.float64)
    imgs = F.reshape((F.shape[0],) + tuple(shape))
    flat = imgs.reshape(len(imgs), -1)
    seen = ~np.all(np.isnan(flat), axis=1)
    lo = np.where(seen, np.nanmin(np.where(seen[:, None], flat, 0.0), axis=1), 0.0)
    hi = np.where(seen, np.nanmax(np.where(seen[:, None], flat, 0.0), axis=1), 0.0)
    span = hi - lo
    extra = (1,) * len(shape)
    out = np.where(
        (span > 0).reshape((-1,) + extra),
        (imgs - lo.reshape((-1,) + extra)) / np.where(span > 0, span, 1).reshape((-1,) + extra),
        np.where(np.isnan(imgs), np.nan, 0.5),
    )
    return out


def _order(filters, order, shape, wins=None):
    F = np.asarray(filters, dtype=np.float64)
    if order is None or order == "index":
        return np.arange(len(F))
    if callable(order):
        return np.argsort(np.asarray(order(F)))
    if order == "wins":  # the units that win most often first
        if wins is None:
            raise ValueError("order='wins' needs the data the units compete on: pass X to from_estimator")
        return np.argsort(-wins, kind="stable")
    if order == "norm":  # strongest (largest norm) first
        return np.argsort(-np.linalg.norm(np.nan_to_num(F), axis=1), kind="stable")
    if order == "color":  # colour units first: spread between RGB channels (Krotov Fig. 1 groups)
        if len(shape) != 3 or shape[-1] != 3:
            raise ValueError("order='color' needs RGB filters (shape (h, w, 3))")
        imgs = np.nan_to_num(F).reshape((len(F),) + tuple(shape))
        chroma = np.abs(imgs - imgs.mean(axis=-1, keepdims=True)).mean(axis=(1, 2, 3))
        return np.argsort(-chroma, kind="stable")
    raise ValueError(f"order must be 'wins', 'index', 'norm', 'color' or a callable; got {order!r}")


# --------------------------------------------------------------- filters of the encoders
class _Fields:
    """The filters of one layer of a fitted encoder: (n, d) rows of ``shape``, how its units are grouped
    for the competition (``groups``: (n_groups, units per group) unit indices), and ``activity(X)``:
    (n_inputs, n_units) activations on which the units of a group compete (the largest one wins)."""

    def __init__(self, filters, shape, groups, activity, *, what, inputs, rivals="all units", positive=False):
        self.filters, self.shape, self.groups, self.activity = filters, tuple(int(s) for s in shape), groups, activity
        self.what, self.inputs, self.rivals, self.positive = what, inputs, rivals, positive


def _image_shape(estimator):
    """(H, W, C) of the images the encoder was fitted on, or a clear error for flat rows."""
    H, W, C = estimator.image_shape_
    if H == 1 and W == 1:
        raise ValueError(
            f"{type(estimator).__name__} was fitted on flat rows of {C} features, not images, so its filters have no "
            "image shape: fit it with image_shape=(H, W[, C]) (or on 3-D/4-D images), or pass shape=(h, w[, c]) "
            "to from_estimator if the rows are images."
        )
    return H, W, C


def _squeeze(shape):
    return tuple(shape[:2]) if shape[-1] == 1 else tuple(shape)


def _all_units(n):
    return np.arange(n)[None, :]


def _numpy():
    from ._backend import resolve

    return resolve("numpy")


def _krotov_fields(est, shape):
    from .image import extract_patches, normalize_rows

    bk = _numpy()
    M = np.asarray(est.components_, dtype=np.float64)
    win = est._window(est.image_shape_)
    if shape is None:
        H, W, C = _image_shape(est) if win is None else est.image_shape_
        shape = (H, W, C) if win is None else (win, win, C)
    synapses = np.sign(M) * np.abs(M) ** (est.p - 1)  # the currents of Eq. (1): <M, v>_p

    def activity(X):
        images = np.asarray(est._validate_input(X, reset=False), dtype=np.float64)
        if win is None:
            P = images.reshape(len(images), -1)
        else:
            P = extract_patches(bk, images, win).reshape(-1, M.shape[1])
        return normalize_rows(bk, P, center=est.center) @ synapses.T

    inputs = "images" if win is None else f"{win} x {win} patches"
    return _Fields(M, shape, _all_units(len(M)), activity, what="filters", inputs=inputs)


def _nsm_fields(est, layer, shape):
    params = {k: np.asarray(v, dtype=np.float64) for k, v in est._params_from_fitted().items()}
    Ws, Ls = est._weights(params)
    if not 0 <= layer < len(Ws):
        raise ValueError(f"layer={layer}: {type(est).__name__}'s network has layers 0 to {len(Ws) - 1}, and only layer 0 sees pixels.")
    if layer != 0:
        raise ValueError(
            f"layer={layer}: layer {layer} of {type(est).__name__}'s network sees the outputs of layer {layer - 1}, "
            "not pixels; only layer 0 has filters that are images."
        )
    bk = _numpy()
    silent = est.activation in ("relu", "capped_relu")  # an output of 0 is no response: an all-0 group has no winner
    if est._conv():
        C = est.image_shape_[2]
        if shape is None:
            shape = (est.window, est.window, C)

        def activity(X):
            images = np.asarray(est._validate_input(X, reset=False), dtype=np.float64)
            P = est._scaled(est._patches(bk, images, 1))
            return est._fixed_point(P.reshape(-1, P.shape[-1]), Ws, Ls)[0][0]

        F = Ws[0]
        return _Fields(F, shape, _all_units(len(F)), activity, what="filters", inputs=f"{est.window} x {est.window} patches", positive=silent)
    if shape is None:
        shape = _image_shape(est)
    F = Ws[0]
    n_sites = 1
    if est._structure() is not None:
        mask = np.asarray(est.layer_feedforward_masks_[0], dtype=bool)
        F = np.where(mask, F, np.nan)  # pixels outside a neuron's receptive field
        n_sites = len(F) // est._sizes()[0]

    def activity(X):
        images = np.asarray(est._validate_input(X, reset=False), dtype=np.float64)
        return est._fixed_point(est._scaled(images.reshape(len(images), -1)), Ws, Ls)[0][0]

    groups = np.arange(len(F)).reshape(n_sites, -1)  # structured: the neurons of a site compete
    if n_sites > 1:
        return _Fields(F, shape, groups, activity, what="receptive fields", inputs="images", rivals="the neurons of its site", positive=silent)
    return _Fields(F, shape, groups, activity, what="filters", inputs="images", positive=silent)


def _competitive_fields(est, layer, shape):
    from .nn.competitive import forward, normalize_input

    if not 0 <= layer < len(est.coefs_):
        raise ValueError(f"layer={layer}: {type(est).__name__} has layers 0 to {len(est.coefs_) - 1}, and only layer 0 sees pixels.")
    if layer != 0:
        raise ValueError(
            f"layer={layer}: layer {layer} of {type(est).__name__} sees the features of layer {layer - 1}, not pixels; "
            "only layer 0 has filters that are images."
        )
    bk = _numpy()
    W = np.asarray(est.coefs_[0], dtype=np.float64)
    first = est._layers()[0]
    if W.ndim == 4:  # locally connected: (H, W, K*K*C, units), one filter per position and unit
        H, Wd, d, units = W.shape
        F = W.transpose(0, 1, 3, 2).reshape(H * Wd * units, d)  # (row, column, unit): transform's order
        if shape is None:
            shape = (est.window, est.window, est.image_shape_[2])
        groups = np.arange(len(F)).reshape(H * Wd, units)  # the units of a position compete
        rivals = "the units of its position"
    else:
        F = W.T
        if shape is None:
            shape = _image_shape(est)
        groups, rivals = _all_units(len(F)), "all units"

    def activity(X):
        rows = np.asarray(est._validate_input(X, reset=False), dtype=np.float64)
        h = normalize_input(bk, rows) if est.normalize_input else rows
        return np.abs(forward(bk, first, W, h))

    return _Fields(F, shape, groups, activity, what="filters", inputs="images", rivals=rivals)


def _fields(estimator, layer, shape):
    from .encoders.competitive import LocalCompetitiveEncoder
    from .encoders.krotov import KrotovPatchEncoder
    from .encoders.nsm import NSMEncoder

    if isinstance(estimator, KrotovPatchEncoder):
        if layer not in (None, 0):
            raise ValueError(f"layer={layer}: KrotovPatchEncoder has one layer (layer 0).")
        return _krotov_fields(estimator, shape)
    if isinstance(estimator, NSMEncoder):
        return _nsm_fields(estimator, 0 if layer is None else layer, shape)
    if isinstance(estimator, LocalCompetitiveEncoder):
        return _competitive_fields(estimator, 0 if layer is None else layer, shape)
    raise TypeError(
        f"{type(estimator).__name__} has no filters to draw: ReceptiveFieldDisplay.from_estimator takes a fitted "
        "KrotovPatchEncoder, NSMEncoder or LocalCompetitiveEncoder; for other filters use ReceptiveFieldDisplay(filters, shape=...)."
    )


def _win_fractions(fields, X):
    """Fraction of the inputs (rows, or patches) on which each unit has the largest activation of its group;
    with ``fields.positive`` an input whose group is silent (all activations 0) has no winner."""
    from ._backend import is_foreign_array, to_numpy

    X = to_numpy(X) if is_foreign_array(X) else (X if hasattr(X, "shape") else np.asarray(X))
    n_units = len(fields.filters)
    counts = np.zeros(n_units)
    n_inputs = 0
    for start in range(0, X.shape[0], _WIN_CHUNK_ROWS):
        A = fields.activity(X[start : start + _WIN_CHUNK_ROWS])
        G = A[:, fields.groups]  # (inputs, groups, units per group)
        best = np.argmax(G, axis=2)
        winners = np.take_along_axis(fields.groups[None, :, :], best[:, :, None], axis=2)[:, :, 0]
        if fields.positive:
            winners = winners[np.take_along_axis(G, best[:, :, None], axis=2)[:, :, 0] > 0]
        counts += np.bincount(np.ravel(winners), minlength=n_units)
        n_inputs += A.shape[0]
    return counts / max(n_inputs, 1), n_inputs


def crop_to_fields(filters, shape):
    """``(filters, shape)`` with every image (a row of ``filters``, NaN outside its receptive field) cropped
    to one common box around its field, so that small fields fill their tiles; the pixels of a box
    outside the field (or the image) are NaN."""
    imgs = np.asarray(filters, dtype=np.float64).reshape((len(filters),) + tuple(shape))
    inside = ~np.isnan(imgs).reshape(imgs.shape[:3] + (-1,)).all(axis=-1)  # (n, H, W)
    rows, cols = inside.any(axis=2), inside.any(axis=1)
    if not rows.any():
        return filters, shape
    top, bottom = np.argmax(rows, axis=1), rows.shape[1] - np.argmax(rows[:, ::-1], axis=1)
    left, right = np.argmax(cols, axis=1), cols.shape[1] - np.argmax(cols[:, ::-1], axis=1)
    h, w = int((bottom - top).max()), int((right - left).max())
    padded = np.pad(imgs.reshape(imgs.shape[:3] + (-1,)), ((0, 0), (h, h), (w, w), (0, 0)), constant_values=np.nan)
    r0 = h + (top + bottom - h) // 2
    c0 = w + (left + right - w) // 2
    r = r0[:, None] + np.arange(h)[None, :]
    c = c0[:, None] + np.arange(w)[None, :]
    crops = padded[np.arange(len(imgs))[:, None, None], r[:, :, None], c[:, None, :]]
    new_shape = (h, w) + tuple(shape[2:])
    return crops.reshape(len(imgs), -1), new_shape


class ReceptiveFieldDisplay:
    """Filters of a fitted encoder as a titled grid of small images, ordered by how often each unit wins.

    Parameters
    ----------
    filters : ndarray of shape (n_filters, h * w * c)
        One filter per row, in (row, column, channel) order; NaN marks pixels
        outside a unit's receptive field (drawn in tan).
    shape : tuple
        (h, w) or (h, w, c) of one filter; c = 3 is drawn in RGB, other
        channel counts as their mean.
    units : ndarray of shape (n_filters,), default=None
        The unit (index into the encoder's units) of each row; 0..n-1 if None.
    win_fraction : ndarray of shape (n_filters,), default=None
        Share of the inputs on which each unit wins its competition; shown
        above each filter when given.
    title : str, default=None
        The figure's title.
    caption : str, default=None
        A line under the title (how to read the figure).

    Attributes (after ``plot``)
    ---------------------------
    figure_ : matplotlib Figure
    axes_ : ndarray of Axes, one per grid cell
    images_ : list of AxesImage
    title_ : matplotlib Text
    """

    def __init__(self, filters, *, shape, units=None, win_fraction=None, title=None, caption=None):
        self.filters = np.asarray(filters)
        self.shape = tuple(int(s) for s in shape)
        if self.filters.ndim != 2 or math.prod(self.shape) != self.filters.shape[1]:
            raise ValueError(f"shape {self.shape} does not match filters of length {self.filters.shape[-1]}")
        self.units = np.arange(len(self.filters)) if units is None else np.asarray(units)
        self.win_fraction = None if win_fraction is None else np.asarray(win_fraction, dtype=np.float64)
        self.title = title
        self.caption = caption

    @classmethod
    def from_estimator(cls, estimator, X=None, *, layer=None, n_filters=None, order=None, shape=None, crop=True):
        """Build the display from a fitted encoder's filters, ordered by how often each unit wins on ``X``.

        The filter shape comes from the encoder: ``window x window x C`` for
        KrotovPatchEncoder and the convolutional NSMEncoder, ``K x K x C`` for
        LocalCompetitiveEncoder's locally connected layer (one filter per
        position and unit), the image shape (H, W, C) for fully connected
        layers on images; an encoder fitted on flat rows is refused (pass
        ``shape``). For each input of ``X`` (each patch of each image, for
        the convolutional encoders) the unit with the largest activation of
        its group wins: the largest current of Eq. (1) (Krotov), output r
        (NSM; the neurons of one site form a group in the structured layout)
        or |y| (LocalCompetitive; the units of one position in a locally
        connected layer). Units are drawn most frequent winner first, each
        with its share of the inputs.

        Parameters
        ----------
        estimator : fitted KrotovPatchEncoder, NSMEncoder or LocalCompetitiveEncoder
        X : array, default=None
            Data the units compete on (as for ``transform``). Without it the
            units are drawn in index order and no share is shown.
        layer : int, default=None
            The layer whose filters are drawn; only layer 0 (the default)
            sees pixels.
        n_filters : int, default=None
            Draw only the first ``n_filters`` after ordering.
        order : {"wins", "index", "norm", "color"} or callable, default=None
            None: "wins" with ``X``, else "index". "norm": largest filters
            first; "color": colour-selective units first (RGB only), as the
            groups of Krotov et al.'s Fig. 1; a callable maps the (n, d)
            filters to a sort key.
        shape : tuple, default=None
            (h, w[, c]) of one filter, to override the inferred one.
        crop : bool, default=True
            Structured NSM layers: crop each receptive field (a disc of
            ``radius`` around its site) to one common box, so that it fills
            its tile; False draws the whole image.

        Returns
        -------
        display : ReceptiveFieldDisplay
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(estimator)
        fields = _fields(estimator, layer, shape)
        if math.prod(fields.shape) != fields.filters.shape[1]:
            raise ValueError(f"shape {fields.shape} does not match {type(estimator).__name__}'s filters of length {fields.filters.shape[1]}")
        wins, n_inputs = (None, 0) if X is None else _win_fractions(fields, X)
        idx = _order(fields.filters, order or ("wins" if X is not None else "index"), fields.shape, wins)
        if n_filters is not None:
            idx = idx[:n_filters]
        filters, fshape = fields.filters[idx], fields.shape
        if crop and np.isnan(filters).any():
            filters, fshape = crop_to_fields(filters, fshape)
        name = type(estimator).__name__
        dims = " x ".join(str(s) for s in _squeeze(fshape))
        ordered = (
            f"most frequent winner first, on {n_inputs} {fields.inputs}"
            if wins is not None and order in (None, "wins")
            else f"ordered by {'a key' if callable(order) else order or 'index'}"
        )
        title = f"{name}: {len(idx)} of {len(fields.filters)} {fields.what} ({dims}), {ordered}"
        caption = "each filter stretched from black (its most negative weight) to white (its largest)"
        if wins is not None:
            caption += f"; %: share of the inputs on which the unit is the most active of {fields.rivals}"
        if np.isnan(filters).any():
            caption += "; tan: outside the receptive field"
        return cls(filters, shape=_squeeze(fshape), units=idx, win_fraction=None if wins is None else wins[idx], title=title, caption=caption)

    def _title_lines(self, width):
        """The title and caption wrapped to ``width`` inches (8-point text)."""
        chars = max(30, int(width * 15))
        return textwrap.wrap(self.title or "", chars) + textwrap.wrap(self.caption or "", int(chars * 1.15))

    def plot(self, ax=None, *, ncols=None, imshow_kw=None, labels=True):
        """Draw the filters under the title, each labelled with its unit (and share of wins).

        Parameters
        ----------
        ax : matplotlib Axes or None
            If given, the grid is drawn inside this Axes' area (its frame is
            hidden and its title holds the display's title); otherwise a new
            figure is made.
        ncols : int, optional
            Columns of the grid (default: about the square root of the count).
        imshow_kw : dict, optional
            Passed to ``imshow`` (overrides the defaults).
        labels : bool, default=True
            Write the unit (and its share of wins) above each filter.

        Returns
        -------
        self
        """
        from sklearn.utils._optional_dependencies import check_matplotlib_support

        check_matplotlib_support("ReceptiveFieldDisplay.plot")
        import matplotlib.pyplot as plt

        n = len(self.filters)
        ncols = ncols or max(1, int(math.ceil(math.sqrt(n))))
        nrows = max(1, int(math.ceil(n / ncols)))
        tile = 0.85 if labels else 0.6
        if ax is None:
            width = max(ncols * tile + 0.4, 5.0)
            head = 0.16 * len(self._title_lines(width)) + (0.35 if labels else 0.2)  # inches above the grid
            fig = plt.figure(figsize=(width, nrows * tile + head + 0.1))
            ax = fig.add_subplot(1, 1, 1)
            fig.subplots_adjust(left=0.02, right=0.98, bottom=0.1 / fig.get_figheight(), top=1 - head / fig.get_figheight())
        fig = ax.figure
        ax.set_axis_off()
        lines = self._title_lines(ax.get_position().width * fig.get_figwidth())
        self.title_ = ax.set_title("\n".join(lines), fontsize=8, pad=16 if labels else 6)
        self.title_.set_linespacing(1.3)
        spec = ax.get_subplotspec().subgridspec(nrows, ncols, wspace=0.08, hspace=0.45 if labels else 0.08)
        imgs = filters_to_images(self.filters, self.shape)
        rgb = len(self.shape) == 3 and self.shape[-1] == 3
        outside = np.isnan(imgs)
        if rgb:
            imgs = np.where(outside, np.asarray(_OUTSIDE), imgs)
        elif len(self.shape) == 3:
            imgs = np.nanmean(imgs, axis=-1) if not outside.all() else imgs[..., 0]
        kw = {"interpolation": "nearest", "vmin": 0.0, "vmax": 1.0}
        if not rgb:
            kw["cmap"] = plt.get_cmap("gray").with_extremes(bad=_OUTSIDE)
        kw.update(imshow_kw or {})
        axes = np.empty((nrows, ncols), dtype=object)
        images = []
        for k in range(nrows * ncols):
            a = fig.add_subplot(spec[k // ncols, k % ncols])
            a.set_axis_off()
            axes[k // ncols, k % ncols] = a
            if k < n:
                images.append(a.imshow(imgs[k], **kw))
                if labels:
                    label = f"u{self.units[k]}"
                    if self.win_fraction is not None:
                        label += f" {100 * self.win_fraction[k]:.1f}%"
                    a.set_title(label, fontsize=6, pad=2)
        self.figure_, self.axes_, self.images_ = fig, axes, images
        return self


class TrainingHistoryDisplay:
    """A classifier's per-epoch training history: the mean training loss and, for URFBClassifier, the
    alignment corr(W, R) of every weight layer (Amit 2019, Fig. 10-11).

    Parameters
    ----------
    loss : sequence of float
        Mean training loss of each epoch.
    alignment : ndarray of shape (n_epochs, n_layers), default=None
        Correlation between forward and feedback weights of each layer after each epoch.
    layer_names : list of str, default=None
        One name per alignment column.
    name : str, default=None
        The run's name, used in the legend (to overlay several runs).
    loss_name : str, default="training loss"
        What the loss is, for the y-axis.

    Attributes (after ``plot``)
    ---------------------------
    figure_ : matplotlib Figure
    axes_ : ndarray of Axes (loss, and alignment when given)
    lines_ : list of Line2D
    """

    def __init__(self, loss, *, alignment=None, layer_names=None, name=None, loss_name="training loss"):
        self.loss = np.asarray(loss, dtype=np.float64)
        self.alignment = None if alignment is None else np.asarray(alignment, dtype=np.float64).reshape(len(self.loss), -1)
        self.layer_names = layer_names
        self.name = name
        self.loss_name = loss_name

    @classmethod
    def from_estimator(cls, estimator, *, name=None):
        """The history a fitted classifier recorded: ``loss_curve_`` and ``alignment_`` (URFBClassifier),
        or ``error_curve_`` (ActivationLearningClassifier with feedback).

        Estimators that record no per-epoch history (the encoders,
        ActivationLearningClassifier with ``feedback=False``) are refused with a TypeError.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(estimator)
        loss = getattr(estimator, "loss_curve_", None)
        errors = getattr(estimator, "error_curve_", None)
        if loss is None and errors is not None:  # ActivationLearningClassifier: the training error per epoch
            return cls(errors, name=name, loss_name="training error (before each step)")
        if loss is None:
            hint = " (feedback=False computes no activation gap, so no error_curve_)" if hasattr(estimator, "error_curve_") else ""
            raise TypeError(
                f"{type(estimator).__name__} records no per-epoch training loss (no loss_curve_ or error_curve_){hint}; "
                "TrainingHistoryDisplay draws URFBClassifier's loss_curve_ and alignment_ and "
                "ActivationLearningClassifier's error_curve_."
            )
        alignment = getattr(estimator, "alignment_", None)
        layer_names = None
        if alignment is not None:
            layer_names = [f"layer {i + 1}" for i in range(np.asarray(alignment).shape[1])]
        kind = getattr(estimator, "loss", None)
        loss_name = f"mean training loss ({kind})" if isinstance(kind, str) else "mean training loss"
        return cls(loss, alignment=alignment, layer_names=layer_names, name=name, loss_name=loss_name)

    def plot(self, axes=None, **line_kw):
        """Draw the loss (and the alignment) against the epoch.

        Parameters
        ----------
        axes : sequence of matplotlib Axes, default=None
            One Axes for the loss and one for the alignment (``axes_`` of an
            earlier plot, to overlay another run); None makes a new figure.
        **line_kw
            Passed to ``Axes.plot`` (for instance ``color``, to tell runs
            apart; the layers' alignments differ by line style).

        Returns
        -------
        self
        """
        from sklearn.utils._optional_dependencies import check_matplotlib_support

        check_matplotlib_support("TrainingHistoryDisplay.plot")
        import matplotlib.pyplot as plt

        n_axes = 1 if self.alignment is None else 2
        if axes is None:
            fig, axes = plt.subplots(1, n_axes, figsize=(5.2 * n_axes, 3.6), squeeze=False)
            axes = axes[0]
            fig.subplots_adjust(wspace=0.3, bottom=0.15)
        axes = np.asarray(axes, dtype=object).ravel()
        if len(axes) < n_axes:
            raise ValueError(f"axes holds {len(axes)} Axes; this history needs {n_axes} (loss and alignment)")
        epochs = np.arange(1, len(self.loss) + 1)
        kw = {"marker": "o", "ms": 3, **line_kw}
        lines = axes[0].plot(epochs, self.loss, label=self.name, **kw)
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel(self.loss_name)
        axes[0].set_title("training loss per epoch", fontsize=10)
        if self.alignment is not None:
            styles = ("-", "--", ":", "-.")
            for i in range(self.alignment.shape[1]):
                label = self.layer_names[i] if self.layer_names else f"layer {i + 1}"
                label = f"{self.name}, {label}" if self.name else label
                lines += axes[1].plot(epochs, self.alignment[:, i], label=label, **{"linestyle": styles[i % len(styles)], **kw})
            axes[1].set_xlabel("epoch")
            axes[1].set_ylabel("corr(W, R)")
            axes[1].set_title("alignment of forward and feedback weights", fontsize=10)
            axes[1].legend(fontsize=7)
        if self.name:
            axes[0].legend(fontsize=7)
        self.figure_, self.axes_ = axes[0].figure, axes[:n_axes]
        self.lines_ = list(lines)
        return self
