"""A small feed-forward graph of layers with an explicit feedback pass.

Parameters live in one flat dict of device arrays (the shape the minibatch
driver wants): ``"W3"``, ``"R3"``, ``"b3"`` for the weight layer at node 3.
Connectivity masks live in a second dict with the same keys (``"W3"``,
``"R3"``) holding 0/1 arrays; a missing key means full connectivity.
"""

from __future__ import annotations

import numpy as np

from .layers import Dropout, Layer, Sum

__all__ = ["Network"]


class Network:
    """Layers wired in sequence, with residual SUM nodes adding two earlier maps.

    Parameters
    ----------
    layers : list of Layer
        In order. A :class:`~sklhebb.nn.Sum` adds the outputs of the two layers
        listed just before it; every other layer reads the output of the layer
        before it (the first one reads the input).
    input_shape : tuple
        Shape of one sample, (H, W, C) for images or (d,) / (1, 1, d) for rows.
    ramp_scale : float
        s of the saturated linearity clip(s h, -1, 1) of every non-output
        weight layer.
    use_bias : bool
        Give every weight layer a bias (not in the paper).
    """

    def __init__(self, layers, input_shape, *, ramp_scale=0.5, use_bias=False):
        self.layers = list(layers)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.parents = []
        shapes = []
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} is not a sklhebb.nn layer: {layer!r}")
            if isinstance(layer, Sum):
                if i < 2:
                    raise ValueError("SUM needs two layers before it")
                parents = [i - 2, i - 1]
            else:
                parents = [i - 1]
            self.parents.append(parents)
            in_shapes = [self.input_shape if j < 0 else shapes[j] for j in parents]
            if layer.has_weights:
                layer.scale = float(ramp_scale)
                layer.bias = bool(use_bias)
            shapes.append(tuple(layer.build(in_shapes)))
        self.shapes = shapes
        self.output_shape = shapes[-1] if shapes else self.input_shape
        self.weight_nodes = [i for i, layer in enumerate(self.layers) if layer.has_weights]

    # -------------------------------------------------------------- params
    def init_params(self, rng, dtype, *, feedback="random", connectivity=1.0, prune_last=False):
        """Draw the initial weights on the host (NumPy), Glorot-uniform.

        Parameters
        ----------
        rng : numpy RandomState
        dtype : str
        feedback : {"random", "copy", None}
            R drawn independently of W ("random"), R = W ("copy": the
            back-propagation start of Zipser & Rumelhart), or no R (None).
        connectivity : float in (0, 1]
            Probability that a connection exists; W and R get independent
            masks (Section 4). The pruned entries are set to zero.
        prune_last : bool
            Also prune the last weight layer (the author's code never does).

        Returns
        -------
        params, masks : dicts of NumPy arrays
        """
        params, masks = {}, {}
        for n, i in enumerate(self.weight_nodes):
            layer = self.layers[i]
            W = layer.init_weights(rng, dtype)
            R = None
            if feedback == "random":
                R = layer.init_weights(rng, dtype)
            elif feedback == "copy":
                R = W.copy()
            prune = connectivity < 1.0 and (prune_last or n < len(self.weight_nodes) - 1)
            support = layer.support(dtype) if hasattr(layer, "support") else None
            if prune or support is not None:
                mW = (rng.random_sample(W.shape) < connectivity).astype(dtype) if prune else np.ones(W.shape, dtype)
                mR = mW.copy() if (feedback == "copy" or not prune) else (rng.random_sample(W.shape) < connectivity).astype(dtype)
                if support is not None:  # a fixed structure: entries outside it stay zero
                    mW, mR = mW * support, mR * support
                masks[f"W{i}"] = mW
                W = W * mW
                if R is not None:
                    masks[f"R{i}"] = mR
                    R = R * mR
            params[f"W{i}"] = W
            if R is not None:
                params[f"R{i}"] = R
            if layer.bias:
                params[f"b{i}"] = layer.init_bias(dtype)
        return params, masks

    def draw_masks(self, rng, batch, dtype):
        """Dropout masks for one minibatch, drawn on the host (numpy Generator)."""
        return {i: layer.draw_mask(rng, batch, dtype) for i, layer in enumerate(self.layers) if isinstance(layer, Dropout) and layer.rate > 0}

    @staticmethod
    def _view(params, i):
        return {k[0]: params[k] for k in (f"W{i}", f"R{i}", f"b{i}") if k in params}

    # ------------------------------------------------------------- forward
    def forward(self, bk, params, x, *, train=False, masks=None):
        """Forward pass of a minibatch x (B, *input_shape).

        With ``train=True`` returns ``(output, caches)`` where the caches hold
        what the feedback pass needs (inputs/patches, sigma' and dropout masks);
        ``masks`` maps a dropout node to its (B, ...) mask (scaled by 1/(1-p)),
        on ``bk``. With ``train=False`` returns ``(output, None)`` and dropout
        is off.
        """
        outs = []
        caches = [] if train else None
        for i, layer in enumerate(self.layers):
            ins = [x if j < 0 else outs[j] for j in self.parents[i]]
            arg = ins if isinstance(layer, Sum) else ins[0]
            mask = None if masks is None else masks.get(i)
            if train and isinstance(layer, Dropout) and layer.rate > 0 and mask is None:
                raise ValueError(f"training forward pass needs a dropout mask for node {i}")
            y, cache = layer.forward(bk, self._view(params, i), arg, train=train, mask=mask)
            outs.append(y)
            if train:
                caches.append(cache)
        return (outs[-1] if outs else x), caches

    # ------------------------------------------------------------ feedback
    def feedback(
        self,
        bk,
        params,
        caches,
        delta,
        *,
        use="R",
        on_increment=None,
        propagate="pre_update",
        error_clip=0.0,
        feedback_weights=None,
    ):
        """Top-down feedback pass from the output error ``delta`` (B, C).

        For every weight layer, from the top: E = sigma'(h) * G (the error at
        the field), the Hebbian increment (1/B) x^T E, and the error sent
        down, G_below = E F^T with F = params["R<i>"] (``use="R"``: URFB, FRFB)
        or params["W<i>"] (``use="W"``: back-propagation). ``on_increment(i,
        incs)`` is called once per weight layer with ``incs = {"W": dW, "b":
        db}`` and may update ``params`` in place: ``propagate="pre_update"``
        propagates through the feedback weights as they were before the call
        (the paper-era code), ``"post_update"`` through the updated ones
        (the author's code from 2019-04). ``error_clip`` = beta_b > 0 clips
        the propagated error to clip(beta_b G, -1, 1) (off at 0).
        ``feedback_weights`` maps a node to the array to propagate through
        instead (a stale copy, e.g. refreshed once per epoch as the author's
        untied phase does). The input layer's error is never computed.

        Returns the list of increments, one dict per weight layer (bottom up).
        """
        xp = bk.xp
        n = len(self.layers)
        grads = [None] * n
        grads[n - 1] = delta
        # owned[j]: grads[j] is a new array nobody else holds, so the error at
        # the field may be written over it (saves a map-sized allocation per layer)
        owned = [False] * n
        incs_all = {}
        for i in range(n - 1, -1, -1):
            g = grads[i]
            if g is None:
                continue
            layer = self.layers[i]
            parents = self.parents[i]
            needed = [j >= 0 for j in parents]
            if layer.has_weights:
                E = layer.error(g, caches[i], inplace=owned[i])
                incs = layer.increment(E, caches[i])
                incs_all[i] = incs
                down = None
                if propagate == "post_update" and on_increment is not None:
                    on_increment(i, incs)
                if needed[0]:
                    F = params[f"{use}{i}"] if feedback_weights is None else feedback_weights[i]
                    down = layer.propagate(E, F, caches[i])
                    if error_clip > 0:
                        down = xp.clip(error_clip * down, -1.0, 1.0)
                if propagate != "post_update" and on_increment is not None:
                    on_increment(i, incs)
                downs = [down]
            else:
                if not any(needed):
                    continue
                downs = layer.propagate(g, caches[i])
            for j, d, need in zip(parents, downs, needed):
                if need and d is not None:
                    if grads[j] is None:
                        grads[j], owned[j] = d, layer.new_feedback
                    else:
                        grads[j], owned[j] = grads[j] + d, True
            grads[i] = None
        return [incs_all[i] for i in self.weight_nodes if i in incs_all]

    def describe(self):
        return "; ".join(layer.describe() for layer in self.layers)
