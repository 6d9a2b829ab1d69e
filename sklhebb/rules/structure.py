"""The geometry of similarity matching networks: layer sizes and structure constants.

Obeid, Ramambason & Pehlevan (2019), Sec. 3, Fig. 1A and Sec. 6.2: a
structured layer places its neurons on a grid of sites over its input grid;
a neuron sees the inputs within a radius of its site (c^W_ij = 1) and
inhibits the neurons of the sites within a lateral radius (c^L_ij = 1). In a
deep structured network layer p's input grid is layer p-1's site grid, with
that layer's neurons per site as channels (Eq. 13). A fully connected layer is
the same record without structure constants.

Where only the neurons of the same site inhibit each other (lateral radius
below the site stride), c^L is block-diagonal and L is stored as its diagonal
blocks, (S, n, n) for S sites of n neurons: memory and work grow with the
number of sites, not with its square.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

__all__ = ["Layer", "dense_layers", "lateral_identity", "local_structure", "site_grid", "structured_layers"]


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer of a similarity matching network: W is (n_units, n_inputs), L (n_units, n_units).

    ``W_mask`` (c^W, bool, shape of W) and ``L_mask`` (c^L, bool, shape of L)
    are None without structure; ``L_mask`` is also None where L is stored as
    ``n_blocks`` diagonal blocks (``n_blocks`` is None for a dense L).
    """

    n_inputs: int
    n_units: int
    W_mask: np.ndarray | None = None
    L_mask: np.ndarray | None = None
    n_blocks: int | None = None


def dense_layers(n_inputs, sizes):
    """Fully connected layers of ``sizes`` units, bottom first, on ``n_inputs`` inputs."""
    fan_ins = [int(n_inputs)] + [int(n) for n in sizes[:-1]]
    return [Layer(k, int(n)) for k, n in zip(fan_ins, sizes)]


def site_grid(height, width, site_stride):
    """Number of sites (rows, columns) of a layer with sites every ``site_stride`` points of its input grid."""
    return -(-height // site_stride), -(-width // site_stride)


def local_structure(image_shape, n_per_site, site_stride, radius, lateral_radius, *, dense_lateral=True):
    """Structure constants c^W, c^L of a locally connected layer (Obeid Fig. 1A).

    Sites sit every ``site_stride`` points of the input grid (at the centres of
    the site_stride x site_stride blocks); each site holds ``n_per_site``
    neurons, connected to every channel of the grid points within Euclidean
    distance ``radius`` of the site; two neurons inhibit each other when their
    sites are within ``lateral_radius`` (0: neurons of the same site only).

    Returns (W_mask (N, H*W*C), L_mask (N, N)) as float64 0/1 arrays, neurons
    ordered (site row, site column, neuron), inputs (row, column, channel).
    ``dense_lateral=False`` returns None for L_mask (block-diagonal lateral
    structure, stored as blocks).
    """
    H, W, C = image_shape
    s = site_stride
    ny, nx = site_grid(H, W, s)
    cy = np.arange(ny) * s + (s - 1) / 2.0
    cx = np.arange(nx) * s + (s - 1) / 2.0
    sites = np.stack(np.meshgrid(cy, cx, indexing="ij"), axis=-1).reshape(-1, 2)  # (S, 2)
    pix = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), axis=-1).reshape(-1, 2)  # (HW, 2)
    d2 = ((sites[:, None, :] - pix[None, :, :]) ** 2).sum(-1)  # (S, HW)
    conn = d2 <= radius * radius + 1e-9
    conn = np.repeat(conn, C, axis=1)  # (S, HW*C), channel last
    W_mask = np.repeat(conn, n_per_site, axis=0).astype(np.float64)
    if not dense_lateral:
        return W_mask, None
    sd2 = ((sites[:, None, :] - sites[None, :, :]) ** 2).sum(-1)
    lat = sd2 <= lateral_radius * lateral_radius + 1e-9
    L_mask = np.kron(lat, np.ones((n_per_site, n_per_site))).astype(np.float64)
    return W_mask, L_mask


def _per_layer(name, value, n_layers, kind):
    """A structure parameter's value for every layer, bottom first (a number is repeated), checked."""
    if isinstance(value, (tuple, list)):
        if len(value) != n_layers:
            raise ValueError(
                f"{name}={value!r} has {len(value)} entries but the network has {n_layers} layer(s) "
                "(len(hidden_layer_sizes) + 1): give one entry per layer, bottom first, or a single number."
            )
        values = list(value)
    else:
        values = [value] * n_layers
    integral, lo = kind == "int", (1 if kind == "int" else 0)
    for v in values:
        if not isinstance(v, (Integral if integral else Real)) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must hold {'integers >= 1' if integral else 'numbers >= 0'}; got {value!r}")
    return values


def structured_layers(image_shape, sizes, site_stride, radius, lateral_radius, *, blocks=True):
    """The layers of a (deep) structured network on images of ``image_shape`` (H, W, C), bottom first.

    ``sizes`` are the neurons per site of every layer; ``site_stride``,
    ``radius`` and ``lateral_radius`` are one number for every layer or one
    per layer, in units of that layer's input grid (pixels for the first,
    layer p-1's sites for layer p). A layer whose lateral radius is below its
    site stride has a block-diagonal c^L; with ``blocks`` its L is stored as
    (S, n, n) blocks (``n_blocks`` = S, ``L_mask`` None), else as a dense
    masked (N, N) matrix.
    """
    P = len(sizes)
    strides = _per_layer("site_stride", site_stride, P, "int")
    radii = _per_layer("radius", radius, P, "real")
    lats = _per_layer("lateral_radius", lateral_radius, P, "real")
    layers, shape = [], tuple(int(v) for v in image_shape)
    for n, s, r, lr in zip(sizes, strides, radii, lats):
        n, s = int(n), int(s)
        ny, nx = site_grid(shape[0], shape[1], s)
        n_blocks = ny * nx if (blocks and lr < s) else None
        W_mask, L_mask = local_structure(shape, n, s, float(r), float(lr), dense_lateral=n_blocks is None)
        layers.append(Layer(W_mask.shape[1], W_mask.shape[0], W_mask.astype(bool), None if L_mask is None else L_mask.astype(bool), n_blocks))
        shape = (ny, nx, n)
    return layers


def lateral_identity(layer, dtype):
    """L = I of ``layer``: (N, N), or its (S, n, n) identity blocks where L is stored as blocks."""
    if layer.n_blocks is None:
        return np.eye(layer.n_units, dtype=dtype)
    n = layer.n_units // layer.n_blocks
    return np.broadcast_to(np.eye(n, dtype=dtype), (layer.n_blocks, n, n)).copy()
