"""Local competitive learning and activation learning (H. Zhou, arXiv 2209.13400).

"Activation Learning by Local Competitions". Symbols follow the paper:
x (input of a layer), w (weights, ``w_ij`` from input unit i to output unit j),
y = w^T x (net input of the layer, before any nonlinearity), eta (learning
rate). Arrays use the row-vector convention of the authors' code: a minibatch
is X (B, n), a layer is W (n, m), its output Y = X W (B, m).

Everything here is a pure function of arrays (NumPy, PyTorch or CuPy; the
namespace comes from the arrays). The caller owns learning rates, schedules
and the running statistics of ``std_abs``; the geometry of locally connected
layers is :class:`sklhebb.nn.UntiedConv`'s, which calls the rule here.
"""

from __future__ import annotations

import math

from .. import _ranks
from .._backend import backend_of

__all__ = [
    "competitive_update",
    "activation_gap",
    "feedback_gamma",
    "renormalize_gamma",
    "feedback_rates",
    "activation_backward",
    "square_normalize",
    "abs_activation",
    "std_abs",
    "abs_moments",
    "abs_statistics_update",
]


# --------------------------------------------------------------------------
# Eq. (4): the local competitive rule
# --------------------------------------------------------------------------
def competitive_update(W, X, *, Y=None, rates=None, transpose=None, outer=None):
    """Weight change of Eq. (4) for one minibatch, with per-sample rates.

    .. math::

        \\Delta w_{ij} = \\frac{1}{B} \\sum_b r_b\\, y_{bj}
                         \\Big(x_{bi} - \\sum_k y_{bk} w_{ik}\\Big),
        \\qquad y_{bj} = \\sum_u x_{bu} w_{uj}

    With every r_b = eta this is the paper's Eq. (4) averaged over the batch;
    a negative r_b is the "unlearning" of a negative sample (Eq. 13-14): it
    flips the whole rule, the competitive decay included.

    A locally connected layer (Section V) is "identical to a fully connected
    layer, with the exception that some weights are fixed to zero": the same
    rule, with the reconstruction sum_k y_k w_ik running over the output units
    connected to input unit i and a change only for the connections that
    exist. Such a layer passes its own two linear maps as ``transpose`` and
    ``outer`` (:meth:`sklhebb.nn.UntiedConv.competitive_increment` does).

    Parameters
    ----------
    W : array
        Weights w_ij from input unit i to output unit j: (n, m) when fully
        connected, else in the layer's own layout.
    X : (B, n) array, or (B, ...) in the layer's input layout
        Layer inputs x (rows).
    Y : (B, m) array, or (B, ...) in the layer's output layout; optional
        The net input y = w^T x from the same forward pass (computed as X W if
        None; fully connected layers only).
    rates : (B,) array, optional
        Per-sample signed rates r_b (1 if None). The sum is divided by the
        full batch size B even where r_b = 0, as in the authors' code.
    transpose : callable ``(W, Y) -> array like X``, optional
        sum_k y_bk w_ik for every input unit i (fully connected: Y W^T).
    outer : callable ``(E, RY) -> array like W``, optional
        sum_b e_bi ry_bj for every connection w_ij (fully connected: E^T RY).

    Returns
    -------
    dW : array of W's shape, same namespace, device and dtype as W.

    Notes
    -----
    Two products: the reconstruction U = transpose(W, Y) and
    outer(X - U, r Y / B).
    """
    if Y is None:
        Y = X @ W
    B = X.shape[0]
    xp = backend_of(W).xp
    # the 1/B and the rates scale Y (B x m), not the (n x m) result: one pass fewer
    RY = Y / B if rates is None else Y * xp.reshape(rates / B, (B,) + (1,) * (Y.ndim - 1))
    U = Y @ W.T if transpose is None else transpose(W, Y)
    E = X - U
    return E.T @ RY if outer is None else outer(E, RY)


