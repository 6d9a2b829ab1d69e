"""Local competitive learning and activation learning (H. Zhou, arXiv 2209.13400).

"Activation Learning by Local Competitions". Symbols follow the paper:
x (input of a layer), w (weights, ``w_ij`` from input unit i to output unit j),
y = w^T x (net input of the layer, before any nonlinearity), eta (learning
rate). Arrays use the row-vector convention of the authors' code: a minibatch
is X (B, n), a layer is W (n, m), its output Y = X W (B, m).

Everything here is a pure function of arrays (NumPy, PyTorch or CuPy; the
namespace comes from the arrays). The caller owns learning rates, schedules
and the running statistics of ``std_abs``.
"""

from __future__ import annotations

from .._backend import backend_of
from ..image import extract_patches

__all__ = [
    "competitive_update",
    "local_patches",
    "local_forward",
    "local_competitive_update",
    "fold_patches",
    "local_transpose",
    "activation_backward",
    "square_normalize",
    "abs_activation",
    "std_abs",
    "abs_statistics_update",
]


# --------------------------------------------------------------------------
# Eq. (4): the local competitive rule, fully connected
# --------------------------------------------------------------------------
def competitive_update(W, X, *, Y=None, rates=None):
    """Weight change of Eq. (4) for one minibatch, with per-sample rates.

    .. math::

        \\Delta w_{ij} = \\frac{1}{B} \\sum_b r_b\\, y_{bj}
                         \\Big(x_{bi} - \\sum_k y_{bk} w_{ik}\\Big),
        \\qquad y_{bj} = \\sum_u x_{bu} w_{uj}

    With every r_b = eta this is the paper's Eq. (4) averaged over the batch;
    a negative r_b is the "unlearning" of a negative sample (Eq. 13-14): it
    flips the whole rule, the competitive decay included.

    Parameters
    ----------
    W : (n, m) array
        Weights w_ij from input unit i to output unit j.
    X : (B, n) array
        Layer inputs x (rows).
    Y : (B, m) array, optional
        The net input y = X W from the same forward pass (computed if None).
    rates : (B,) array, optional
        Per-sample signed rates r_b (1 if None). The sum is divided by the
        full batch size B even where r_b = 0, as in the authors' code.

    Returns
    -------
    dW : (n, m) array, same namespace, device and dtype as W.

    Notes
    -----
    Two matrix products: the reconstruction U = Y W^T (B, n) and
    (X - U)^T (r * Y) (n, m).
    """
    if Y is None:
        Y = X @ W
    B = X.shape[0]
    # the 1/B and the rates scale Y (B x m), not the (n x m) result: one pass fewer
    RY = Y / B if rates is None else Y * (rates[:, None] / B)
    E = X - Y @ W.T
    return E.T @ RY


# --------------------------------------------------------------------------
# Locally connected layers (Section V): the same rule with some w_ij fixed at 0
# --------------------------------------------------------------------------
def _pad(bk, X, p):
    if p == 0:
        return X
    B, H, W_, C = X.shape
    Z = bk.zeros((B, H + 2 * p, W_ + 2 * p, C), dtype=X.dtype)
    Z[:, p : p + H, p : p + W_, :] = X
    return Z


