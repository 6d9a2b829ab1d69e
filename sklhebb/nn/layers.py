"""Layers with forward weights W and feedback weights R of the same shape.

Every layer has an explicit forward pass and an explicit feedback pass; the
training path never calls autograd. Images are laid out (B, H, W, C) and a
weight layer maps its input x to the field h and the output
``x_out = sigma(h) = clip(s h, -1, 1)`` (or ``h`` for a linear layer, the
output layer).

The feedback pass of a weight layer is split in three explicit steps so that
a caller can interleave weight updates (pre- or post-update propagation):

``error(g, cache)``
    E = sigma'(h) * g, the error at the field from the error g arriving at
    the output.
``increment(E, cache)``
    the Hebbian increment (1/B) x^T E (summed over positions for a
    convolution), shared by W and R; plus the bias increment.
``propagate(E, F, cache)``
    the error sent to the input through the feedback weights F (R, or W for
    back-propagation): E F^T for a dense layer, the transposed convolution for
    a convolution.

The learning increment is the caller's choice: ``increment`` is URFB's
Hebbian x^T delta (:func:`sklhebb.rules.hebbian_increment`), and the dense
and locally connected layers also offer ``competitive_increment``, Zhou's
local competitive rule (Eq. 4, :func:`sklhebb.rules.competitive_update`)
restricted to the layer's connections. Both are the same outer product of a
presynaptic and a postsynaptic signal over the layer's connectivity; only the
signals differ.

Layers without weights have ``propagate(g, cache)`` only and return one error
per parent. Shapes exclude the batch axis.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import device as array_device

from .. import rules
from .._backend import backend_of
from ..image import fold, im2col, pad_images

__all__ = ["Layer", "Dense", "Conv", "UntiedConv", "UntiedDense", "MaxPool", "Dropout", "Sum"]


# ------------------------------------------------------------------ helpers
def _same_pads(k):
    """TensorFlow 'SAME' padding at stride 1: (before, after) with before <= after."""
    before = (k - 1) // 2
    return before, k - 1 - before


def _image(in_shape, name):
    """(H, W, C) of an image input, or a clear error naming the layer."""
    if len(in_shape) != 3:
        raise ValueError(f"{name} needs an image input (H, W, C); got shape {in_shape}")
    return in_shape


def _glorot(rng, shape, fan_in, fan_out, dtype):
    b = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-b, b, size=shape).astype(dtype)


def _clip_unit_(bk, h):
    """clip(h, -1, 1) in place (the array API's clip has no ``out``)."""
    if bk.name == "torch":
        h.clamp_(-1.0, 1.0)
    else:
        bk.native.clip(h, -1.0, 1.0, out=h)
    return h


_COMPARE = {"equal": {"torch": "eq"}}


def _compare_into(bk, op, a, b, out):
    """out = 1.0 where ``a op b`` (op: "equal"), else 0.0; ``out`` is a
    float array and may be ``a`` itself.

    A float mask keeps the products that use it float x float: torch's CPU
    kernels are slow for bool outputs and bool x float products (3.1M float32
    entries, one thread: a < b 2.6 ms into bool against 0.8 ms into float;
    g * mask 19 ms with a bool mask against 1.5 ms with a float one).
    """
    getattr(bk.native, _COMPARE[op].get(bk.name, op))(a, b, out=out)
    return out


def _empty(xp, shape, like):
    return xp.empty(shape, dtype=like.dtype, device=array_device(like))


class Layer:
    """Base class. ``build(in_shapes)`` fixes the shapes; see the module docstring."""

    has_weights = False
    n_parents = 1
    #: ``propagate`` always returns new arrays that nothing else holds, so the
    #: feedback pass may overwrite them (weight layers: a matrix product;
    #: pooling: a new map). Off unless a layer says so.
    new_feedback = False

    def build(self, in_shapes):
        self.in_shape = tuple(in_shapes[0])
        self.out_shape = self._out_shape(self.in_shape)
        return self.out_shape

    def _out_shape(self, in_shape):
        return in_shape

    def describe(self):
        return type(self).__name__.lower()

    def __repr__(self):
        return f"<{self.describe()}>"


class _WeightLayer(Layer):
    has_weights = True
    new_feedback = True
    activation = True
    scale = 0.5  # set by the network (``ramp_scale``)
    bias = False  # set by the network (``use_bias``)

    def _act(self, bk, h, train):
        """Output and what the feedback needs: sigma'(h) as a float array (s
        where the output is not saturated, read from the output as the
        paper-era code does: |sigma(h)| < 1), or None for the linear output
        layer.

        ``h`` is the layer's own fresh field (a matrix product's result), so the
        ramp clip(s h, -1, 1) is applied in place, and the slope is built in
        place in one new array: on the 28x28x32 maps of deepnet every avoided
        temporary is a 50 MB allocation, which torch's CPU allocator maps (and
        page-faults) afresh every time.
        """
        if not self.activation:
            return h, None
        h *= self.scale
        _clip_unit_(bk, h)
        if not train:
            return h, None
        return h, rules.saturated_linear_slope(h, self.scale)

    def error(self, g, cache, *, inplace=False):
        """E = sigma'(h) * g (the slope cached by the forward pass).

        g * (s [|y| < 1]) equals the textbook (g * s) * [|y| < 1] bit for bit.
        ``inplace=True`` (the caller owns g and drops it) writes E over g.
        """
        slope = cache[-1]
        if slope is None:
            return g
        if inplace:
            g *= slope
            return g
        return g * slope

    def init_bias(self, dtype):
        return np.zeros(self.bias_shape, dtype=dtype)

    def connections(self, dtype):
        """0/1 array, broadcastable to the weights, of the connections that exist; None for all."""
        return None

    def truncated_normal(self, rng, std, dtype, bound=2.0):
        """Initial weights N(0, std^2) truncated at +-``bound`` std (Zhou's init), drawn on the host.

        Draws outside the bound are redrawn. Weights of connections the layer
        does not have (:meth:`connections`) are zero, and stay zero under the
        competitive rule.
        """
        z = rng.standard_normal(size=self.weight_shape)
        bad = np.abs(z) > bound
        while bad.any():
            z[bad] = rng.standard_normal(size=int(bad.sum()))
            bad = np.abs(z) > bound
        W = (z * std).astype(dtype)
        mask = self.connections(dtype)
        return W if mask is None else W * mask


# -------------------------------------------------------------------- dense
class Dense(_WeightLayer):
    """Fully connected layer ("full 500"): h = flatten(x) W (+ b).

    W, R: (n_in, n_out).
    """

    def __init__(self, units, activation=True):
        self.units = int(units)
        self.activation = activation

    def _out_shape(self, in_shape):
        self.n_in = math.prod(in_shape)
        self.weight_shape = (self.n_in, self.units)
        self.bias_shape = (self.units,)
        return (self.units,)

    def init_weights(self, rng, dtype):
        return _glorot(rng, self.weight_shape, self.n_in, self.units, dtype)

    def forward(self, bk, p, x, *, train=False, mask=None):
        x2 = bk.xp.reshape(x, (x.shape[0], self.n_in))
        h = x2 @ p["W"]
        if self.bias:
            h = h + p["b"]
        y, slope = self._act(bk, h, train)
        return y, ((x2, slope) if train else None)

    def increment(self, E, cache):
        x2 = cache[0]
        inc = {"W": rules.hebbian_increment(x2, E)}
        if self.bias:
            inc["b"] = _sum0(E) / E.shape[0]
        return inc

    def propagate(self, E, F, cache):
        g = rules.feedback_error(E, F, None)
        return _reshape(g, (E.shape[0],) + self.in_shape)

    def competitive_increment(self, W, x, y, rates=None):
        """Zhou's Eq. (4) change of W from the layer's input x and net input y (one forward pass).

        x: (B, n_in) (any shape of n_in entries per sample), y: (B, n_out),
        rates: per-sample signed rates r_b or None. See
        :func:`sklhebb.rules.competitive_update`.
        """
        B = x.shape[0]
        return rules.competitive_update(W, _reshape(x, (B, self.n_in)), Y=_reshape(y, (B, self.units)), rates=rates)

    def describe(self):
        return f"full {self.units}" if self.activation else f"output {self.units}"


def _reshape(g, shape):
    return backend_of(g).xp.reshape(g, shape)


def _sum0(E):
    return backend_of(E).xp.sum(E, axis=0)


# --------------------------------------------------------------------- conv
class Conv(_WeightLayer):
    """Convolution, stride 1, 'same' zero padding ("conv 32 5x5").

    W, R: (k, k, C_in, C_out), TensorFlow's 'SAME' split of the padding (the
    extra row/column after, for even k). Built on the backend's three
    convolution steps (:meth:`~sklhebb._backend.Backend.conv_lower`,
    ``conv_apply``, ``conv_weight``): im2col patches times W reshaped to
    (k*k*C_in, C_out) on NumPy/CuPy, torch's native kernels on torch. The
    feedback is the transposed convolution, computed as the correlation of
    the error with the flipped, channel-swapped bank F (padding mirrored).
    """

    def __init__(self, filters, size, activation=True):
        self.filters = int(filters)
        self.size = int(size)
        self.activation = activation

    def _out_shape(self, in_shape):
        H, W, C = _image(in_shape, "conv")
        k = self.size
        self.weight_shape = (k, k, C, self.filters)
        self.bias_shape = (self.filters,)
        self.pads = _same_pads(k)
        return (H, W, self.filters)

    def init_weights(self, rng, dtype):
        k, _, C, F = self.weight_shape
        return _glorot(rng, self.weight_shape, k * k * C, k * k * F, dtype)

    def forward(self, bk, p, x, *, train=False, mask=None):
        low = bk.conv_lower(x, self.size, self.pads[0])
        h = bk.conv_apply(low, p["W"])
        if self.bias:
            h = h + p["b"]
        y, act = self._act(bk, h, train)
        return y, ((low, act) if train else None)

    def increment(self, E, cache):
        # the sum over positions of the Hebbian products, averaged over the batch
        B = E.shape[0]
        inc = {"W": backend_of(E).conv_weight(cache[0], E) / B}
        if self.bias:
            inc["b"] = backend_of(E).xp.sum(E, axis=(0, 1, 2)) / B
        return inc

    def propagate(self, E, F, cache):
        bk = backend_of(E)
        xp = bk.xp
        # transposed convolution = correlation with the flipped, channel-swapped
        # bank, padding mirrored
        Ff = xp.permute_dims(xp.flip(F, axis=(0, 1)), (0, 1, 3, 2))
        return bk.conv_apply(bk.conv_lower(E, self.size, self.pads[1]), Ff)

    def describe(self):
        return f"conv {self.filters} {self.size}x{self.size}"


# ------------------------------------------------------------------- untied
class _Untied:
    """What the two stores of a locally connected layer share: filters, window size, activation, start."""

    def __init__(self, filters, size, activation=True, init="copy"):
        self.filters = int(filters)
        self.size = int(size)
        self.activation = activation
        self.init = init


class UntiedConv(_Untied, _WeightLayer):
    """Locally connected ("untied") convolution: the locally connected layer of the kit.

    The connectivity of a stride-1 'same' convolution, but every output
    position has its own filter, updated with its own increment (no sum over
    positions): Amit's untied layers (Section 4.1) and Zhou's locally
    connected layers (Section V). W, R: (H, W, k, k, C_in, C_out), or
    (H, W, k*k*C_in, C_out), the same memory. Computed as one batched matrix
    product over positions (positions x (B, k*k*C_in) @ (k*k*C_in, C_out)) on
    the patches of :func:`sklhebb.image.im2col`; the feedback folds the patch
    errors back onto the map (:func:`sklhebb.image.fold`).

    Learning increments: :meth:`increment` (URFB's x^T delta per position) or
    :meth:`competitive_increment` (Zhou's Eq. 4 restricted to the layer's
    connections).

    ``init="copy"`` starts every position from the same Glorot-drawn filter (the
    author's code: the untied layer starts as the exact map of a convolution);
    ``init="independent"`` draws every position separately.
    """

    def _out_shape(self, in_shape):
        H, W, C = _image(in_shape, "untied conv")
        k = self.size
        self.weight_shape = (H, W, k, k, C, self.filters)
        self.bias_shape = (H, W, self.filters)
        self.pads = _same_pads(k)
        return (H, W, self.filters)

    def init_weights(self, rng, dtype):
        H, W, k, _, C, F = self.weight_shape
        if self.init == "copy":
            w = _glorot(rng, (k, k, C, F), k * k * C, k * k * F, dtype)
            return np.ascontiguousarray(np.broadcast_to(w, self.weight_shape))
        return _glorot(rng, self.weight_shape, k * k * C, k * k * F, dtype)

    def connections(self, dtype):
        """1 where a filter entry sees a pixel of the map, 0 where it sees the zero padding: (H, W, k, k, 1, 1)."""
        H, W, k = self.weight_shape[:3]
        top = self.pads[0]
        inside = np.zeros((H + k - 1, W + k - 1), dtype=dtype)
        inside[top : top + H, top : top + W] = 1
        return np.lib.stride_tricks.sliding_window_view(inside, (k, k))[:, :, :, :, None, None]

    def _mats(self, xp, W):
        H, Wd, k, _, C, F = self.weight_shape
        return xp.reshape(W, (H * Wd, k * k * C, F))

    def _per_position(self, xp, A, n):
        """(B, H, W, n) (or B rows of H*W*n entries) -> (H*W, B, n): one matrix per position."""
        H, Wd = self.in_shape[:2]
        return xp.permute_dims(xp.reshape(A, (A.shape[0], H * Wd, n)), (1, 0, 2))

    def _patches(self, bk, x):
        """The k x k patch of every position of a (B, H, W, C_in) map, as (H*W, B, k*k*C_in)."""
        H, Wd, k, _, C, F = self.weight_shape
        x = bk.xp.reshape(x, (x.shape[0],) + self.in_shape)
        return self._per_position(bk.xp, im2col(bk, x, k, self.pads[0], self.pads[0]), k * k * C)

    @staticmethod
    def _outer(xp, Pm, Em):
        """sum over the batch of patch x post-synaptic signal, per position: (H*W, k*k*C_in, C_out)."""
        return xp.matrix_transpose(Pm) @ Em

    def forward(self, bk, p, x, *, train=False, mask=None):
        xp = bk.xp
        H, Wd, k, _, C, F = self.weight_shape
        Pm = self._patches(bk, x)  # (HW, B, kkC)
        B = Pm.shape[1]
        h = Pm @ self._mats(xp, p["W"])  # (HW, B, F)
        h = xp.permute_dims(h, (1, 0, 2))  # (B, HW, F)
        if self.bias:
            h = h + xp.reshape(p["b"], (H * Wd, F))
        y, slope = self._act(bk, h, train)
        y = xp.reshape(y, (B, H, Wd, F))
        return y, ((Pm, slope) if train else None)

    def error(self, g, cache, *, inplace=False):
        Pm = cache[0]
        g3 = _reshape(g, (Pm.shape[1], Pm.shape[0], self.filters))
        return super().error(g3, cache, inplace=inplace)  # (B, HW, F), like the cached output

    def increment(self, E, cache):
        xp = backend_of(E).xp
        Pm = cache[0]
        Em = xp.permute_dims(E, (1, 0, 2))  # (HW, B, F)
        dW = self._outer(xp, Pm, Em) / Pm.shape[1]
        inc = {"W": xp.reshape(dW, self.weight_shape)}
        if self.bias:
            inc["b"] = xp.reshape(xp.sum(E, axis=0) / E.shape[0], self.bias_shape)
        return inc

    def propagate(self, E, F, cache):
        """The error (or any output-shaped signal) sent to the input through F: (B, H, W, C_in).

        E: (B, H, W, C_out) or (B, H*W, C_out); per position E_p F_p^T, folded
        back onto the map.
        """
        bk = backend_of(E)
        xp = bk.xp
        H, Wd, k, _, C, Fo = self.weight_shape
        B = E.shape[0]
        Em = self._per_position(xp, E, Fo)  # (HW, B, F)
        gP = Em @ xp.matrix_transpose(self._mats(xp, F))  # (HW, B, kkC)
        gP = xp.reshape(xp.permute_dims(gP, (1, 0, 2)), (B, H, Wd, k * k * C))
        return fold(bk, gP, k, self.pads[0], self.pads[0])

    def competitive_increment(self, W, x, y, rates=None):
        """Zhou's Eq. (4) for this locally connected layer (Section V), in W's layout.

        The dense rule with the weights outside each unit's k x k window fixed
        at zero: the reconstruction sum_k y_k w_ik of input pixel i runs over
        every output unit whose window covers i (:meth:`propagate`, the
        reconstruction of the whole map), and each position's filter changes
        by (1/B) patches(x - reconstruction)_p^T (r y_p). Entries that see the
        zero padding get a zero change, so they stay at zero if they start
        there.

        x: (B, H, W, C_in) (or B rows of as many entries); y: net input from
        the same forward pass, (B, H, W, C_out) or rows. It may hold
        contributions of other weight blocks (the label block of Zhou's first
        layer); the rule then applies to this block with its own
        reconstruction, which equals the rule on the concatenated input.
        """
        bk = backend_of(W)
        xp = bk.xp
        B = x.shape[0]

        def outer(E, RY):
            return xp.reshape(self._outer(xp, self._patches(bk, E), self._per_position(xp, RY, self.filters)), W.shape)

        return rules.competitive_update(
            W,
            xp.reshape(x, (B,) + self.in_shape),
            Y=xp.reshape(y, (B,) + self.out_shape),
            rates=rates,
            transpose=lambda W, Y: self.propagate(Y, W, None),
            outer=outer,
        )

    def describe(self):
        return f"untied {self.filters} {self.size}x{self.size}"


class UntiedDense(_Untied, Dense):
    """A locally connected layer stored as one dense matrix (the author's code).

    The exact matrix W~ of shape (H*W*C_in, H*W*C_out) of a stride-1 'same'
    k x k convolution: entries outside the convolution's connectivity are
    zero and stay zero (the network's masks include :meth:`support`), entries
    inside are updated separately (untied). ``init="copy"`` fills every
    position with the same Glorot-drawn filter, so the layer starts as the
    convolution's exact map (the code's conversion); "independent" draws them
    separately. Memory grows as (H*W)^2, so it suits small maps; prefer
    :class:`UntiedConv` otherwise (the same function, stored compactly).
    """

    def _out_shape(self, in_shape):
        H, W, C = _image(in_shape, "sparse (untied dense)")
        self.units = H * W * self.filters
        super()._out_shape(in_shape)
        return (H, W, self.filters)

    def _pairs(self):
        """(offset u, v, input positions, output positions) of the connectivity."""
        H, W, _ = self.in_shape
        k = self.size
        top = (k - 1) // 2
        ys, xs = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
        for u in range(k):
            for v in range(k):
                yi, xi = ys + u - top, xs + v - top
                ok = (yi >= 0) & (yi < H) & (xi >= 0) & (xi < W)
                yield u, v, (yi * W + xi)[ok], (ys * W + xs)[ok]

    def connections(self, dtype):
        return self.support(dtype)

    def competitive_increment(self, W, x, y, rates=None):
        """Eq. (4) of the dense matrix, kept to the convolution's connections (the authors' masked layer)."""
        dW = super().competitive_increment(W, x, y, rates)
        return dW * backend_of(W).asarray(self.support(str(dW.dtype).split(".")[-1]))

    def support(self, dtype):
        """0/1 matrix (n_in, n_out) of the connections a convolution has."""
        H, W, C = self.in_shape
        S = np.zeros((H * W, H * W), dtype=dtype)
        for _, _, pin, pout in self._pairs():
            S[pin, pout] = 1
        return np.kron(S, np.ones((C, self.filters), dtype=dtype))

    def init_weights(self, rng, dtype):
        H, W, C = self.in_shape
        k, F = self.size, self.filters
        W4 = np.zeros((H * W, C, H * W, F), dtype=dtype)
        w = _glorot(rng, (k, k, C, F), k * k * C, k * k * F, dtype)
        for u, v, pin, pout in self._pairs():
            if self.init == "copy":
                W4[pin, :, pout, :] = w[u, v]
            else:
                W4[pin, :, pout, :] = _glorot(rng, (len(pin), C, F), k * k * C, k * k * F, dtype)
        return W4.reshape(self.weight_shape)

    def forward(self, bk, p, x, *, train=False, mask=None):
        y, cache = super().forward(bk, p, x, train=train, mask=mask)
        return bk.xp.reshape(y, (x.shape[0],) + self.out_shape), cache

    def error(self, g, cache, *, inplace=False):
        return super().error(_reshape(g, (g.shape[0], self.units)), cache, inplace=inplace)

    def describe(self):
        return f"sparse {self.filters} {self.size}x{self.size}"


# -------------------------------------------------------------------- pool
class MaxPool(Layer):
    """Max pooling ("maxpool 3", "maxpool 3, stride 3") as in the author's code.

    Windows of ``size`` x ``size`` are anchored at the pixels whose row and
    column are multiples of ``stride``; the map is padded at the bottom/right
    with zeros (not -inf), and the output is ceil(H/stride) x ceil(W/stride).
    Feedback: every input equal to its window's maximum receives that
    window's error (ties all receive the full error), summed over the windows
    it belongs to.

    Both passes work by phases, never by positions. With t = stride and
    q = ceil(size / t), the window offset u = t d + a (0 <= a < t) puts input
    row t (i + d) + a in window i, so the map viewed as (B, oh, t, ow, t, C)
    (zero-padded to t * oh rows and t * ow columns, which is no copy when
    stride divides the size) turns the offsets of one pair (d, e) into a slice
    that no two windows share. The feedback is one compare-and-multiply per
    pair (and, after the first, one add): 4 passes for size 3, stride 2
    instead of 9 strided ones. The forward max is separable (rows, then
    columns) and reads the zero padding as a maximum with 0.
    """

    new_feedback = True

    def __init__(self, size, stride=None):
        self.size = int(size)
        self.stride = int(stride) if stride is not None else 2

    def _out_shape(self, in_shape):
        H, W, C = _image(in_shape, "maxpool")
        t, p = self.stride, self.size
        self.oh, self.ow = -(-H // t), -(-W // t)
        self.Hp, self.Wp = (self.oh - 1) * t + p, (self.ow - 1) * t + p  # the zero-padded extent
        return (self.oh, self.ow, C)

    def _blocks(self):
        """(d, ta): the offsets u = t d + a, a < ta, of the windows, grouped by block d."""
        t, p = self.stride, self.size
        return [(d, min(t, p - t * d)) for d in range(-(-p // t))]

    def _max_along(self, bk, x, axis, o):
        """Window maxima along spatial ``axis`` (o windows; zeros beyond the map).

        The windows inside the map are one strided view and one reduction;
        the last ones, which reach the zero padding, are the maximum of their
        rows inside the map and 0 (no padded copy of the map).
        """
        xp = bk.xp
        t, p, n = self.stride, self.size, x.shape[axis]
        inside = max(0, (n - p) // t + 1)
        parts = [xp.max(bk.sliding_windows(x, axis, p, t), axis=-1)] if inside else []
        for i in range(inside, o):
            rows = x[(slice(None),) * axis + (slice(t * i, n),)]
            parts.append(xp.clip(xp.max(rows, axis=axis, keepdims=True), min=0.0))
        return parts[0] if len(parts) == 1 else xp.concat(parts, axis=axis)

    def _phase_map(self, bk, x):
        """x zero-padded to t * oh rows and t * ow columns (no copy when stride divides H, W)."""
        H, W, _ = self.in_shape
        t = self.stride
        return pad_images(bk, x, 0, t * self.oh - H, 0, t * self.ow - W)

    def forward(self, bk, p, x, *, train=False, mask=None):
        y = self._max_along(bk, self._max_along(bk, x, 1, self.oh), 2, self.ow)
        return y, ((self._phase_map(bk, x), y) if train else None)

    def propagate(self, g, cache):
        bk = backend_of(g)
        xp = bk.xp
        xq, y = cache
        t, oh, ow = self.stride, self.oh, self.ow
        B, C = g.shape[0], g.shape[-1]
        x6 = xp.reshape(xq, (B, oh, t, ow, t, C))  # input row t (i + d) + a is x6[:, i + d, a]
        y6 = xp.reshape(y, (B, oh, 1, ow, 1, C))
        g6 = xp.reshape(g, (B, oh, 1, ow, 1, C))
        pairs = [(d, e, ta, tb) for d, ta in self._blocks() for e, tb in self._blocks()]
        # the first pair covers every row and column (unless size < stride, when
        # some rows belong to no window): its terms start the output
        first_is_out = pairs[0][2:] == (t, t)
        if first_is_out:
            out6 = _empty(xp, (B, oh, t, ow, t, C), g)
        else:
            out6 = bk.zeros((B, oh, t, ow, t, C), dtype=g.dtype)
        rest = pairs[1:] if first_is_out else pairs
        if rest:  # one buffer for the other pairs' terms
            scratch = _empty(xp, (max(B * (oh - d) * ta * (ow - e) * tb * C for d, e, ta, tb in rest),), g)
        for d, e, ta, tb in pairs:
            # window i sends to block i + d, inside the map for i < oh - d
            shape = (B, oh - d, ta, ow - e, tb, C)
            into_out = first_is_out and (d, e) == (0, 0)
            part = out6 if into_out else xp.reshape(scratch[: math.prod(shape)], shape)
            # [x == max of its window] * that window's error, for the offsets of this pair
            _compare_into(bk, "equal", x6[:, d:, :ta, e:, :tb, :], y6[:, : oh - d, :, : ow - e], part)
            part *= g6[:, : oh - d, :, : ow - e]
            if not into_out:
                out6[:, d:, :ta, e:, :tb, :] += part
        H, W, _ = self.in_shape
        out = xp.reshape(out6, (B, t * oh, t * ow, C))
        return [out[:, :H, :W, :]]

    def describe(self):
        return f"maxpool {self.size}, stride {self.stride}"


# ----------------------------------------------------------------- dropout
class Dropout(Layer):
    """Inverted dropout ("drop .8": each unit is zeroed with probability .8).

    In training the survivors are scaled by 1/(1 - rate); nothing happens at
    prediction. The mask is drawn on the host by the network (or given), so
    every backend sees the same units dropped. The feedback zeroes the error of
    dropped units and scales the rest by the same factor.
    """

    # new_feedback stays False: g itself is passed on when no unit is dropped

    def __init__(self, rate):
        self.rate = float(rate)
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"drop rate must be in [0, 1); got {rate}")

    def draw_mask(self, rng, batch, dtype):
        keep = rng.random((batch,) + tuple(self.out_shape), dtype=np.float32) >= self.rate
        return keep.astype(dtype) * np.asarray(1.0 / (1.0 - self.rate), dtype=dtype)

    def forward(self, bk, p, x, *, train=False, mask=None):
        if not train or self.rate == 0.0:
            return x, None
        return x * mask, mask

    def propagate(self, g, cache):
        return [g if cache is None else g * cache]

    def describe(self):
        return f"drop {self.rate:g}"


# -------------------------------------------------------------- residual
class Sum(Layer):
    """Residual SUM: the output is the sum of two earlier maps of equal shape.

    No weights and no nonlinearity after the sum. The feedback passes the error
    unchanged to both parents.
    """

    n_parents = 2  # new_feedback stays False: the same array goes to both parents

    def build(self, in_shapes):
        a, b = (tuple(s) for s in in_shapes)
        if a != b:
            raise ValueError(f"SUM needs two maps of the same shape; got {a} and {b}")
        self.in_shape = a
        self.out_shape = a
        return a

    def forward(self, bk, p, xs, *, train=False, mask=None):
        return xs[0] + xs[1], None

    def propagate(self, g, cache):
        return [g, g]

    def describe(self):
        return "sum"
