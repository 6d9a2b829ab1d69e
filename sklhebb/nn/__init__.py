"""The layer kit: layers with explicit forward and feedback passes, no autograd.

Dense, convolution (stride 1, same padding), locally connected ("untied")
convolution, max-pooling with overlapping windows, dropout and the residual
SUM. Every weight layer holds forward weights W (and, for URFB, feedback
weights R of the same shape) and offers two learning increments: URFB's
Hebbian x^T delta (``increment``) and Zhou's local competitive rule
(``competitive_increment``), both from :mod:`sklhebb.rules`.

* :mod:`~sklhebb.nn.layers`: the layers.
* :mod:`~sklhebb.nn.network`: :class:`Network`, a graph of layers with an
  explicit top-down feedback pass (URFB's
  :class:`~sklhebb.classifiers.urfb.URFBClassifier`).
* :mod:`~sklhebb.nn.architecture`: the URFB paper's architecture strings and
  named networks.
* :mod:`~sklhebb.nn.competitive`: Zhou's stacks of linear layers with their
  activations (:class:`~sklhebb.encoders.competitive.LocalCompetitiveEncoder`,
  :class:`~sklhebb.classifiers.activation.ActivationLearningClassifier`).

:class:`UntiedDense` is the untied layer stored as the author's code stores it,
one dense matrix restricted to a convolution's connectivity by a fixed mask
(the same masks that hold random connectivity, so its zeros stay zero).
Patches are cut by :func:`sklhebb.image.im2col` and folded back by
:func:`sklhebb.image.fold`.
"""

from .architecture import PRESETS, build_layers, parse_architecture
from .layers import Conv, Dense, Dropout, Layer, MaxPool, Sum, UntiedConv, UntiedDense
from .network import Network

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
    "PRESETS",
    "parse_architecture",
    "build_layers",
]