# --------------------------------------------------------------------------
# Eq. (12)-(14): learning with accuracy feedback
# --------------------------------------------------------------------------
def activation_gap(A, y):
    """Eq. (12): g = ||y(a, c)||^2 - ||y(a, c')||^2 with c' the strongest wrong label.

    A: (B, C) output activations A(x_b, c) of every label (C >= 2); y: (B,)
    integer correct labels. Returns (g, A_pos, c'), each (B,): the gap, the
    positive activation A(x_b, y_b) and the negative label c'_b (the first of
    tied maxima).
    """
    bk = backend_of(A)
    xp = bk.xp
    is_true = y[:, None] == bk.arange(A.shape[1])[None, :]
    A_pos = bk.take_rows(A, y)
    neg = xp.argmax(xp.where(is_true, xp.full_like(A, -math.inf), A), axis=1)
    return A_pos - bk.take_rows(A, neg), A_pos, neg


def feedback_gamma(gap, slope):
    """gamma(g) = clip(1 - slope * g, 0, 1): the rate modulation of Eq. (13).

    Non-increasing in the gap, as the paper requires: 1 when the wrong label
    wins or ties, 0 from a gap of 1 / slope on (the authors' code and Fig.
    6b; the paper's min(max(5 g + 1, 0), 1) has a sign slip, spec 9.1).
    """
    return backend_of(gap).xp.clip(1.0 - slope * gap, 0.0, 1.0)


def renormalize_gamma(gamma, scale, momentum=0.99, floor=1e-5):
    """Divide gamma by an EMA of its batch mean (the authors' MNIST code, not in the paper).

    m' = momentum * m + (1 - momentum) * mean_b(gamma_b); returns
    (gamma / max(m', floor), m'). Keeps the average effective rate near eta
    as most samples become well classified.
    """
    bk = backend_of(gamma)
    xp = bk.xp
    # the batch mean over the rows of every rank under data_parallel (identity in one process)
    scale = momentum * scale + (1.0 - momentum) * _ranks.mean_over_ranks(bk, xp.mean(gamma), count=gamma.shape[0])
    return gamma / xp.maximum(scale, xp.asarray(floor, dtype=scale.dtype)), scale


def feedback_rates(gamma, learning_rate, unlearning_factor, A_pos=None, threshold=None):
    """Eq. (13)-(14), Delta w = gamma (Delta w+ - lambda Delta w-), as per-sample rates of Eq. (4).

    Returns (r_pos, r_neg): r+ = eta gamma for the positive sample (a, c) and
    r- = -lambda eta gamma for the negative one (a, c'). With a ``threshold``
    the negative rate is 0 where A_pos <= threshold (the paper's CIFAR
    start-up gate: lambda = 0 while the output activation is low).
    """
    xp = backend_of(gamma).xp
    r_pos = learning_rate * gamma
    r_neg = -unlearning_factor * learning_rate * gamma
    if threshold is not None:
        r_neg = xp.where(A_pos > threshold, r_neg, xp.zeros_like(r_neg))
    return r_pos, r_neg


# --------------------------------------------------------------------------
# Activation functions
# --------------------------------------------------------------------------
def _row_norm(xp, A):
    return xp.sqrt(xp.sum(A * A, axis=1, keepdims=True))


def square_normalize(Y, eps=1e-12):
    """Appendix B: square every output, then scale each row to a unit vector.

    Y: (B, m). Rows that are all zero stay zero.
    """
    xp = backend_of(Y).xp
    S = Y * Y
    n = _row_norm(xp, S)
    return S / xp.where(n > eps, n, xp.ones_like(n))


def abs_activation(Y):
    """|y|, magnitude-preserving (Section III-A)."""
    return backend_of(Y).xp.abs(Y)


