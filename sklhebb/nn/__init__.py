"""A small layer kit whose layers hold forward weights W and feedback weights R.

Dense, convolution (stride 1, same padding, im2col), locally connected
("untied") convolution, max-pooling with overlapping windows, dropout and the
residual SUM, wired by :class:`Network`, which runs an explicit forward pass
and an explicit top-down feedback pass (no autograd). Used by
:class:`~sklhebb.classifiers.urfb.URFBClassifier`; meant to be shared by other
estimators that need layers with separate feedback weights.

:class:`UntiedDense` is the untied layer stored as the author's code stores it,
one dense matrix restricted to a convolution's connectivity by a fixed mask
(the same masks that hold random connectivity, so its zeros stay zero).
"""

from .architecture import PRESETS, build_layers, parse_architecture
from .layers import Conv, Dense, Dropout, Layer, MaxPool, Sum, UntiedConv, UntiedDense, fold, im2col
from .network import Network, dense_layers

__all__ = [
    "Layer",
    "Dense",
    "Conv",
    "UntiedConv",
    "UntiedDense",
    "MaxPool",
    "Dropout",
    "Sum",
    "Network",
    "dense_layers",
    "PRESETS",
    "parse_architecture",
    "build_layers",
    "im2col",
    "fold",
]
