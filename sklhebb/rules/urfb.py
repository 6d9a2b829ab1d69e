"""Updated random feedback (URFB): Amit (2019), "Deep learning with asymmetric
connections and Hebbian updates", Front. Comput. Neurosci. 13:18.

Row-vector convention (the author's code): a layer maps its input
x_{l-1} (B, n_{l-1}) to the field h_l = x_{l-1} W_l with W_l of shape
(n_{l-1}, n_l), the transpose of the paper's W_l. The feedback weights R_l have
the *same* shape as W_l; the paper's R_{l,ik} (unit k of layer l to unit i of
layer l-1) is our ``R[i, k]``, so R = W here is the paper's R = W^t, i.e.
back-propagation.

The error signals delta are the paper's: delta_l = -dL/dh_l (Eq. 6 at the top),
so every increment is *added* to the weights.
"""

from __future__ import annotations

from .._backend import backend_of
from .softmax import log_softmax

__all__ = [
    "saturated_linear",
    "saturated_linear_slope",
    "hinge_loss",
    "hinge_error",
    "softmax_loss",
    "softmax_error",
    "hebbian_increment",
    "urfb_update",
    "feedback_error",
]


def saturated_linear(h, scale=1.0):
    """sigma(h) = min(max(s h, -1), 1), the saturated linearity of Section 3.1.

    The paper writes s = 1; the author's code uses s = 0.5 (``nonlin_scale``).
    h: any shape; returns the same shape.
    """
    return backend_of(h).xp.clip(scale * h, -1.0, 1.0)


def saturated_linear_slope(x, scale=1.0):
    """sigma'(h) of sigma(h) = clip(s h, -1, 1), read from the unit's output x = sigma(h):
    s where |x| < 1, 0 where the unit is saturated (|x| = 1).

    Eq. (3) shuts the feedback to unit (l, i) off when ``|h_{l,i}| >= 1, or
    |x_{l,i}| = 1``, so at the boundary |s h| = 1 itself the slope is 0:
    the control units of Appendix 1 that compute this shut-off fire on the
    output, u = 1[x >= 1] and v = -1[x <= -1], and the paper-era code zeroes
    the derivative where the output is +-1 (spec urfb.md, Section 2). Remark 2's
    wording "sigma'(h) = 1 if |h| <= 1" differs from Eq. (3) on that boundary
    only. The paper writes s = 1; the author's code uses s = 0.5.

    x: any shape, the output of the saturated linearity; returns a new array of
    the same shape and dtype.
    """
    bk = backend_of(x)
    slope = bk.xp.abs(x)
    # slope = 1.0 where |x| < 1, else 0.0, written over |x|: one array for the
    # whole computation (torch's CPU kernels are slow for bool outputs and bool
    # x float products, and these are activation-map-sized arrays)
    getattr(bk.native, "lt" if bk.name == "torch" else "less")(slope, 1.0, out=slope)
    if scale != 1.0:
        slope *= scale
    return slope


def _one_hot(bk, y, C, dtype):
    xp = bk.xp
    return xp.astype(y[:, None] == bk.arange(C)[None, :], dtype)


def hinge_loss(o, y, mu):
    """Multi-class hinge loss of Eq. (4), one value per sample.

    L(x_L, c) = max(1 - x_{L,c}, 0) + mu * sum_{i != c} max(1 + x_{L,i}, 0)

    o: (B, C) outputs x_L (linear top layer); y: (B,) integer classes c.
    Returns (B,).
    """
    bk = backend_of(o)
    xp = bk.xp
    Y = _one_hot(bk, y, o.shape[1], o.dtype)
    pos = xp.clip(1.0 - o, 0.0, None)
    neg = xp.clip(1.0 + o, 0.0, None)
    return xp.sum(Y * pos + mu * (1.0 - Y) * neg, axis=1)


