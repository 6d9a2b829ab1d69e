"""Loop oracles shared by several test modules: literal float64 transcriptions of the papers' equations."""

import numpy as np


def oracle_krotov_update(M, V, rank, delta, p, normalize):
    """Eq. (1)-(2) of Grinberg, Hopfield & Krotov, one loop per index, float64.

    Currents use sign(M)|M|^(p-1) as in Krotov & Hopfield (PNAS 2019).
    """
    K, N = M.shape
    dM = np.zeros((K, N))
    for A in range(V.shape[0]):
        v = V[A]
        currents = [sum(np.sign(M[mu, j]) * abs(M[mu, j]) ** (p - 1) * v[j] for j in range(N)) for mu in range(K)]
        order = sorted(range(K), key=lambda mu: -currents[mu])  # Rank 1 = strongest driven
        g = [0.0] * K
        g[order[0]] += 1.0
        g[order[rank - 1]] += -delta
        for mu in range(K):
            if g[mu] == 0:
                continue
            for i in range(N):
                dM[mu, i] += g[mu] * (v[i] - currents[mu] * M[mu, i])
    if normalize:
        dM = dM / max(np.max(np.abs(dM)), 1e-30)
    return dM


def oracle_max_pool(F, size, stride):
    """Max over each size x size window of a (n, h, w, K) map, every ``stride``; ``size`` clipped to the map."""
    n, h, w, K = F.shape
    sy, sx = min(size, h), min(size, w)
    ph, pw = (h - sy) // stride + 1, (w - sx) // stride + 1
    out = np.zeros((n, ph, pw, K))
    for i in range(n):
        for a in range(ph):
            for b in range(pw):
                out[i, a, b] = F[i, a * stride : a * stride + sy, b * stride : b * stride + sx].max(axis=(0, 1))
    return out
