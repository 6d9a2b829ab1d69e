"""The softmax shared by two papers.

Amit (2019) trains URFB's output layer with the softmax cross-entropy
(Section 3.2) and reports class probabilities as its softmax; Zhou (2022)
reads class probabilities from the output activations as
p(c | x) proportional to exp(a ||y(x, c)||^2) (Section III-B). Both are the
log-softmax over the last axis of a (B, C) score matrix.
"""

from __future__ import annotations

from .._backend import backend_of

__all__ = ["log_softmax"]


def log_softmax(Z):
    """log p_bc = z_bc - log sum_c' exp(z_bc') for every row of Z (B, C).

    Computed from z - max_c z, so it never overflows; ``exp`` of the result
    is the softmax (rows sum to 1).
    """
    xp = backend_of(Z).xp
    Z = Z - xp.max(Z, axis=1, keepdims=True)
    return Z - xp.log(xp.sum(xp.exp(Z), axis=1, keepdims=True))
