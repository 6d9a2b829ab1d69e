"""Similarity matching networks: neural dynamics and local Hebbian/anti-Hebbian rules.

Obeid, Ramambason & Pehlevan (2019), "Structured and deep similarity matching
via structured and deep Hebbian networks" (NeurIPS), Eq. (1)-(3), (11), (14),
(19); Bahroun, Sridharan, Acharya, Chklovskii & Sengupta (2023), "Unlocking
the potential of similarity matching" (ICML workshop), Eq. (3)-(8).

Notation (Obeid): x in R^K input, r in R^N output, W (N, K) feedforward
(Hebbian) weights, L (N, N) lateral (anti-Hebbian) weights, f the activation,
u the neurons' internal state. Bahroun writes Z for r and M for L. Minibatches
are rows: X (B, K), R (B, N), the drive D = X W^T (B, N).

Every function is vectorised over the minibatch and works on NumPy, PyTorch
and CuPy arrays alike (namespace from the arrays).
"""

from __future__ import annotations

import math

import numpy as np

from .._backend import backend_of, to_numpy

__all__ = [
    "NSM_ACTIVATIONS",
    "nsm_activation",
    "nsm_step_size",
    "nsm_fixed_point",
    "nsm_update",
    "deep_fixed_point",
    "nsm_regularizer",
    "sm_gram_terms",
    "sm_cost_from_grams",
]

NSM_ACTIVATIONS = ("relu", "capped_relu", "tanh", "linear")
_PROJECTED = ("relu", "capped_relu", "linear")


def nsm_activation(u, activation="relu", *, threshold=0.0, cap=1.0):
    """The activation r = f(u) of Obeid Sec. 2.

    * ``relu``: max(u - lambda, 0) (nonnegative similarity matching; lambda =
      ``threshold``, 0 in Bahroun Eq. 3);
    * ``capped_relu``: min(max(u - lambda, 0), b) with b = ``cap``;
    * ``tanh``: tanh(u);
    * ``linear``: u (the principal subspace network).
    """
    xp = backend_of(u).xp
    if activation == "relu":
        v = u - threshold if threshold else u
        return xp.where(v > 0, v, xp.zeros_like(v))
    if activation == "capped_relu":
        return xp.clip(u - threshold, 0.0, cap)
    if activation == "tanh":
        return xp.tanh(u)
    if activation == "linear":
        return u
    raise ValueError(f"activation must be one of {NSM_ACTIVATIONS}; got {activation!r}")


def _project(bk, v, activation, cap):
    """Projection onto the output range [a, b] of f (a = 0 for the ReLUs)."""
    xp = bk.xp
    if activation == "relu":
        return xp.maximum(v, 0.0)
    if activation == "capped_relu":
        return xp.clip(v, 0.0, cap)
    return v


def _project_(bk, v, activation, cap):
    """:func:`_project` in place, for an array the caller owns (returns it)."""
    if activation == "linear":
        return v
    if bk.name == "torch":
        return v.clamp_(min=0.0) if activation == "relu" else v.clamp_(0.0, cap)
    if activation == "relu":
        if bk.name == "numpy":
            # v * (v > 0): measured 0.17 ms against 0.27 ms for maximum(v, 0, out=v)
            # on (10580, 50) float32 with a third of the entries negative (NumPy 2.4,
            # 1 thread); negative entries become -0.0, which equals 0
            return bk.native.multiply(v, v > 0, out=v)
        return bk.native.maximum(v, 0.0, out=v)
    return bk.native.clip(v, 0.0, cap, out=v)


def _row_change(bk, a, b):
    """max_i |a_ti - b_ti| for every row t (a temporary is formed, then reused in place)."""
    d = a - b
    if bk.name == "torch":
        return bk.native.amax(d.abs_(), dim=1)
    return bk.native.max(bk.native.abs(d, out=d), axis=1)