def hinge_error(o, y, mu):
    """Top-level error signal delta_L of Eq. (6) (= -dL/dx_L of Eq. 5).

    delta_{L,i} = 1 if i = c and x_{L,i} < 1; -mu if i != c and x_{L,i} > -1;
    0 otherwise. The boundaries are strict as in the author's code (the paper
    writes <= and >=; they differ only on a set of measure zero).

    o: (B, C); y: (B,) integers. Returns (B, C).
    """
    bk = backend_of(o)
    xp = bk.xp
    Y = _one_hot(bk, y, o.shape[1], o.dtype)
    up = xp.astype(o < 1.0, o.dtype)
    down = xp.astype(o > -1.0, o.dtype)
    return Y * up - mu * (1.0 - Y) * down


def softmax_loss(o, y):
    """Cross-entropy of the softmax of the outputs (Section 3.2), per sample.

    L = -sum_i y_i x_{L,i} + log sum_i exp(x_{L,i}); o: (B, C), y: (B,). Returns (B,).
    """
    bk = backend_of(o)
    xp = bk.xp
    Y = _one_hot(bk, y, o.shape[1], o.dtype)
    return -xp.sum(Y * log_softmax(o), axis=1)


def softmax_error(o, y):
    """delta_{L,i} = y_i - p_i, the negative softmax cross-entropy gradient. (B, C)."""
    bk = backend_of(o)
    xp = bk.xp
    Y = _one_hot(bk, y, o.shape[1], o.dtype)
    return Y - xp.exp(log_softmax(o))


def hebbian_increment(x, delta):
    """The Hebbian increment shared by W and R: Delta = (1/B) x^T delta.

    The paper's dL/dW_{l,ij} = delta_{l,i} x_{l-1,j} (Section 3.1), averaged over
    the minibatch. For a convolution x holds the patches of every position
    (im2col) and the sum also runs over positions (tied weights).

    x: (B, n_in) presynaptic activity x_{l-1}; delta: (B, n_out) postsynaptic
    error delta_l. Returns (n_in, n_out), the shape of W_l and R_l.
    """
    return (x.T @ delta) / x.shape[0]


def urfb_update(increment, learning_rate, feedback_learning_rate, *, mask_W=None, mask_R=None):
    """The changes of a layer's forward weights W and feedback weights R from
    their shared Hebbian increment (Section 3.1; Eq. 7 in the linear case):

        dW_l = eta Delta_l (.) m_W          W <- W - eta dL/dW, with Delta_l = -dL/dW_l
        dR_l = eps eta Delta_l (.) m_R      R_{l,ik} connects the same units as W_{l,ki},
                                            so it sees the same pre- and post-synaptic
                                            activity and gets the same increment

    Eq. (7)'s dR_2/dt = eps W_1 (T - W_2 W_1)^t is eps times dW_2/dt transposed;
    in our orientation R has W's shape, so no transpose. ``feedback_learning_rate``
    is eps eta: eta under URFB (eps = 1; then W - R never changes), 0 under FRFB
    (eps = 0, R fixed at its random start, Lillicrap et al.'s feedback alignment).
    ``mask_W``, ``mask_R``: the independent 0/1 connectivity masks of Section 4
    ("randomly fixing half of each set of weights at 0"), or None for full
    connectivity; a pruned entry gets no change and so stays 0.

    increment: Delta_l, shape of W_l (from :func:`hebbian_increment`, or a
    convolution's sum over positions). Returns (dW, dR); dR is None when
    ``feedback_learning_rate`` is 0.
    """
    dW = learning_rate * (increment if mask_W is None else increment * mask_W)
    if feedback_learning_rate == 0:
        return dW, None
    dR = feedback_learning_rate * (increment if mask_R is None else increment * mask_R)
    return dW, dR


def feedback_error(delta_above, F, slope):
    """Error of a layer from the layer above, Eq. (2) with feedback weights:

    delta_{l,i} = sigma'(h_{l,i}) sum_k delta_{l+1,k} R_{l+1,ik}

    delta_above: (B, n_{l+1}); F: (n_l, n_{l+1}) the feedback weights R_{l+1}
    (URFB, FRFB) or W_{l+1} (back-propagation); slope: (B, n_l) sigma'(h_l), or
    None for a linear unit. Returns (B, n_l).
    """
    g = delta_above @ F.T
    return g if slope is None else slope * g
