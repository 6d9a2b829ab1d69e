"""Hand learned filters to PyTorch for fine-tuning (pre-training hand-off).

``KrotovPatchEncoder.to_torch()`` returns a ``torch.nn.Sequential`` whose first
module, :class:`NNLConv2d`, holds the filters in an ``nn.Conv2d`` and applies
the NNL-CONV normalisation and power, so the output equals ``transform`` (up
to layout: torch is channels-first). Torch is imported lazily.
"""

from __future__ import annotations

__all__ = ["nnl_conv2d_class", "krotov_to_torch"]


def nnl_conv2d_class():
    """The NNLConv2d module class (built on first use so torch stays optional)."""
    import torch
    from torch import nn

    class NNLConv2d(nn.Module):
        """NNL-CONV layer (Grinberg, Hopfield & Krotov 2019, Section 2) on NCHW input.

        Each W x W x C patch is (optionally centred and) normalised to a unit
        vector, dotted with the filters (``self.conv``, normalised to unit rows
        in ``forward``, so fine-tuning may change their scale freely), and passed
        through f(x) = ReLU(x)^power. Implemented with convolutions: the patch
        norm is sqrt(conv(x^2, ones)), so no patch matrix is materialised.
        """

        def __init__(self, weight, *, stride=1, power=1.0, center=False):
            super().__init__()
            K, C, kh, kw = weight.shape
            self.conv = nn.Conv2d(C, K, (kh, kw), stride=stride, bias=False, dtype=weight.dtype)
            with torch.no_grad():
                self.conv.weight.copy_(weight)
            self.power = float(power)
            self.center = bool(center)
            self.register_buffer("ones", torch.ones(1, C, kh, kw, dtype=weight.dtype))

        def forward(self, x):
            out_dtype = x.dtype
            w = self.conv.weight
            if self.center:
                # the centred sums below cancel on nearly flat patches (float32 lost
                # 1e-2 on Fashion-MNIST): compute them in float64
                x, w = x.double(), w.double()
            n_in = w[0].numel()
            w_unit = w / torch.linalg.vector_norm(w.flatten(1), dim=1).clamp_min(1e-30)[:, None, None, None]
            stride = self.conv.stride
            ones = self.ones.to(x.dtype)
            dot = nn.functional.conv2d(x, w_unit, stride=stride)
            sq = nn.functional.conv2d(x * x, ones, stride=stride)
            if self.center:
                s = nn.functional.conv2d(x, ones, stride=stride)
                mean = s / n_in
                # (v - mean) . w = v . w - mean * sum(w); |v - mean|^2 = |v|^2 - n mean^2
                dot = dot - mean * w_unit.sum(dim=(1, 2, 3))[None, :, None, None]
                sq = sq - n_in * mean * mean
            norm = torch.sqrt(sq.clamp_min(0))
            tiny = torch.finfo(x.dtype).tiny
            cos = torch.where(norm > tiny, dot / norm.clamp_min(tiny), torch.zeros_like(dot))
            return (torch.relu(cos) ** self.power).to(out_dtype)

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
    M = torch.as_tensor(est.components_, dtype=dtype or torch.float32)
    weight = M.reshape(M.shape[0], kh, kw, C).permute(0, 3, 1, 2).contiguous()
    NNLConv2d = nnl_conv2d_class()
    layers = [NNLConv2d(weight, stride=1 if win is None else est.stride, power=est.power, center=est.center)]
    if pooling:
        oh, ow = est._conv_size(est.image_shape_)
        size = (min(est.pool_size, oh), min(est.pool_size, ow))
        layers.append(nn.MaxPool2d(size, stride=est.pool_stride))
    return nn.Sequential(*layers)
