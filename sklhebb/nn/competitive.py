"""Zhou's networks: stacks of linear layers that learn by the local competitive rule.

H. Zhou, "Activation Learning by Local Competitions" (arXiv 2209.13400),
Sections II-V. The layers are the kit's own, linear (y = w^T x):
:class:`~sklhebb.nn.Dense`, or :class:`~sklhebb.nn.UntiedConv` for the
locally connected layers of Section V, each learning by its
``competitive_increment`` (Eq. 4, :func:`sklhebb.rules.competitive_update`).
This module adds what Zhou's networks put around them: the
magnitude-preserving activations between the layers with their running
statistics, the normalised input, the truncated-normal start.

Samples travel as flat rows (B, n); a locally connected layer reads and
writes its rows as (H, W, C) maps. Its weights are stored
(H, W, k*k*C_in, C_out). Used by
:class:`~sklhebb.encoders.competitive.LocalCompetitiveEncoder` and
:class:`~sklhebb.classifiers.activation.ActivationLearningClassifier`.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _ranks, rules
from ..image import normalize_rows
from .layers import Dense, UntiedConv

__all__ = [
    "ACTIVATIONS",
    "dense",
    "local",
    "n_outputs",
    "init_weights",
    "init_statistics",
    "forward",
    "input_gradient",
    "activate",
    "normalize_input",
    "apply_deltas",
    "over_ranks",
]

ACTIVATIONS = ("square_normalize", "abs", "std_abs", "identity")
_STAT_INIT_VAR = 0.1  # sigma^2 of std_abs at start (authors' code)


def dense(n_in, n_out):
    """A fully connected linear layer from n_in to n_out units."""
    layer = Dense(n_out, activation=False)
    layer.build([(int(n_in),)])
    return layer


def local(in_shape, window, channels):
    """A locally connected linear layer (Section V): ``channels`` units per position of an (H, W, C) map.

    Each unit sees the ``window`` x ``window`` neighbourhood centred on its
    position, zero outside the map, so ``window`` must be odd; the output map
    has the input's size.
    """
    if window % 2 != 1:
        raise ValueError(f"window must be odd (a window centred on each unit); got {window}.")
    layer = UntiedConv(channels, window, activation=False)
    layer.build([tuple(int(s) for s in in_shape)])
    return layer


def n_outputs(layer):
    """Output units of a layer (H * W * C_out for a locally connected one)."""
    return math.prod(layer.out_shape)


def init_weights(rng, layer, std, dtype):
    """N(0, std^2) truncated at +-2 std (the authors' init), drawn on the host, in the stored layout.

    Weights of a locally connected layer that would see outside the map are
    zero (and stay zero under the rule).
    """
    W = layer.truncated_normal(rng, std, dtype)
    return W.reshape(W.shape[:2] + (-1, W.shape[-1])) if W.ndim == 6 else W


def init_statistics(n, dtype):
    """Running statistics of |y| for ``std_abs`` at start: mean 0, variance 0.1 per unit (authors' code)."""
    return np.zeros(n, dtype=dtype), np.full(n, _STAT_INIT_VAR, dtype=dtype)


def forward(bk, layer, W, X):
    """Net input y = w^T x of one layer for flat rows X (B, n_in): (B, n_out)."""
    Y, _ = layer.forward(bk, {"W": W}, X)
    return bk.xp.reshape(Y, (X.shape[0], n_outputs(layer)))


def input_gradient(bk, layer, W, G):
    """Gradient with respect to the layer's input rows of sum(G * y), y = w^T x: (B, n_in)."""
    U = layer.propagate(G, W, None)
    return bk.xp.reshape(U, (G.shape[0], math.prod(layer.in_shape)))


def activate(activation, Y, mean, var):
    """phi(y) for a flat (B, m) net input: one of :data:`ACTIVATIONS`."""
    if activation == "std_abs":
        return rules.std_abs(Y, mean, var)
    if activation == "abs":
        return rules.abs_activation(Y)
    if activation == "square_normalize":
        return rules.square_normalize(Y)
    return Y


def normalize_input(bk, X, strength=1.0):
    """Each row to squared norm ``strength`` (zero rows stay zero)."""
    Xn = normalize_rows(bk, X)
    return Xn if strength == 1.0 else Xn * math.sqrt(strength)


def apply_deltas(params, names, deltas, weight_decay=0.0, weight_clip=None, xp=None):
    """W <- W + dW (- weight_decay * W, then clip to +-weight_clip) for each named weight."""
    for name, dW in zip(names, deltas):
        W = params[name] + dW
        if weight_decay:
            W = W - weight_decay * params[name]
        if weight_clip is not None:
            W = xp.clip(W, -weight_clip, weight_clip)
        params[name] = W


def over_ranks(bk, deltas, moments, count):
    """A step's weight changes and std_abs moments, means over its ``count`` rows, as means over the
    rows of every rank: one all-reduce under data_parallel, the identity in one process.

    ``moments``: (layer, s1, s2) triples of :func:`sklhebb.rules.abs_moments`. Returns (deltas, moments).
    """
    flat = list(deltas) + [m for _, s1, s2 in moments for m in (s1, s2)]
    if not flat:
        return deltas, moments
    out = _ranks.mean_over_ranks(bk, *flat, count=count)
    out = out if len(flat) > 1 else (out,)
    n = len(deltas)
    return list(out[:n]), [(i, out[n + 2 * j], out[n + 2 * j + 1]) for j, (i, *_) in enumerate(moments)]