def nsm_step_size(L, *, n_power=12):
    """1 / lambda_max(L), lambda_max estimated by power iteration.

    The discretised dynamics of :func:`nsm_fixed_point` are stable for steps
    below 2 / lambda_max(L) (L is positive definite: initialised so and kept so
    by Eq. 2, Obeid Note 1). Power iteration from a fixed, dense start vector
    gives an estimate within a few per cent of lambda_max from below, so the
    step 1 / estimate stays well inside the stable range. Deterministic (a
    function of L only) and one device synchronisation. L may be (S, n, n):
    the diagonal blocks of a block-diagonal lateral matrix (the largest
    eigenvalue over the blocks is used). For N <= 512 the
    iteration runs with L^4 (two N^3 products, then n_power / 4 steps), which
    is cheaper than n_power separate matrix-vector calls at that size.
    """
    bk = backend_of(L)
    xp = bk.xp
    Lb = L if L.ndim == 3 else xp.reshape(L, (1,) + tuple(L.shape))  # (S, n, n) blocks
    n_ = Lb.shape[1]
    # deterministic, dense start vector (no RNG): components of both signs
    i = bk.asarray(bk.arange(n_), dtype=str(L.dtype).split(".")[-1])
    v = xp.reshape(xp.cos(i * 2.399963) + 1.0 / 3.0, (1, n_, 1))
    A, n = Lb, n_power
    if n_ <= 512 and n_power >= 8:
        A2 = Lb / (xp.max(xp.abs(Lb)) + 1e-30)  # scaled, so that L^4 cannot overflow
        A2 = xp.matmul(A2, A2)
        A, n = xp.matmul(A2, A2), -(-n_power // 4)
    for _ in range(n):
        w = xp.matmul(A, v)
        v = w / (xp.sqrt(xp.sum(w * w, axis=1, keepdims=True)) + 1e-30)
    lam = float(xp.max(xp.sum(v * xp.matmul(Lb, v), axis=(1, 2))))  # largest Rayleigh quotient
    if not math.isfinite(lam) or lam <= 0:
        return 1.0
    return 1.0 / lam


def nsm_fixed_point(
    D, L, *, activation="relu", threshold=0.0, cap=1.0, step=None, tol=1e-4, max_iter=100, accelerate=False, check_every=2, start="linear"
):
    """Run the neural dynamics to the fixed point r = f(D - (L - I) r), D = W x.

    Obeid Eq. (1) (tau du/ds = -u + W x - (L - I) r, r = f(u)); Bahroun Eq. (3)
    for the ReLU. Vectorised: every row of ``D`` is one sample, all are
    iterated together and the minibatch stops when every row has converged.

    For ``relu``, ``capped_relu`` and ``linear`` the dynamics are run in the
    output variable r, as in Bahroun Eq. (3) and pynsm: projected gradient
    steps on the energy E(r) = -2 r.D + r.L r + 2 sum F(r) of Obeid Eq. (7),

        r <- P_[a,b]( r + step * (D - lambda - L r) ),

    whose fixed points are exactly the fixed points of Eq. (1) (the KKT
    conditions of the box-constrained quadratic). For ``tanh`` they are the
    Euler discretisation of Eq. (1) itself in u:

        u <- u + step * (-u + D - (L - I) tanh(u)).

    Parameters
    ----------
    D : (B, N) array
        Feedforward drive W x (plus V y for S^2M, Bahroun Eq. 6).
    L : (N, N) array
        Lateral weights (symmetric positive definite).
    activation, threshold, cap : see :func:`nsm_activation`.
    step : float, optional
        Time step ds / tau. Default: 1 / lambda_max(L) (:func:`nsm_step_size`)
        for the r-space dynamics, min(1, 1 / lambda_max(L)) for tanh.
    tol : float
        A row t stops (is frozen) once max_i |f(D - (L - I) r)_ti - r_ti| <=
        tol * max(1, max_i |D_ti|) is guaranteed for it; the minibatch stops
        when every row has. A row's result does not depend on the other rows.
    max_iter : int
        Largest number of dynamics steps.
    accelerate : bool
        For the r-space dynamics only (not ``tanh``): Nesterov momentum
        (FISTA, beta_k = (k - 1) / (k + 2)) on the projected steps. Same fixed
        point and the same residual guarantee (checked at the extrapolated,
        projected point, which is what is returned), typically 3-4x fewer
        steps when L is ill-conditioned. Not a model of neural dynamics: a
        faster solver for the same equilibrium.
    check_every : int
        r-space dynamics: test convergence every ``check_every`` steps (and at
        ``max_iter``). The test and the removal of converged rows cost about as
        much as a step; a row that converged between tests takes up to
        ``check_every - 1`` more steps. The guarantee is unchanged: a row's
        result is the state at which its own tolerance test above passed.
    start : {"linear", "zero"}
        r-space dynamics: the initial state. ``"linear"`` (default): P((D -
        lambda) L^-1), the projected fixed point of the linear network (exact
        for ``linear``, and wherever no output is clipped), measured 1.7-2.5x
        fewer steps on convolutional minibatches; ``"zero"``: the first step
        from r = 0, P(step (D - lambda)), as pynsm starts. The fixed point is
        unique (L positive definite), so the start changes only the number
        of steps. Falls back to ``"zero"`` when L cannot be inverted.

    Returns
    -------
    R : (B, N) array
        The fixed point (or the state after ``max_iter`` steps).
    n_steps : int
        Dynamics steps taken (updates of the state after the start).
    """
    bk = backend_of(D)
    xp = bk.xp
    if D.shape[0] == 0:  # no samples (a data-parallel rank whose shard has run out): nothing to run
        return xp.asarray(D, copy=True), 0
    n_ = L.shape[-1]
    I = xp.eye(n_, dtype=D.dtype, device=bk.device)
    if step is None:
        step = nsm_step_size(L)
        if activation == "tanh":
            step = min(1.0, step)
    step = float(step)
    # per-row tolerance and freezing: a row's result never depends on the other
    # rows of its minibatch (transform of one sample = transform of a batch)
    stop = tol * xp.max(xp.abs(D), axis=1)
    stop = xp.where(stop > tol, stop, xp.zeros_like(stop) + tol)  # tol * max(1, max_j |D_tj|)
    # Rows that have converged are retired: their value is written to the
    # output and only the remaining rows are iterated (a shrinking minibatch).
    # The state arrays are owned here, so the steps update them in place.
    out, idx = None, None
    check_every = max(1, int(check_every))
    if activation in _PROJECTED:
        # r <- P(r M^T + c), M = I - step L, c = step (D - lambda)
        M = I - step * L
        lat = _lateral_op(bk, M)
        c = step * (D - threshold) if threshold and activation != "linear" else step * D
        if start not in ("linear", "zero"):
            raise ValueError(f"start must be 'linear' or 'zero'; got {start!r}")
        r = _linear_start(bk, L, c, step, activation, cap) if start == "linear" else None
        if r is None:  # the first step from r = 0 (pynsm's first step from y = 0 is P(D) too)
            r = _project(bk, c, activation, cap)
        gain = max(1.0, 1.0 / step)  # |f(u) - r| <= gain * |r_new - r| (coordinate-wise)
        rows = _Frozen(bk, r.shape[0])
        if accelerate:
            r_prev = r
            for k in range(1, max_iter + 1):
                beta = (k - 1.0) / (k + 2.0)
                if k > 1:
                    y = r - r_prev
                    y *= beta
                    y += r
                    y = _project_(bk, y, activation, cap)
                else:
                    y = r
                r_new = lat(y)
                r_new += c
                r_new = _project_(bk, r_new, activation, cap)
                if k % check_every == 0 or k == max_iter:
                    if rows.freeze(_row_change(bk, r_new, y) * gain <= stop, y):
                        return rows.out, k
                    r, r_new, c, stop = rows.compact((r, r_new, c, stop))
                r_prev, r = r, r_new
            return rows.settle(r), max_iter
        for k in range(1, max_iter + 1):
            r_new = lat(r)
            r_new += c
            r_new = _project_(bk, r_new, activation, cap)
            if k % check_every == 0 or k == max_iter:
                if rows.freeze(_row_change(bk, r_new, r) * gain <= stop, r):
                    return rows.out, k
                r_new, c, stop = rows.compact((r_new, c, stop))
            r = r_new
        return rows.settle(r), max_iter
    if activation == "tanh":
        # u <- (1 - step) u + step D - tanh(u) (step (L - I))^T
        M = step * (L - I)
        lat = _lateral_op(bk, M)
        c = step * D
        u = D
        for k in range(1, max_iter + 1):
            r = xp.tanh(u)
            u_new = (1.0 - step) * u + c - lat(r)
            # |tanh(u + g) - tanh(u)| <= |g| = |u_new - u| / step
            ok = xp.max(xp.abs(u_new - u), axis=1) / step <= stop
            n_ok = int(xp.sum(xp.astype(ok, xp.int32)))
            if n_ok == r.shape[0]:
                return _settle(bk, out, idx, r), k
            if n_ok:
                out, idx, (u_new, c, stop) = _retire(bk, out, idx, ok, r, (u_new, c, stop))
            u = u_new
        return _settle(bk, out, idx, xp.tanh(u)), max_iter
    raise ValueError(f"activation must be one of {NSM_ACTIVATIONS}; got {activation!r}")


def _linear_start(bk, L, c, step, activation, cap):
    """P((D - lambda) L^-1) = P(c (step L)^-1): the projected solution of the linear network.

    The unconstrained minimiser of the energy of Obeid Eq. (7), projected onto
    the output range; the exact fixed point for ``linear`` and wherever the
    active set of the ReLU is the whole output. Returns None (the caller then
    starts from P(c)) when L cannot be inverted in floating point.
    """
    xp = bk.xp
    try:
        Linv = xp.linalg.inv(L)
    except (np.linalg.LinAlgError, RuntimeError):  # torch's LinAlgError is a RuntimeError
        return None
    if not bool(xp.all(xp.isfinite(Linv))):
        return None
    r = _lateral_op(bk, Linv / step)(c)  # r (step L)^-T c; L (and L^-1) is symmetric
    return _project_(bk, r, activation, cap)


def _lateral_op(bk, M):
    """r -> r M^T for a dense (N, N) M, or blockwise for (S, n, n) diagonal blocks."""
    xp = bk.xp
    if M.ndim == 2:
        # a C-contiguous copy of M^T: NumPy's r @ M.T with the transposed view is
        # 1.8x slower (1.31 ms against 0.75 ms for (10580, 50) @ (50, 50) float32)
        Mt = _contiguous(bk, M.T)
        return lambda r: r @ Mt
    S, n = M.shape[0], M.shape[1]
    Mt = xp.permute_dims(M, (0, 2, 1))

    def apply(r):
        B = r.shape[0]
        rb = xp.permute_dims(xp.reshape(r, (B, S, n)), (1, 0, 2))  # (S, B, n)
        out = xp.matmul(rb, Mt)
        return xp.reshape(xp.permute_dims(out, (1, 0, 2)), (B, S * n))

    return apply


def _contiguous(bk, a):
    """A C-contiguous copy (or ``a`` itself when it already is one)."""
    if bk.name == "torch":
        return a.contiguous()
    return bk.native.ascontiguousarray(a)


def _blocks(bk, R, S):
    """(B, S*n) -> (S, B, n)."""
    xp = bk.xp
    B = R.shape[0]
    return xp.permute_dims(xp.reshape(R, (B, S, R.shape[1] // S)), (1, 0, 2))


def _retire(bk, out, idx, ok, values, carry):
    """Write the converged rows (``ok``) of ``values`` to ``out``; keep the rest of ``carry``."""
    xp = bk.xp
    if idx is None:
        out = xp.asarray(values, copy=True)
        idx = bk.arange(values.shape[0])
    else:
        out[idx[ok]] = values[ok]
    keep = ~ok
    return out, idx[keep], tuple(a[keep] for a in carry)


class _Frozen:
    """Rows whose fixed point is found: their values are written to ``out`` at once
    (frozen), and they are dropped from the iterated minibatch in groups
    (``compact``, once at least a quarter of the active rows are frozen), since
    gathering the remaining rows costs about as much as a step. A frozen row
    still iterated until then is never written again, so a row's result is the
    value at which its own test passed, whatever the other rows do.
    """

    def __init__(self, bk, n):
        self.bk, self.out, self.idx, self.done, self.n_done, self.n = bk, None, None, None, 0, n

    def freeze(self, ok, values):
        """Write the rows ``ok`` (of the active rows) not frozen yet; True once every active row is."""
        xp = self.bk.xp
        if self.done is not None:
            ok = ok & ~self.done
        n_ok = int(xp.sum(xp.astype(ok, xp.int32)))
        if not n_ok:
            return False
        if self.out is None:
            self.out = xp.asarray(values, copy=True)
            self.idx = self.bk.arange(values.shape[0])
        elif n_ok == values.shape[0]:
            self.out[self.idx] = values
        else:
            self.out[self.idx[ok]] = values[ok]
        self.done = ok if self.done is None else (self.done | ok)
        self.n_done += n_ok
        return self.n_done == values.shape[0]

    def compact(self, carry):
        """``carry`` without the frozen rows, once they are at least a quarter of the active rows."""
        if self.done is None or 4 * self.n_done < self.idx.shape[0]:
            return carry
        keep = ~self.done
        self.idx, self.done, self.n_done = self.idx[keep], None, 0
        return tuple(a[keep] for a in carry)

    def settle(self, values):
        """The full minibatch: frozen rows from ``out``, the active ones from ``values``."""
        if self.out is None:
            return values
        if self.done is None:
            self.out[self.idx] = values
        else:
            keep = ~self.done
            self.out[self.idx[keep]] = values[keep]
        return self.out


def _settle(bk, out, idx, values):
    """The full minibatch: retired rows from ``out``, the last active rows from ``values``."""
    if idx is None:
        return values
    out[idx] = values
    return out


def nsm_update(W, L, X, R, *, W_mask=None, L_mask=None, lateral_decay=1.0):
    """Weight changes of Obeid Eq. (2) (Eq. 19 with structure) for one minibatch.

    .. math::

        \\Delta W_{ij} = r_i x_j - W_{ij}, \\qquad
        \\Delta L_{ij} = \\tfrac{1}{2} (r_i r_j - L_{ij})

    averaged over the minibatch, before the learning rate eta (the caller
    applies W += eta dW, L += eta dL; the factor 1/2 of Eq. 2 is in dL).
    Bahroun Eq. (4) and (8) are the same Hebbian terms (Delta V = y r^T for
    the label weights of S^2M is this rule with the label as input).

    With structure constants c^W, c^L in {0, 1} (Obeid Eq. 14, 19) the
    Hebbian terms are multiplied by the masks; disconnected weights start at
    zero and their change -W_ij is then exactly zero, so they stay zero.

    Parameters
    ----------
    W : (N, K), L : (N, N), (S, n, n) diagonal blocks of a block-diagonal L
    (then dL is blockwise too), or None (then dL is None), X : (B, K) inputs x,
    R : (B, N) fixed points r*.
    lateral_decay : float
        Factor of L in dL: 1 in Eq. (2); 1 / (1 + gamma) for the layers below
        the top of a deep network (Eq. 19, with c^L = 1).
    W_mask : (N, K) array of 0/1, optional. L_mask : (N, N) array of 0/1, optional.

    Returns
    -------
    dW : (N, K), dL : (N, N)
    """
    B = X.shape[0]
    H = (R.T @ X) / B
    if W_mask is not None:
        H = H * W_mask
    dW = H - W
    if L is None:  # feedforward only (the label weights V of S^2M)
        return dW, None
    if L.ndim == 3:  # block-diagonal L given by its (S, n, n) blocks
        bk = backend_of(R)
        Rb = _blocks(bk, R, L.shape[0])
        G = bk.xp.matmul(bk.xp.permute_dims(Rb, (0, 2, 1)), Rb) / B
        dL = 0.5 * (G - L) if lateral_decay == 1.0 else 0.5 * (G - lateral_decay * L)
        return dW, dL
    G = (R.T @ R) / B
    if L_mask is not None:
        G = G * L_mask
    dL = 0.5 * (G - L) if lateral_decay == 1.0 else 0.5 * (G - lateral_decay * L)
    return dW, dL


def deep_fixed_point(
    X, Ws, Ls, *, gamma=0.0, activation="relu", threshold=0.0, cap=1.0, step=None, tol=1e-4, max_iter=100, top_drive=None, accelerate=False
):
    r"""Fixed point of the deep network with feedback, Obeid Eq. (17), all layers at once.

    .. math::

        \tau \frac{du^{(p)}}{ds} = -u^{(p)} + \bar W^{(p)} r^{(p-1)} - (\bar L^{(p)} - I) r^{(p)}
            + (1 - \delta_{pP}) \gamma \bar W^{(p+1)\top} r^{(p+1)}, \quad r^{(p)} = f(u^{(p)})

    with r^(0) = x, integrated by Euler steps of size ``step`` in u (default
    min(1, 1 / max_p lambda_max(L^(p))) / (1 + gamma)). Starts from the
    bottom-up pass (gamma = 0 drives). A row stops (is frozen) once every
    layer's fixed-point residual max_i |f(u*(r))_i - r_i| is at most
    tol * max(1, max |W^(p) r^(p-1)|) (every f here is 1-Lipschitz, so the
    residual is bounded by the change of u / step).

    With structure (Eq. 14) the masked weights W-bar, L-bar are passed as
    arrays holding exact zeros where c = 0; the feedback weights are then
    W-bar^(p+1)^T, whose zeros are the transposed feedforward structure. A
    block-diagonal L^(p) may be given as its (S, n, n) diagonal blocks.

    A network of one layer is the network of Eq. (1): its fixed point is
    :func:`nsm_fixed_point`'s for the drive W x (+ ``top_drive``), whose
    projected steps in r (optionally ``accelerate``-d) reach the same fixed
    point as the Euler steps in u.

    Parameters
    ----------
    X : (B, K) inputs; Ws : list of (N_p, N_{p-1}) weights; Ls : list of
        (N_p, N_p) or (S_p, n_p, n_p) lateral weights.
    top_drive : (B, N_P) array, optional
        Extra drive of the top layer: V y for supervised similarity matching
        (S^2M, Bahroun Eq. 6) with the labels entering the top layer.
    accelerate : bool
        One layer only (ignored for several): see :func:`nsm_fixed_point`.

    Returns
    -------
    Rs : list of (B, N_p) outputs, bottom to top; n_steps : int
    """
    if len(Ws) == 1:
        D = X @ Ws[0].T
        if top_drive is not None:
            D = D + top_drive
        R, k = nsm_fixed_point(
            D, Ls[0], activation=activation, threshold=threshold, cap=cap, step=step, tol=tol, max_iter=max_iter, accelerate=accelerate
        )
        return [R], k
    bk = backend_of(X)
    xp = bk.xp
    P = len(Ws)
    B = X.shape[0]
    if step is None:
        step = min(1.0, min(nsm_step_size(L) for L in Ls)) / (1.0 + gamma)
    step = float(step)
    f = lambda u: nsm_activation(u, activation, threshold=threshold, cap=cap)  # noqa: E731
    # r -> r (L - I)^T, dense or blockwise
    lats = [_lateral_op(bk, L - xp.eye(L.shape[-1], dtype=X.dtype, device=bk.device)) for L in Ls]

    def drive(p, below):
        d = below @ Ws[p].T
        return d + top_drive if (p == P - 1 and top_drive is not None) else d

    d0 = drive(0, X)  # the first layer's feedforward drive W^(1) x is constant: formed once

    # bottom-up initial state
    us, rs, prev = [], [], X
    for p in range(P):
        u = d0 if p == 0 else drive(p, prev)
        us.append(u)
        rs.append(f(u))
        prev = rs[-1]
    stops = None
    for k in range(1, max_iter + 1):
        gs = []
        below = X
        drives = []
        for p in range(P):
            d = d0 if p == 0 else drive(p, below)
            drives.append(d)
            g = d - lats[p](rs[p]) - us[p]
            if p < P - 1 and gamma:
                g = g + gamma * (rs[p + 1] @ Ws[p + 1])
            gs.append(g)
            below = rs[p]
        if stops is None:
            stops = []
            for d in drives:
                sp = tol * xp.max(xp.abs(d), axis=1)
                stops.append(xp.where(sp > tol, sp, xp.zeros_like(sp) + tol))
        ok = None
        for g, sp in zip(gs, stops):
            o = xp.max(xp.abs(g), axis=1) <= sp
            ok = o if ok is None else (ok & o)
        n_ok = int(xp.sum(xp.astype(ok, xp.int32)))
        if n_ok == B:
            return rs, k
        keep = ok[:, None]
        us = [xp.where(keep, u, u + step * g) if n_ok else u + step * g for u, g in zip(us, gs)]
        rs = [f(u) for u in us]
    return rs, max_iter


def nsm_regularizer(R, activation="relu", *, threshold=0.0):
    """sum_i F(r_i) per sample, the regularizer of Obeid Eq. (3) and (8).

    F'(r) = u - r with r = f(u): F(r) = lambda r for the (capped) ReLU,
    0 for ``linear``, and F(r) = r artanh(r) + log(1 - r^2) / 2 - r^2 / 2 for
    ``tanh`` (F(0) = 0 in every case). Returns (B,).
    """
    xp = backend_of(R).xp
    if activation in ("relu", "capped_relu"):
        return threshold * xp.sum(R, axis=1)
    if activation == "linear":
        return xp.zeros_like(R[:, 0])
    if activation == "tanh":
        eps = 1e-6 if str(R.dtype).endswith("32") else 1e-12
        r = xp.clip(R, -1.0 + eps, 1.0 - eps)
        F = r * 0.5 * xp.log((1.0 + r) / (1.0 - r)) + 0.5 * xp.log(1.0 - r * r) - 0.5 * r * r
        return xp.sum(F, axis=1)
    raise ValueError(f"activation must be one of {NSM_ACTIVATIONS}; got {activation!r}")


def sm_gram_terms(X, R, n_blocks=None):
    """Sufficient statistics of the similarity matching cost for one minibatch.

    Returns (X^T X (K, K), R^T X (N, K), R^T R (N, N)); they add up over
    minibatches, so the cost of a whole data set is accumulated chunk by chunk.
    With ``n_blocks`` = S only the S diagonal (n, n) blocks of R^T R are
    formed, (S, n, n): the entries a block-diagonal c^L keeps.
    """
    if n_blocks is None:
        return X.T @ X, R.T @ X, R.T @ R
    bk = backend_of(R)
    Rb = _blocks(bk, R, n_blocks)
    return X.T @ X, R.T @ X, bk.xp.matmul(bk.xp.permute_dims(Rb, (0, 2, 1)), Rb)


def sm_cost_from_grams(XX, RX, RR, n, reg_sum=0.0, *, W_mask=None, L_mask=None):
    """The similarity matching cost from accumulated Gram matrices.

    .. math::

        \\frac{1}{T^2}\\Big(\\tfrac12 \\|X^\\top X\\|_F^2
            - \\sum_{ij} c^W_{ij} (R^\\top X)_{ij}^2
            + \\tfrac12 \\sum_{ij} c^L_{ij} (R^\\top R)_{ij}^2\\Big)
        + \\frac{2}{T} \\sum_t \\|F(r_t)\\|_1

    Without masks this is exactly Obeid Eq. (3),
    (1 / 2T^2) sum_{t t'} (x_t . x_t' - r_t . r_t')^2 + (2/T) sum_t ||F(r_t)||_1,
    expanded; with masks it is the structured cost of Eq. (11) plus the
    input-only term (1 / 2T^2) ||X^T X||^2 that Eq. (11) drops (a constant).
    ``reg_sum`` is sum_t ||F(r_t)||_1 (:func:`nsm_regularizer`, F >= 0).
    Returns a Python float.
    """
    # the Gram matrices are small (K x K, N x K, N x N): square and sum them in
    # float64 on the host, where squared entries of large inputs cannot overflow
    XX, RX, RR = (np.asarray(to_numpy(a), dtype=np.float64) for a in (XX, RX, RR))
    W_mask = None if W_mask is None else np.asarray(to_numpy(W_mask), dtype=np.float64)
    L_mask = None if L_mask is None else np.asarray(to_numpy(L_mask), dtype=np.float64)
    xp = np
    a = float(xp.sum(XX * XX))
    b = RX * RX if W_mask is None else RX * RX * W_mask
    c = RR * RR if L_mask is None else RR * RR * L_mask
    T = float(n)
    return (0.5 * a - float(xp.sum(b)) + 0.5 * float(xp.sum(c))) / (T * T) + 2.0 * float(reg_sum) / T
