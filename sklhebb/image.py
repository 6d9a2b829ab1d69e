"""Images and patches: layout (n, H, W, C), patch streams, normalisation, ZCA whitening, pooling.

Everything here works on any backend through :class:`sklhebb._backend.Backend`.
Patches are cut on the device from chunks of images; the patches of a whole
data set are never held at once (ImageNet 32x32 has two billion 4x4 patches).

A patch vector is ordered (row, column, channel) inside its window, the same
order as ``X[i, y:y+W, x:x+W, :].ravel()``. This module is the one place that
cuts patches: :func:`extract_patches` (and :func:`gather_patches`, the same
patches in a given order) for the patch streams of the encoders, and
:func:`im2col` / :func:`fold` (zero padding, then the same cutter, and its
adjoint) for the convolutional and locally connected layers of
:mod:`sklhebb.nn`.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.utils import check_array

from . import _ranks
from ._backend import Backend, is_foreign_array, to_numpy

__all__ = [
    "as_image_stack",
    "output_size",
    "extract_patches",
    "gather_patches",
    "pad_images",
    "im2col",
    "fold",
    "normalize_rows",
    "whiten_rows",
    "max_pool",
    "iter_chunks",
    "PatchStream",
]


# ----------------------------------------------------------------- layout
def as_image_stack(X, image_shape=None, *, name="X"):
    """Read ``X`` as a stack of images (n, H, W, C) without copying large arrays.

    * 4-D ``(n, H, W, C)``: as is.  3-D ``(n, H, W)``: one channel.
    * 2-D ``(n, d)`` with ``image_shape`` (H, W) or (H, W, C): reshaped rows.
    * 2-D without ``image_shape``: each row is one flat vector, read as a
      1 x 1 image with d channels (a single patch covers it).

    NumPy arrays (including ``numpy.memmap``) of a numeric dtype are kept as
    they are, so a memory-mapped uint8 data set is read chunk by chunk later;
    lists, sparse matrices and data frames go through scikit-learn's
    ``check_array`` (which gives the usual error messages). Finiteness is
    checked chunk by chunk when the data are moved to the compute device.
    """
    if not (isinstance(X, np.ndarray) or is_foreign_array(X)):
        X = check_array(X, dtype=(np.float64, np.float32), allow_nd=True, ensure_all_finite=True, input_name=name)
    if isinstance(X, np.ndarray):
        if X.dtype.kind == "c":
            raise ValueError(f"Complex data not supported; {name} has dtype {X.dtype}.")
        if X.dtype.kind not in "uifb":
            X = check_array(X, dtype=(np.float64, np.float32), allow_nd=True, input_name=name)
        if X.dtype.kind == "b":
            X = X.astype(np.float32)
    ndim = X.ndim
    if ndim < 2 or ndim > 4:
        raise ValueError(
            f"Expected 2D array (n_samples, n_features), 3D (n, H, W) or 4D (n, H, W, C) for {name}, "
            f"got {ndim}D array with shape {tuple(X.shape)}. Reshape your data, e.g. with "
            "array.reshape(-1, 1) for a single feature or array.reshape(1, -1) for a single sample."
        )
    n = X.shape[0]
    if n == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum of 1 is required.")
    if ndim == 4:
        return X
    if ndim == 3:
        return X.reshape(X.shape + (1,))
    d = X.shape[1]
    if d == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is required.")
    if image_shape is None:
        return X.reshape(n, 1, 1, d)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = shape + (1,)
    if len(shape) != 3 or math.prod(shape) != d:
        raise ValueError(
            f"image_shape={tuple(image_shape)} does not match {name} with {d} features per row (expected (H, W) or (H, W, C) with H * W * C == {d})."
        )
    return X.reshape((n,) + shape)


def output_size(size: int, window: int, stride: int) -> int:
    """Number of window positions along one axis (no padding)."""
    return (size - window) // stride + 1


# ---------------------------------------------------------------- patches
def _patch_view(bk: Backend, images, window: int, stride: int):
    """View (n, oh, ow, wy, wx, C) of every window of a (n, H, W, C) stack; no copy."""
    v = bk.sliding_windows(images, 1, window, stride)  # (n, oh, W, C, wy)
    v = bk.sliding_windows(v, 2, window, stride)  # (n, oh, ow, C, wy, wx)
    return v.permute(0, 1, 2, 4, 5, 3) if bk.name == "torch" else v.transpose(0, 1, 2, 4, 5, 3)


def extract_patches(bk: Backend, images, window: int, stride: int = 1):
    """All W x W x C patches of a chunk of images.

    images: (n, H, W, C) on ``bk``. Returns (n, oh, ow, window*window*C), a
    copy, ordered (row, column, channel) inside each window.
    """
    v = _patch_view(bk, images, window, stride)
    P = bk.xp.reshape(v, tuple(v.shape[:3]) + (window * window * images.shape[3],))
    if bk.may_share_memory(P, images):
        # 1 x 1 windows, or windows as wide as the image, reshape without a copy: callers
        # normalise the patches in place, which must never touch the user's images
        P = bk.xp.asarray(P, copy=True)
    return P


def gather_patches(bk: Backend, images, window: int, index):
    """Rows ``P[index]`` of the patch matrix of :func:`extract_patches` (stride 1).

    ``index`` holds flat patch indices (image, row, column in C order); the
    rows are copied straight from the images in that order, so cutting and
    permuting the patches cost one copy instead of two. A patch is ``window``
    runs of ``window * C`` consecutive values of the flattened stack, from its
    first value on: the copy indexes one axis of a (starts, window, window * C)
    view by those first values (65,536 CIFAR-shaped 4 x 4 patches, 1 thread:
    torch 4.7 ms against 6.5 ms for three indices into the window view).
    Returns (len(index), window*window*C).
    """
    xp = bk.xp
    n, H, W, C = images.shape
    oh, ow = H - window + 1, W - window + 1
    i, rest = index // (oh * ow), index % (oh * ow)
    first = i * (H * W * C) + (rest // ow) * (W * C) + (rest % ow) * C
    flat = xp.reshape(images, (-1,))  # a copy only if the chunk is not contiguous
    starts = flat.shape[0] - (window - 1) * W * C - window * C + 1  # every first value whose patch is inside
    runs = bk.as_strided(flat, (starts, window, window * C), (1, W * C, 1))
    return xp.reshape(runs[first], (first.shape[0], window * window * C))


def pad_images(bk: Backend, x, top: int, bottom: int, left: int, right: int):
    """Zero-pad the two spatial axes of a (B, H, W, C) map (pads >= 0); no copy when all are 0."""
    if top == bottom == left == right == 0:
        return x
    B, H, W, C = x.shape
    out = bk.zeros((B, H + top + bottom, W + left + right, C), dtype=x.dtype)
    out[:, top : top + H, left : left + W, :] = x
    return out


def im2col(bk: Backend, x, k: int, top: int, left: int):
    """Patches of a (B, H, W, C) map for a k x k 'same' correlation at stride 1.

    The map is zero-padded by ``top``/``left`` before and k-1-top / k-1-left
    after, then cut by :func:`extract_patches`: returns (B, H, W, k*k*C), the
    patch of output position (h, w) covering input rows h - top .. h - top + k - 1
    (zero outside the map), ordered (row, column, channel), so that a filter
    bank of shape (k, k, C, F) reshaped to (k*k*C, F) multiplies it. For
    k = 1 the map itself is returned.
    """
    if k == 1:
        return x
    return extract_patches(bk, pad_images(bk, x, top, k - 1 - top, left, k - 1 - left), k, 1)


def fold(bk: Backend, cols, k: int, top: int, left: int):
    """Adjoint of :func:`im2col`: add every patch entry back onto its pixel.

    cols: (B, H, W, k*k*C). Returns (B, H, W, C): pixel (h', w') receives the
    entries of every window that covers it (the padding's entries are
    dropped). The loop runs over the k*k offsets inside the window (strided
    adds), never over positions.
    """
    B, H, W = cols.shape[:3]
    C = cols.shape[-1] // (k * k)
    cols = bk.xp.reshape(cols, (B, H, W, k, k, C))
    out = bk.zeros((B, H + k - 1, W + k - 1, C), dtype=cols.dtype)
    for u in range(k):
        for v in range(k):
            out[:, u : u + H, v : v + W, :] += cols[:, :, :, u, v, :]
    return out[:, top : top + H, left : left + W, :]


def row_means(bk: Backend, P):
    """Mean over the last axis, keeping it (shape (..., 1)).

    The row sums are one product with a vector of ones, 6x faster than a
    reduction over a short last axis (65,536 x 48 float32, one thread: 0.3 ms
    against 1.8 ms); summing before dividing keeps the mean of a constant row
    exact for values like 0.5, so a constant patch centres to exact zeros.
    """
    ones = bk.asarray(np.ones(P.shape[-1]), dtype=str(P.dtype).split(".")[-1])
    return ((P @ ones) / P.shape[-1])[..., None]


def normalize_rows(bk: Backend, P, *, center: bool = False, inplace: bool = False):
    """Scale every row (last axis) of ``P`` to a unit vector; zero rows stay zero.

    With ``center=True`` each row's mean is subtracted first, and constant rows
    become exact zeros. Never divides by zero: rows with norm 0 (black or
    constant patches) give exact zeros.
    ``inplace=True`` overwrites ``P`` (a fresh array the caller owns) instead
    of allocating two more of its size.
    """
    xp = bk.xp
    if center:
        # shift by each row's first entry before taking the mean: the centred row is the
        # same, and a constant row becomes exact zeros (for values like k/255, x - mean(x)
        # rounds to noise, which the scaling below would blow up to a unit vector)
        first = xp.asarray(P[..., :1], copy=True)
        if inplace:
            P -= first
        else:
            P = P - first
        mean = row_means(bk, P)
        P -= mean
    norm = bk.row_norms(P)
    # rows whose norm underflows are treated as empty: 1/0 never happens
    tiny = np.finfo(str(P.dtype).split(".")[-1]).tiny
    inv = 1.0 / xp.where(norm > tiny, norm, xp.ones_like(norm))
    inv = xp.where(norm > tiny, inv, xp.zeros_like(inv))
    if inplace:
        P *= inv
        return P
    return P * inv


# patches a whitening is fitted on (at most): 100,000 x 25 floats for 5 x 5 grey patches
WHITENING_SAMPLES = 100_000


def whiten_rows(bk: Backend, P, whitening, *, normalize: bool):
    """ZCA-whitened rows ``(P - mean) @ W`` (``whitening = (mean, W)`` on ``bk``; W is symmetric).

    With ``normalize`` the whitened rows are scaled to unit vectors again, so
    that the encoders see unit-norm patches as on the path without whitening.
    """
    mean, W = whitening
    P = (P - mean) @ W
    return normalize_rows(bk, P, inplace=True) if normalize else P


def zca_matrix(mean, second_moment, eps: float):
    """(mean, (Sigma + eps' I)^(-1/2)) from a sample's mean and mean outer product, in float64 NumPy.

    ``eps`` is relative: eps' = eps * trace(Sigma) / d, the average eigenvalue
    times ``eps``. For patches scaled to unit variance per pixel (Coates & Ng
    2011) eps' = eps, so their 0.1 carries over to patches of any scale (the
    unit-norm patches here have a variance of about 1/d per pixel).
    """
    mean = np.asarray(mean, dtype=np.float64)
    sigma = np.asarray(second_moment, dtype=np.float64) - np.outer(mean, mean)
    sigma = (sigma + sigma.T) / 2
    lam, U = np.linalg.eigh(sigma)
    lam = np.clip(lam, 0.0, None)
    scale = float(lam.sum()) / lam.size
    eps_abs = eps * (scale if scale > 0 else 1.0)
    return mean, (U / np.sqrt(lam + eps_abs)) @ U.T


def max_pool(bk: Backend, F, size: int, stride: int):
    """Max-pool a (n, h, w, K) map over its two spatial axes.

    Separable (rows, then columns). Along an axis, with g = gcd(size, stride):
    the maximum of each run of g rows first (a reduction over a reshaped copy),
    then of size / g neighbouring runs, as elementwise maxima of strided slices
    (every pass reads whole rows of K contiguous values). Measured on a
    (4, 24, 24, 400) map, window 8 stride 4, one thread: 0.15 ms against
    0.19 ms for a max over sliding-window views, whose window axis is strided.
    ``size`` larger than the map is clipped to it (global max pooling).
    """
    for axis in (1, 2):
        F = _max_pool_axis(bk, F, axis, min(size, F.shape[axis]), stride)
    return F


def _max_pool_axis(bk: Backend, F, axis: int, size: int, stride: int):
    """Max-pool ``F`` along ``axis`` alone (windows of ``size``, every ``stride``)."""
    xp = bk.xp
    n_out = (F.shape[axis] - size) // stride + 1
    g = math.gcd(size, stride)
    span = (n_out - 1) * stride + size  # the rows some window reads

    def rows(a, start, stop, step=1):
        return a[(slice(None),) * axis + (slice(start, stop, step),)]

    runs = rows(F, 0, span)
    if g > 1:  # the maximum of each run of g rows
        runs = xp.max(xp.reshape(runs, F.shape[:axis] + (span // g, g) + F.shape[axis + 1 :]), axis=axis + 1)
    step, stop = stride // g, (n_out - 1) * (stride // g) + 1
    out = rows(runs, 0, stop, step)
    for j in range(1, size // g):  # window i covers runs i * step ... i * step + size / g - 1
        out = xp.maximum(out, rows(runs, j, j + stop, step))
    return out


def pooled_size(h: int, size: int, stride: int) -> int:
    return output_size(h, min(size, h), stride)


# ----------------------------------------------------------------- chunks
def iter_chunks(n: int, chunk: int, order=None):
    """Yield index arrays (or slices) of at most ``chunk`` items, in ``order``."""
    for start in range(0, n, chunk):
        if order is None:
            yield slice(start, min(start + chunk, n))
        else:
            yield np.sort(order[start : start + chunk])


def to_device_chunk(bk: Backend, X, index, dtype: str, *, name="X"):
    """Copy ``X[index]`` to the device as ``dtype``, refusing NaN and infinity."""
    chunk = X[index]
    if not is_foreign_array(chunk):
        chunk = np.asarray(chunk)
        if chunk.dtype.kind == "f" and not np.isfinite(chunk).all():
            raise ValueError(f"Input {name} contains NaN or infinity.")
    out = bk.asarray(chunk, dtype=dtype)
    if is_foreign_array(chunk) and not bool(bk.xp.all(bk.xp.isfinite(out))):
        raise ValueError(f"Input {name} contains NaN or infinity.")
    return out


class PatchStream:
    """Minibatches of normalised patches cut on the fly from a stack of images.

    Parameters
    ----------
    bk : Backend
    images : array (n, H, W, C), host (NumPy, memmap) or on ``bk``
    window : int or None
        Patch side; None means one patch = the whole image.
    batch_size : int
        Patches per minibatch. Batches carry over chunk boundaries, so every
        batch but the last of a pass has exactly ``batch_size`` patches.
    chunk_size : int
        Images cut into patches at a time (bounds host and device memory).
    dtype : str
    center : bool
        Subtract each patch's mean before unit normalisation.
    normalize : bool
        Scale each patch to unit norm (False: raw, or only centred, patches).
    y : array (n,) of int, optional
        A label per image (host): every patch carries its image's label. It
        travels chunk by chunk with the images (moved as int64).
    whitening : (mean, W) on ``bk``, optional
        ZCA whitening applied to every patch after the normalisation above
        (:func:`whiten_rows`; then normalised again when ``normalize``), as
        fitted by :meth:`fit_whitening`.

    ``epoch(rng)`` yields one pass of ``n_batches`` minibatches: patch rows, or
    ``(rows, labels)`` with ``y``. With an ``rng`` the image order is permuted and the patches inside
    each chunk are shuffled; with None the patches come in order (image by
    image, row-major positions).
    """

    def __init__(self, bk, images, window, batch_size, chunk_size, dtype, center=False, normalize=True, y=None, whitening=None):
        self.bk = bk
        self.images = images
        n, H, W, C = images.shape
        self.window = window
        self.win = (H, W) if window is None else (window, window)
        if self.win[0] > H or self.win[1] > W:
            raise ValueError(f"window={window} is larger than the images ({H} x {W}); choose window <= {min(H, W)}.")
        if y is not None and len(y) != n:
            raise ValueError(f"y has {len(y)} labels but there are {n} images.")
        self.batch_size = int(batch_size)
        self.chunk_size = max(1, int(chunk_size))
        self.dtype = dtype
        self.center = center
        self.normalize = normalize
        self.whitening = whitening
        self.y = None if y is None else np.asarray(y)
        self.per_image = output_size(H, self.win[0], 1) * output_size(W, self.win[1], 1)
        self.n_patches = n * self.per_image
        self.n_batches = -(-self.n_patches // self.batch_size)

    @property
    def n_items(self):
        """Patches in one pass."""
        return self.n_patches

    def empty(self):
        """A minibatch of no patches, shaped like the others (a data-parallel rank whose shard has run out)."""
        bk = self.bk
        rows = bk.zeros((0, self.win[0] * self.win[1] * self.images.shape[-1]), dtype=bk.dtype(self.dtype))
        return rows if self.y is None else (rows, bk.zeros((0,), dtype=bk.dtype("int64")))

    def _patches(self, chunk, order=None):
        """The chunk's patches as rows, in ``order`` (flat patch indices) when given.

        Always a fresh array (never a view of the user's data), centred and
        normalised in place, then whitened (``whitening``). With an ``order`` the rows are gathered straight
        from the window view in that order: cutting and shuffling are one copy.
        """
        bk, xp = self.bk, self.bk.xp
        if self.window is None:
            P = xp.reshape(chunk, (chunk.shape[0], -1))
            P = xp.take(P, order, axis=0) if order is not None else xp.asarray(P, copy=True)
        elif order is None:
            P = extract_patches(bk, chunk, self.window, 1)
            P = xp.reshape(P, (-1, P.shape[-1]))
        else:
            P = gather_patches(bk, chunk, self.window, order)
        if self.normalize:
            P = normalize_rows(bk, P, center=self.center, inplace=True)
        elif self.center:
            P -= row_means(bk, P)
        if self.whitening is not None:
            P = whiten_rows(bk, P, self.whitening, normalize=self.normalize)
        return P

    def fit_whitening(self, n_samples: int, eps: float, rng):
        """ZCA whitening of this stream's normalised patches, fitted on a sample of at most ``n_samples``.

        The sample is drawn uniformly (with replacement; every patch once when
        ``n_samples`` covers them all) from ``rng`` and cut chunk by chunk (under
        ``data_parallel`` from every rank's shard, the sums combined over the ranks):
        only a chunk's sampled patches and the float64 sums of the patches and
        their outer products are held at once. Returns float64 NumPy
        ``(mean, W)`` with ``W = (Sigma + eps' I)^(-1/2)`` (:func:`zca_matrix`),
        for the ``whitening`` of a stream (moved to its device).
        """
        if self.whitening is not None:
            raise ValueError("fit_whitening fits the whitening of unwhitened patches; this stream whitens already.")
        bk, xp = self.bk, self.bk.xp
        total = self.n_patches
        flat = np.arange(total) if n_samples >= total else np.sort(rng.randint(0, total, size=int(n_samples)))
        d = self.win[0] * self.win[1] * self.images.shape[3]
        f64 = bk.dtype("float64")
        s1, s2 = bk.zeros((d,), dtype=f64), bk.zeros((d, d), dtype=f64)
        bounds = np.searchsorted(flat, np.arange(0, self.images.shape[0] + self.chunk_size, self.chunk_size) * self.per_image)
        for c, index in enumerate(iter_chunks(self.images.shape[0], self.chunk_size)):
            lo, hi = bounds[c], bounds[c + 1]
            if lo == hi:
                continue
            chunk = to_device_chunk(bk, self.images, index, self.dtype)
            order = bk.asarray(flat[lo:hi] - index.start * self.per_image, dtype="int64")
            P = xp.astype(self._patches(chunk, order), f64)
            s1 = s1 + xp.sum(P, axis=0)
            s2 = s2 + P.T @ P
        # under data_parallel the sums (and sample sizes) of every rank's sample, so all ranks whiten alike
        s1, s2, m = _ranks.sum_over_ranks(bk, s1, s2, bk.zeros((1,), dtype=f64) + float(flat.size))
        m = float(to_numpy(m)[0])
        return zca_matrix(to_numpy(s1) / m, to_numpy(s2) / m, eps)

    def _pieces(self, rng):
        """The epoch as (chunk, labels, perm, lo, hi, last) pieces, in minibatch order.

        Rows ``lo:hi`` of the chunk's patch order (``perm``, flat patch indices,
        or None for in-order) belong to the current minibatch; ``last`` says
        that they complete it; ``labels`` are the chunk's image labels on the
        device (None without ``y``). A minibatch that spans two chunks comes as
        several pieces; the final short one ends with
        ``(None, None, None, 0, 0, True)``. With an ``rng`` the image order is
        permuted and the patches inside each chunk are shuffled.
        """
        bk, B = self.bk, self.batch_size
        n = self.images.shape[0]
        order = None if rng is None else rng.permutation(n)
        carried = 0  # rows of the current minibatch taken from earlier chunks
        for index in iter_chunks(n, self.chunk_size, order):
            chunk = to_device_chunk(bk, self.images, index, self.dtype)
            labels = None if self.y is None else bk.asarray(self.y[index], dtype="int64")
            n_p = chunk.shape[0] * self.per_image
            perm = None if rng is None else affine_permutation(bk, n_p, rng)
            start = 0
            if carried:
                # complete the minibatch begun in the last chunk
                start = min(B - carried, n_p)
                carried += start
                yield chunk, labels, perm, 0, start, carried == B
                if carried < B:
                    continue
                carried = 0
            n_full = start + ((n_p - start) // B) * B
            for b in range(start, n_full, B):
                yield chunk, labels, perm, b, b + B, True
            if n_full < n_p:
                yield chunk, labels, perm, n_full, n_p, False
                carried = n_p - n_full
        if carried:
            yield None, None, None, 0, 0, True

    def _index(self, perm, lo, hi):
        """Flat patch indices (image, row, column in C order) of rows ``lo:hi`` of a chunk's patch order."""
        return perm[lo:hi] if perm is not None else self.bk.arange(hi - lo) + lo

    def epoch(self, rng=None):
        """One pass of minibatches: normalised patch rows (fresh arrays), with their labels given ``y``."""
        xp = self.bk.xp
        current, P, pending, pending_y = None, None, [], []
        for chunk, labels, perm, lo, hi, last in self._pieces(rng):
            if chunk is not None:
                if chunk is not current:
                    # cut (and shuffle) the whole chunk at once, then slice
                    current, P = chunk, self._patches(chunk, perm)
                rows = P[lo:hi]
                lab = None if labels is None else xp.take(labels, self._index(perm, lo, hi) // self.per_image)
                if last and not pending:
                    yield rows if lab is None else (rows, lab)
                    continue
                pending.append(rows)  # a minibatch across chunks copies only its own rows
                pending_y.append(lab)
            if last:
                rows = xp.concat(pending, axis=0)
                yield rows if self.y is None else (rows, xp.concat(pending_y, axis=0))
                pending, pending_y = [], []

    def epoch_indices(self, rng=None):
        """The same pass as :meth:`epoch`, as ``(pieces, rows)`` items (without labels).

        Unwhitened, every minibatch comes uncut: ``(pieces, None)``, with
        ``pieces`` a list of ``(chunk, index)``, ``index`` flat patch indices
        (image, row, column in C order) of ``chunk``, one piece per chunk the
        minibatch spans, in row order, for a kernel that cuts and normalises
        the patches itself. A whitening stream's minibatches come cut:
        ``(None, rows)``. Same minibatches, in the same order, as :meth:`epoch`
        with the same ``rng``.
        """
        if self.y is not None:
            raise ValueError("epoch_indices streams unlabelled patches; use epoch() for a stream with y.")
        xp = self.bk.xp
        pending = []
        for chunk, _, perm, lo, hi, last in self._pieces(rng):
            if chunk is not None:
                index = self._index(perm, lo, hi)
                pending.append((chunk, index) if self.whitening is None else self._patches(chunk, index))
            if last:
                yield (pending, None) if self.whitening is None else (None, xp.concat(pending, axis=0))
                pending = []


def affine_permutation(bk, n: int, rng):
    """A random permutation i -> (a * i + b) mod n of range(n), computed on the device.

    ``a`` (coprime with n) and ``b`` are drawn on the host, so only two
    integers cross to the device (not n indices) and every backend gets the
    same permutation from the same ``rng``. Consecutive outputs are ``a``
    apart in the input, so a minibatch mixes patches from the whole chunk.
    """
    if n <= 1:
        return bk.arange(n)
    while True:
        a = int(rng.randint(1, n))
        if math.gcd(a, n) == 1:
            break
    b = int(rng.randint(0, n))
    return (bk.arange(n) * a + b) % n
