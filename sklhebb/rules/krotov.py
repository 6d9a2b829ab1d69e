"""Krotov-Hopfield competing hidden units (Grinberg, Hopfield & Krotov 2019)."""

from __future__ import annotations

from .. import _ranks
from .._backend import backend_of

__all__ = ["krotov_currents", "krotov_update"]


# --------------------------------------------------------------------------
# Grinberg, Hopfield & Krotov (2019), "Local unsupervised learning for image
# analysis", Eq. (1)-(2); Krotov & Hopfield (2019, PNAS) for the Lebesgue p.
# --------------------------------------------------------------------------
def krotov_currents(M, V, *, p=2.0):
    """Input currents I_{A mu} = sum_j sign(M_{mu j}) |M_{mu j}|^(p-1) v_j^A.

    M: (K, N) synapses M_{mu i}; V: (B, N) patches v^A. Returns (B, K). At
    p = 2 this is the plain dot product sum_j M_{mu j} v_j^A of Eq. (1).
    """
    bk = backend_of(M)
    xp = bk.xp
    if p == 2:
        Mp = M
    else:
        Mp = xp.sign(M) * xp.abs(M) ** (p - 1)
    return V @ Mp.T


def krotov_update(M, V, *, rank=2, delta=0.4, p=2.0, normalize=True, currents=None):
    """Weight change of Eq. (1)-(2) for one minibatch (before the learning rate).

    .. math::

        \\Delta M_{\\mu i} = \\sum_{A} g[\\mathrm{Rank}(I_{A\\mu})]
                            \\left[v_i^A - I_{A\\mu} M_{\\mu i}\\right],
        \\qquad g(1) = 1,\\; g(m) = -\\Delta,\\; g = 0 \\text{ otherwise}

    with the currents I of :func:`krotov_currents` (the paper's
    sum_k M_{mu k} v_k^A at p = 2). Ranking is per patch A.

    Parameters
    ----------
    M : (K, N) array
        Synapses, one row per hidden unit (channel) mu.
    V : (B, N) array
        Minibatch of patches v^A (rows).
    rank : int
        m, the rank of the unit that receives the anti-Hebbian push.
    delta : float
        Delta >= 0, strength of the anti-Hebbian push.
    p : float
        Lebesgue exponent (2 in the paper).
    normalize : bool
        Divide the change by its largest absolute entry, as the authors'
        reference code does, so that the largest weight change equals the
        learning rate. False gives the literal sum of Eq. (1).
    currents : (B, K) array, optional
        Precomputed :func:`krotov_currents` (saves a product).

    Returns
    -------
    dM : (K, N) array, same namespace, device and dtype as M.

    Notes
    -----
    Only two units per patch have g != 0, so the Hebbian sum
    sum_A g_{A mu} v_i^A is a row scatter-add of the patches (O(B N)), not a
    second dense product, and the decay coefficients
    sum_A g_{A mu} I_{A mu} are two bincounts.
    """
    bk = backend_of(M)
    xp = bk.xp
    K = M.shape[0]
    # currents, then per patch A the strongest driven unit (rank 1) and the
    # unit of rank m, with their currents I_{A mu}
    own = currents is None
    I = krotov_currents(M, V, p=p) if own else currents
    (top, anti), (I_top, I_anti) = bk.top_rank(I, (1, rank), overwrite=own, return_values=True)
    # Hebbian term sum_A g(Rank) v^A, g = 1 at rank 1 and -delta at rank m:
    # a sparse g with two entries per patch
    dM = bk.sparse_gT_matmul([top, anti], [1.0, -delta], V, K)
    # decay term (sum_A g_{A mu} I_{A mu}) M_{mu i}
    decay = bk.bincount(top, I_top, K) - delta * bk.bincount(anti, I_anti, K)
    dM -= decay[:, None] * M  # dM is our own fresh array: in place
    # the sum over the patches of every rank under data_parallel (identity in one process)
    dM = _ranks.sum_over_ranks(bk, dM)
    if normalize:
        scale = xp.max(xp.abs(dM))
        # the reference code's floor (prec = 1e-30): an all-zero change stays zero
        dM /= xp.where(scale > 1e-30, scale, xp.ones_like(scale))
    return dM