def std_abs(Y, mean, var, *, var_floor=1e-5, norm_floor=1e-5):
    """Eq. (7): std_abs(y) = beta * std(|y|), magnitude-preserving.

    z = (|y| - mu) / sqrt(max(sigma^2, var_floor)) with per-unit running
    statistics mu, sigma^2 (m,), and beta = ||y|| / max(||z||, norm_floor) per
    sample (the authors' code; the paper calls beta a scalar), so
    ||std_abs(y)|| = ||y|| whenever ||z|| >= norm_floor.

    Y: (B, m); mean, var: (m,). Returns (B, m).
    """
    xp = backend_of(Y).xp
    Z = (xp.abs(Y) - mean) / xp.sqrt(xp.maximum(var, xp.asarray(var_floor, dtype=var.dtype)))
    nz = _row_norm(xp, Z)
    beta = _row_norm(xp, Y) / xp.maximum(nz, xp.asarray(norm_floor, dtype=nz.dtype))
    return Z * beta


def abs_moments(Y, mean):
    """The minibatch means of |y| - mu and (|y| - mu)^2 per unit, around the running mean mu.

    What :func:`abs_statistics_update` needs from the samples: two means over the
    minibatch, so that data-parallel ranks combine them in one all-reduce. Y: (B, m);
    mean: (m,). Returns two (m,) arrays.
    """
    xp = backend_of(Y).xp
    D = xp.abs(Y) - mean
    return xp.mean(D, axis=0), xp.mean(D * D, axis=0)


def abs_statistics_update(Y, mean, var, momentum, *, moments=None):
    """Running statistics of |y| for :func:`std_abs` (the authors' code).

    mu' = momentum * mu + (1 - momentum) * mean_b |y_b|;
    sigma^2' = momentum * sigma^2 + (1 - momentum) * mean_b (|y_b| - mu')^2
    (centred on the new mean). Returns (mu', sigma^2').

    Computed from the moments s1 = mean_b (|y_b| - mu), s2 = mean_b (|y_b| - mu)^2
    around the old mean (:func:`abs_moments`; ``moments`` passes them precomputed):
    mu' = mu + (1 - momentum) s1 and, with d = mu' - mu,
    mean_b (|y_b| - mu')^2 = s2 - 2 d s1 + d^2.
    """
    s1, s2 = abs_moments(Y, mean) if moments is None else moments
    new_mean = mean + (1.0 - momentum) * s1
    d = new_mean - mean
    new_var = momentum * var + (1.0 - momentum) * (s2 - 2.0 * d * s1 + d * d)
    return new_mean, new_var


def activation_backward(activation, Y, G, mean=None, var=None, *, var_floor=1e-5, norm_floor=1e-5):
    """Gradient with respect to y of sum(G * phi(y)) (for inference by gradient ascent, Eq. 10-11, 15-17).

    activation: "abs", "std_abs" or "identity"; Y, G: (B, m). For std_abs,
    phi = z ||y|| / ||z|| with z = sign-folded standardised |y| (statistics
    fixed), so
    dphi^T G = (||y||/||z||) s^-1 sign(y) G + (G.z)/(||z|| ||y||) y
               - (G.z) ||y|| / ||z||^3 s^-1 sign(y) z.
    """
    xp = backend_of(Y).xp
    if activation == "identity":
        return G
    sgn = xp.sign(Y)
    if activation == "abs":
        return G * sgn
    if activation != "std_abs":
        raise ValueError(f"no gradient for activation {activation!r}")
    inv_s = 1.0 / xp.sqrt(xp.maximum(var, xp.asarray(var_floor, dtype=var.dtype)))
    Z = (xp.abs(Y) - mean) * inv_s
    ny = _row_norm(xp, Y)
    nz = xp.maximum(_row_norm(xp, Z), xp.asarray(norm_floor, dtype=Y.dtype))
    gz = xp.sum(G * Z, axis=1, keepdims=True)
    safe_ny = xp.where(ny > 0, ny, xp.ones_like(ny))
    return (ny / nz) * inv_s * sgn * G + gz / (nz * safe_ny) * Y - gz * ny / nz**3 * inv_s * sgn * Z
