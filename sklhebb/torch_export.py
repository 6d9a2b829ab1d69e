"""Hand learned filters to PyTorch for fine-tuning (pre-training hand-off).

``KrotovPatchEncoder.to_torch()`` returns a ``torch.nn.Sequential`` whose first
module, :class:`NNLConv2d`, holds the filters in an ``nn.Conv2d`` and applies
the NNL-CONV normalisation and power, so the output equals ``transform`` (up
to layout: torch is channels-first). ``NSMEncoder.to_torch()`` gives the
feedforward layer W (``nn.Linear`` or ``nn.Conv2d``; optionally the linear
lateral fixed point), ``LocalCompetitiveEncoder.to_torch()`` its dense layers
and activations as an ``nn.Sequential`` equal to ``transform``. Torch is
imported lazily.

Every module is float32 by default, whatever dtype the model was fitted in (scikit-learn's data
sets are float64; torch's default, and what fine-tuning on a GPU wants, is float32); ``dtype=``
chooses another. Like any torch module, it takes input of its own dtype.
"""

from __future__ import annotations

import numpy as np

__all__ = ["nnl_conv2d_class", "krotov_to_torch", "nsm_to_torch", "competitive_to_torch"]


def nnl_conv2d_class():
    """The NNLConv2d module class (built on first use so torch stays optional)."""
    import torch
    from torch import nn

    class NNLConv2d(nn.Module):
        """NNL-CONV layer (Grinberg, Hopfield & Krotov 2019, Section 2) on NCHW input.

        Each W x W x C patch is (optionally centred and) normalised to a unit
        vector, dotted with the filters (``self.conv``, normalised to unit rows
        in ``forward``, so fine-tuning may change their scale freely), and passed
        through f(x) = ReLU(x)^power. Uncentred, with convolutions: the patch
        norm is sqrt(conv(x^2, ones)), so no patch matrix is materialised.
        Centred or whitened, the patches of the batch are cut (``unfold``),
        centred and normalised in float64 (sums of a nearly flat patch cancel:
        float32 lost 1e-2 on Fashion-MNIST), whitened ((u - mean) W, then unit
        norm again, as ``whiten`` does; ``whitening = (mean, W)`` in the
        unfolded patch order, fixed buffers), and the product with the filters
        runs in the module's dtype.
        """

        def __init__(self, weight, *, stride=1, power=1.0, center=False, whitening=None):
            super().__init__()
            K, C, kh, kw = weight.shape
            self.conv = nn.Conv2d(C, K, (kh, kw), stride=stride, bias=False, dtype=weight.dtype)
            with torch.no_grad():
                self.conv.weight.copy_(weight)
            self.power = float(power)
            self.center = bool(center)
            self.register_buffer("ones", torch.ones(1, C, kh, kw, dtype=weight.dtype))
            mean, W = (None, None) if whitening is None else (torch.as_tensor(a, dtype=torch.float64) for a in whitening)
            self.register_buffer("whitening_mean", mean)
            self.register_buffer("whitening", W)

        def forward(self, x):
            w = self.conv.weight
            w_unit = w / torch.linalg.vector_norm(w.flatten(1), dim=1).clamp_min(1e-30)[:, None, None, None]
            cos = self._cut_cos(x, w_unit) if (self.center or self.whitening is not None) else self._cos(x, w_unit)
            return torch.relu(cos) ** self.power

        def _cos(self, x, w_unit):
            stride = self.conv.stride
            dot = nn.functional.conv2d(x, w_unit, stride=stride)
            sq = nn.functional.conv2d(x * x, self.ones.to(x.dtype), stride=stride)
            # a zero patch gives cos 0; its square norm is replaced by 1 before the square root, whose
            # derivative at 0 is infinite and made the input's gradient NaN (0 * inf) wherever a patch
            # is black, so a module stacked on this one could not train
            nonzero = sq > 0
            norm = torch.sqrt(torch.where(nonzero, sq, torch.ones_like(sq)))
            return torch.where(nonzero, dot / norm, torch.zeros_like(dot))

        def _cut_cos(self, x, w_unit):
            n, _, H, W = x.shape
            kh, kw = self.conv.kernel_size
            sh, sw = self.conv.stride
            P = nn.functional.unfold(x.double(), (kh, kw), stride=(sh, sw))  # (n, C kh kw, L), conv weight order
            if self.center:
                P = P - P.mean(dim=1, keepdim=True)
            U = _unit_columns(P)  # a flat (centred) or black patch gives zeros
            if self.whitening is not None:
                # rows u -> (u - mean) W with W symmetric: on columns, W (u - mean)
                U = _unit_columns(torch.matmul(self.whitening, U - self.whitening_mean[:, None]))
            cos = torch.matmul(w_unit.flatten(1), U.to(x.dtype))  # (n, K, L)
            return cos.reshape(n, -1, (H - kh) // sh + 1, (W - kw) // sw + 1)

    def _unit_columns(P):
        """Every column (patch) of (n, D, L) scaled to unit norm; zero columns stay zero, with finite gradients."""
        norm = torch.linalg.vector_norm(P, dim=1, keepdim=True)
        nonzero = norm > 0
        return torch.where(nonzero, P / torch.where(nonzero, norm, torch.ones_like(norm)), torch.zeros_like(P))

    return NNLConv2d


def krotov_to_torch(est, *, pooling=True, dtype=None):
    """``torch.nn.Sequential(NNLConv2d, MaxPool2d)`` equal to ``est.transform``.

    The output is (n, K, ph, pw) (channels first); ``transform`` returns the
    same numbers flattened in (ph, pw, K) order.
    """
    import torch
    from torch import nn

    H, W, C = est.image_shape_
    win = est._window(est.image_shape_)
    kh, kw = (H, W) if win is None else (win, win)
    M = torch.as_tensor(est.components_, dtype=_torch_dtype(dtype))
    weight = M.reshape(M.shape[0], kh, kw, C).permute(0, 3, 1, 2).contiguous()
    whitening = None
    if hasattr(est, "whitening_"):
        # our patch vectors are ordered (row, column, channel), unfold's (channel, row, column)
        order = np.arange(kh * kw * C).reshape(kh, kw, C).transpose(2, 0, 1).ravel()
        whitening = (est.whitening_mean_[order], est.whitening_[np.ix_(order, order)])
    NNLConv2d = nnl_conv2d_class()
    layers = [NNLConv2d(weight, stride=1 if win is None else est.stride, power=est._power(), center=est.center, whitening=whitening)]
    if pooling:
        oh, ow = est._conv_size(est.image_shape_)
        size = (min(est.pool_size, oh), min(est.pool_size, ow))
        layers.append(nn.MaxPool2d(size, stride=est.pool_stride))
    return nn.Sequential(*layers)


def _torch_dtype(dtype):
    """The module's dtype: ``dtype``, or float32 (for a model fitted in any dtype)."""
    import torch

    return torch.float32 if dtype is None else dtype


def _modules():
    """Small activation/normalisation modules (built on first use so torch stays optional)."""
    import torch
    from torch import nn

    class RowNormalize(nn.Module):
        """Scale every row to a unit vector; zero rows stay zero (``normalize_input``)."""

        def forward(self, x):
            norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
            tiny = torch.finfo(x.dtype).tiny
            return torch.where(norm > tiny, x / norm.clamp_min(tiny), torch.zeros_like(x))

    class SquareNormalize(nn.Module):
        """Zhou Appendix B: square every output, then scale each row to a unit vector."""

        def __init__(self, eps=1e-12):
            super().__init__()
            self.eps = float(eps)

        def forward(self, y):
            s = y * y
            n = torch.linalg.vector_norm(s, dim=1, keepdim=True)
            return s / torch.where(n > self.eps, n, torch.ones_like(n))

    class Abs(nn.Module):
        """|y| (Zhou Section III-A)."""

        def forward(self, y):
            return torch.abs(y)

    class StdAbs(nn.Module):
        """Zhou Eq. (7) with the running statistics frozen as buffers."""

        def __init__(self, mean, var, var_floor=1e-5, norm_floor=1e-5):
            super().__init__()
            self.register_buffer("running_mean", mean)
            self.register_buffer("running_var", var)
            self.var_floor, self.norm_floor = float(var_floor), float(norm_floor)

        def forward(self, y):
            z = (torch.abs(y) - self.running_mean) / torch.sqrt(self.running_var.clamp_min(self.var_floor))
            nz = torch.linalg.vector_norm(z, dim=1, keepdim=True)
            beta = torch.linalg.vector_norm(y, dim=1, keepdim=True) / nz.clamp_min(self.norm_floor)
            return z * beta

    class LinearLateral(nn.Module):
        """Fixed point of linear NSM dynamics, r = L^{-1} (W x), with L a fixed buffer.

        Exact for ``activation="linear"`` (the iterative dynamics of ``transform``
        converge to it, up to their tolerance ``tol``).
        """

        def __init__(self, L):
            super().__init__()
            self.register_buffer("lateral", L)

        def forward(self, d):
            return torch.linalg.solve(self.lateral, d.T).T

    return RowNormalize, SquareNormalize, Abs, StdAbs, LinearLateral


def nsm_to_torch(est, *, lateral=False, dtype=None):
    """The feedforward layer W of a fitted NSMEncoder as a torch module.

    * fully connected (and ``structure="local"``): ``nn.Linear(K, N, bias=False)``
      with ``weight = components_ * input_scale_``, output W (input_scale_ x) for flattened rows x
      (``(H, W, C)`` order for images). The structure mask is not enforced
      during fine-tuning: multiply the weight by ``feedforward_mask_`` to keep it.
    * convolutional (``window`` set): ``nn.Conv2d(C, N, window, stride=stride,
      bias=False)`` holding the shared filters, output the drive W p of every
      raw patch p, channels first (NCHW). The patch normalisation/centring,
      the lateral dynamics and the pooling of ``transform`` are not in it.
    * ``lateral=True`` (fully connected with ``activation="linear"`` only):
      ``nn.Sequential(Linear, LinearLateral)``, whose output r = L^{-1} W x is
      the fixed point ``transform`` computes.

    The recurrent lateral dynamics of the other activations have no closed
    form and are not part of the module (Bahroun et al. Sec. 5 fine-tune the
    feedforward filters).
    """
    import torch
    from torch import nn

    if hasattr(est, "whitening_"):
        raise ValueError("to_torch does not export the patch whitening (whiten); refit with whiten=None to export the layer.")
    if est.hidden_layer_sizes:
        raise ValueError("to_torch does not export deep networks (hidden_layer_sizes); use hidden_layer_sizes=().")
    dt = _torch_dtype(dtype)
    # the network sees input_scale_ * x: the factor is folded into the weights
    W = torch.as_tensor(est.components_ * est.input_scale_, dtype=dt)
    N, K = W.shape
    if est._conv():
        if lateral:
            raise ValueError("lateral=True is only available for the fully connected network (window=None).")
        H, Wd, C = est.image_shape_
        conv = nn.Conv2d(C, N, est.window, stride=est.stride, bias=False, dtype=dt)
        with torch.no_grad():
            conv.weight.copy_(W.reshape(N, est.window, est.window, C).permute(0, 3, 1, 2))
        return conv
    linear = nn.Linear(K, N, bias=False, dtype=dt)
    with torch.no_grad():
        linear.weight.copy_(W)
    if not lateral:
        return linear
    if est.activation != "linear" or est._structure() is not None:
        raise ValueError(
            "lateral=True is exact only for activation='linear' with a dense L (structure=None); "
            f"got activation={est.activation!r}, structure={est._structure()!r}."
        )
    LinearLateral = _modules()[-1]
    return nn.Sequential(linear, LinearLateral(torch.as_tensor(est.lateral_, dtype=dt)))


def competitive_to_torch(est, *, dtype=None):
    """``nn.Sequential`` equal to a fitted LocalCompetitiveEncoder's ``transform``.

    [RowNormalize] (with ``normalize_input``), then for every layer
    ``nn.Linear(n_in, n_out, bias=False)`` (``weight = coefs_[i].T``) and the
    activation module (SquareNormalize, Abs, StdAbs with frozen running
    statistics, or Identity). With ``return_layers="all"`` the layers sit in an
    ``AllLayerOutputs`` module that concatenates every layer's features, as
    ``transform`` does. Each layer's features leave the module multiplied by
    its ``feature_scale`` factor (a ``FeatureScale`` module; the layers above
    see the unscaled features, as in ``transform``). Locally connected layers
    (``window``) are refused with a ValueError.
    """
    import torch
    from torch import nn

    if est.window is not None:
        raise ValueError(f"to_torch exports fully connected layers only; window={est.window!r} (locally connected layers) is not supported.")
    RowNormalize, SquareNormalize, Abs, StdAbs, _ = _modules()
    dt = _torch_dtype(dtype)
    head = [RowNormalize()] if est.normalize_input else []
    stages = []
    for W, mean, var in zip(est.coefs_, est.running_mean_, est.running_var_):
        n_in, n_out = W.shape
        linear = nn.Linear(n_in, n_out, bias=False, dtype=dt)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(W, dtype=dt).T)
        if est.activation == "square_normalize":
            act = SquareNormalize()
        elif est.activation == "abs":
            act = Abs()
        elif est.activation == "std_abs":
            act = StdAbs(torch.as_tensor(mean, dtype=dt), torch.as_tensor(var, dtype=dt))
        else:
            act = nn.Identity()
        stages.append((linear, act))

    class FeatureScale(nn.Module):
        """Multiply by the layer's ``feature_scale`` factor (output features only)."""

        def __init__(self, factor):
            super().__init__()
            self.factor = float(factor)

        def forward(self, x):
            return x * self.factor

    scales = [FeatureScale(f) for f in est._feature_scales()]
    if est.return_layers == "top":
        return nn.Sequential(*head, *[m for stage in stages for m in stage], scales[-1])

    class AllLayerOutputs(nn.Module):
        """Run the layers in order and concatenate every layer's scaled features (``return_layers="all"``)."""

        def __init__(self, head, stages, scales):
            super().__init__()
            self.head = nn.Sequential(*head)
            self.stages = nn.ModuleList(nn.Sequential(*stage) for stage in stages)
            self.scales = nn.ModuleList(scales)

        def forward(self, x):
            x = self.head(x)
            outs = []
            for stage, scale in zip(self.stages, self.scales):
                x = stage(x)
                outs.append(scale(x))
            return torch.cat(outs, dim=1)

    return AllLayerOutputs(head, stages, scales)