def local_patches(X, size):
    """K x K patches around every pixel, zero outside the image.

    X: (B, H, W, C). Returns (B, H, W, K*K*C) in (row, column, channel) order:
    output unit (h, w) sees the input positions |h - h'| <= K // 2 and
    |w - w'| <= K // 2 (same-size output, stride 1, truncated at the borders).
    ``size`` must be odd.
    """
    bk = backend_of(X)
    return extract_patches(bk, _pad(bk, X, size // 2), size, 1)


def _per_position(bk, P):
    """(B, H, W, D) -> (H*W, B, D) for batched products per position."""
    B, H, W_, D = P.shape
    return bk.xp.permute_dims(bk.xp.reshape(P, (B, H * W_, D)), (1, 0, 2))


def local_forward(W, P):
    """y = w^T x at every position, with per-position weights (no sharing).

    W: (H, W, K*K*Cin, Cout); P: (B, H, W, K*K*Cin) from :func:`local_patches`.
    Returns Y (B, H, W, Cout).
    """
    bk = backend_of(W)
    xp = bk.xp
    H, W_, D, Co = W.shape
    B = P.shape[0]
    Yp = xp.matmul(_per_position(bk, P), xp.reshape(W, (H * W_, D, Co)))  # (HW, B, Co)
    return xp.reshape(xp.permute_dims(Yp, (1, 0, 2)), (B, H, W_, Co))


def fold_patches(R, size, image_shape):
    """Sum per-position patch vectors back onto the image (transpose of :func:`local_patches`).

    R: (B, H, W, K*K*C). Returns (B, H, W, C): pixel (h', w') receives the
    entries of every window that covers it. A loop over the K*K window
    offsets, not over positions.
    """
    bk = backend_of(R)
    xp = bk.xp
    H, W_, C = image_shape
    B = R.shape[0]
    p = size // 2
    R6 = xp.reshape(R, (B, H, W_, size, size, C))
    U = bk.zeros((B, H + 2 * p, W_ + 2 * p, C), dtype=R.dtype)
    for dy in range(size):
        for dx in range(size):
            U[:, dy : dy + H, dx : dx + W_, :] += R6[:, :, :, dy, dx, :]
    return U[:, p : p + H, p : p + W_, :]


def local_transpose(W, Y, size, image_shape):
    """sum_k y_k w_ik for every input pixel i: the transpose of :func:`local_forward`.

    Per-position products Y_p W_p^T folded back onto the image: the
    reconstruction of the input in Eq. (4), and the input gradient of a
    locally connected layer. W: (H, W, K*K*Cin, Cout), Y: (B, H, W, Cout).
    Returns (B, H, W, Cin).
    """
    bk = backend_of(W)
    xp = bk.xp
    H, W_, D, Co = W.shape
    B = Y.shape[0]
    Wp = xp.reshape(W, (H * W_, D, Co))
    Yp = xp.permute_dims(xp.reshape(Y, (B, H * W_, Co)), (1, 0, 2))  # (HW, B, Co)
    Rp = xp.matmul(Yp, xp.permute_dims(Wp, (0, 2, 1)))  # (HW, B, D)
    R = xp.reshape(xp.permute_dims(Rp, (1, 0, 2)), (B, H, W_, D))
    return fold_patches(R, size, image_shape)


def local_competitive_update(W, X, *, size, Y=None, rates=None, P=None):
    """Eq. (4) for a locally connected layer (Section V), per-sample rates.

    The layer is the dense rule with the weights outside each unit's K x K
    receptive field fixed at zero (the paper: "training a locally connected
    layer is identical to training a fully connected layer, with the
    exception that some weights are fixed to zero"). So the reconstruction
    sum_k y_k w_ik of input pixel i runs over every output unit whose field
    covers i, at all positions:

    * U = fold(Y_p W_p^T)              (B, H, W, Cin), the image reconstruction
    * dW_p = (1/B) patches(X - U)_p^T (r * Y_p)   per position p

    Weights that would connect to the zero padding get a zero change (their
    input and error are zero), so they stay at zero if they start there.

    Parameters
    ----------
    W : (H, W, K*K*Cin, Cout) array
    X : (B, H, W, Cin) array
    size : int
        K, the (odd) side of the receptive field.
    Y : (B, H, W, Cout) array, optional
        Net input from the same forward pass (computed if None). It may hold
        contributions of other weight blocks (the label block of the first
        layer); the rule then applies to this block with its own
        reconstruction, which equals the rule on the concatenated input.
    rates : (B,) array, optional
    P : (B, H, W, K*K*Cin) array, optional
        :func:`local_patches` of X (recomputed if None).

    Returns
    -------
    dW : (H, W, K*K*Cin, Cout) array.
    """
    bk = backend_of(W)
    xp = bk.xp
    H, W_, D, Co = W.shape
    B = X.shape[0]
    if P is None:
        P = local_patches(X, size)
    if Y is None:
        Y = local_forward(W, P)
    Yp = xp.permute_dims(xp.reshape(Y, (B, H * W_, Co)), (1, 0, 2))  # (HW, B, Co)
    U = local_transpose(W, Y, size, X.shape[1:])
    PE = _per_position(bk, local_patches(X - U, size))  # (HW, B, D)
    RY = Yp if rates is None else Yp * rates[None, :, None]
    dW = xp.matmul(xp.permute_dims(PE, (0, 2, 1)), RY) / B  # (HW, D, Co)
    return xp.reshape(dW, (H, W_, D, Co))


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


def abs_statistics_update(Y, mean, var, momentum):
    """Running statistics of |y| for :func:`std_abs` (the authors' code).

    mu' = momentum * mu + (1 - momentum) * mean_b |y_b|;
    sigma^2' = momentum * sigma^2 + (1 - momentum) * mean_b (|y_b| - mu')^2
    (centred on the new mean). Returns (mu', sigma^2').
    """
    xp = backend_of(Y).xp
    A = xp.abs(Y)
    new_mean = momentum * mean + (1.0 - momentum) * xp.mean(A, axis=0)
    D = A - new_mean
    new_var = momentum * var + (1.0 - momentum) * xp.mean(D * D, axis=0)
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
