"""ReceptiveFieldDisplay: the learned filters of an encoder, drawn as in Krotov et al.'s Fig. 1.

Follows scikit-learn's Display contract: ``__init__`` stores computed data
only, ``from_estimator`` builds it from a fitted estimator, ``plot(ax=...)``
draws it (matplotlib is imported lazily) and stores the artists in
``figure_``, ``axes_`` and ``images_``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ReceptiveFieldDisplay", "filters_to_images"]


def filters_to_images(filters, shape):
    """Reshape filters (n, prod(shape)) to images, each stretched linearly to [0, 1].

    As in Fig. 1 of Grinberg, Hopfield & Krotov: every filter is stretched on
    its own segment [min, max] -> [0, 1], so black is the most negative (or
    zero) weight and white the largest; colour filters keep their RGB
    channels. A constant filter becomes mid-grey.
    """
    F = np.asarray(filters, dtype=np.float64)
    imgs = F.reshape((F.shape[0],) + tuple(shape))
    lo = imgs.reshape(len(imgs), -1).min(axis=1)
    hi = imgs.reshape(len(imgs), -1).max(axis=1)
    span = hi - lo
    extra = (1,) * len(shape)
    out = np.where(
        (span > 0).reshape((-1,) + extra),
        (imgs - lo.reshape((-1,) + extra)) / np.where(span > 0, span, 1).reshape((-1,) + extra),
        0.5,
    )
    return out


def _order(filters, order, shape):
    F = np.asarray(filters, dtype=np.float64)
    if order is None or order == "index":
        return np.arange(len(F))
    if callable(order):
        return np.argsort(np.asarray(order(F)))
    if order == "norm":  # strongest (largest norm) first
        return np.argsort(-np.linalg.norm(F, axis=1), kind="stable")
    if order == "color":  # colour units first: spread between RGB channels (Krotov Fig. 1 groups)
        if len(shape) != 3 or shape[-1] != 3:
            raise ValueError("order='color' needs RGB filters (shape (h, w, 3))")
        imgs = F.reshape((len(F),) + tuple(shape))
        chroma = np.abs(imgs - imgs.mean(axis=-1, keepdims=True)).mean(axis=(1, 2, 3))
        return np.argsort(-chroma, kind="stable")
    raise ValueError(f"order must be None, 'index', 'norm', 'color' or a callable; got {order!r}")


class ReceptiveFieldDisplay:
    """Filters of a fitted encoder as a grid of small images.

    Parameters
    ----------
    filters : ndarray of shape (n_filters, h * w * c)
        One filter per row, in (row, column, channel) order.
    shape : tuple
        (h, w) or (h, w, c) of one filter; c = 3 is drawn in RGB.

    Attributes (after ``plot``)
    ---------------------------
    figure_ : matplotlib Figure
    axes_ : ndarray of Axes
    images_ : list of AxesImage
    """

    def __init__(self, filters, *, shape):
        self.filters = np.asarray(filters)
        self.shape = tuple(int(s) for s in shape)
        if math.prod(self.shape) != self.filters.shape[1]:
            raise ValueError(f"shape {self.shape} does not match filters of length {self.filters.shape[1]}")

    @classmethod
    def from_estimator(cls, estimator, *, n_filters=None, order="index", shape=None):
        """Build the display from a fitted encoder's ``components_``.

        Parameters
        ----------
        estimator : fitted estimator with ``components_``
            KrotovPatchEncoder (filter shape window x window x C), or any
            encoder whose ``components_`` rows are images (give ``shape``).
        n_filters : int, optional
            Draw only the first ``n_filters`` after ordering.
        order : {"index", "norm", "color"} or callable
            "norm": largest filters first; "color": colour-selective units
            first (RGB only), as the groups of Krotov et al.'s Fig. 1; a
            callable maps the (n, d) filters to a sort key.
        shape : tuple, optional
            Filter shape; inferred for KrotovPatchEncoder.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(estimator)
        filters = getattr(estimator, "components_", None)
        if filters is None:
            raise TypeError(f"{type(estimator).__name__} has no components_ to draw")
        filters = np.asarray(filters)
        if shape is None:
            shape = _infer_shape(estimator, filters.shape[1])
        idx = _order(filters, order, shape)
        if n_filters is not None:
            idx = idx[:n_filters]
        return cls(filters[idx], shape=shape)

    def plot(self, ax=None, *, ncols=None, imshow_kw=None):
        """Draw the filters; ``ax`` is a figure-level placement: a Figure or None.

        Parameters
        ----------
        ax : matplotlib Axes or None
            If given, the grid is drawn inside this Axes' area (it is
            replaced by a grid of sub-axes); otherwise a new figure is made.
        ncols : int, optional
            Columns of the grid (default: about the square root of the count).
        imshow_kw : dict, optional
            Passed to ``imshow`` (overrides the defaults).

        Returns
        -------
        self
        """
        from sklearn.utils._optional_dependencies import check_matplotlib_support

        check_matplotlib_support("ReceptiveFieldDisplay.plot")
        import matplotlib.pyplot as plt

        n = len(self.filters)
        ncols = ncols or max(1, int(math.ceil(math.sqrt(n))))
        nrows = int(math.ceil(n / ncols))
        if ax is None:
            fig = plt.figure(figsize=(ncols * 0.6 + 0.5, nrows * 0.6 + 0.5))
            spec = fig.add_gridspec(nrows, ncols, wspace=0.05, hspace=0.05)
        else:
            fig = ax.figure
            spec = ax.get_subplotspec().subgridspec(nrows, ncols, wspace=0.05, hspace=0.05)
            ax.remove()
        imgs = filters_to_images(self.filters, self.shape)
        rgb = len(self.shape) == 3 and self.shape[-1] == 3
        kw = {"interpolation": "nearest", "vmin": 0.0, "vmax": 1.0}
        if not rgb:
            kw["cmap"] = "gray"
            if len(self.shape) == 3:
                imgs = imgs.mean(axis=-1)
        kw.update(imshow_kw or {})
        axes = np.empty((nrows, ncols), dtype=object)
        images = []
        for k in range(nrows * ncols):
            a = fig.add_subplot(spec[k // ncols, k % ncols])
            a.set_axis_off()
            axes[k // ncols, k % ncols] = a
            if k < n:
                images.append(a.imshow(imgs[k], **kw))
        self.figure_, self.axes_, self.images_ = fig, axes, images
        return self


def _infer_shape(estimator, d):
    image_shape = getattr(estimator, "image_shape_", None)
    window = getattr(estimator, "window", None)
    if image_shape is not None:
        H, W, C = image_shape
        if window is not None and window * window * C == d:
            return (window, window, C) if C > 1 else (window, window)
        if H * W * C == d:
            return (H, W, C) if C > 1 else (H, W)
    side = int(round(math.sqrt(d)))
    if side * side == d:
        return (side, side)
    raise ValueError(f"cannot infer the filter shape for rows of length {d}; pass shape=")
