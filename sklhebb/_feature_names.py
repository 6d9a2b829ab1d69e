"""Output feature names of the encoders: unit and position for outputs on a grid (``krotovpatchencoder_u17_r2c3``)."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

__all__ = ["GridFeatureNamesMixin", "grid_feature_names"]


def grid_feature_names(prefix, grids):
    """Names of outputs laid out as blocks of (rows, cols, units), each ordered row, column, unit.

    ``{prefix}_u{unit}_r{row}c{col}``: unit ``unit`` at (pooled) row ``row`` and column ``col``; with
    several blocks (one per layer) ``{prefix}_l{layer}_u{unit}_r{row}c{col}``, layers counted from 0,
    bottom first.
    """
    names = []
    for layer, (rows, cols, units) in enumerate(grids):
        tag = f"{prefix}_l{layer}" if len(grids) > 1 else prefix
        r, c, u = np.meshgrid(np.arange(rows), np.arange(cols), np.arange(units), indexing="ij")
        names += [f"{tag}_u{uu}_r{rr}c{cc}" for rr, cc, uu in zip(r.ravel(), c.ravel(), u.ravel())]
    return np.asarray(names, dtype=object)


class GridFeatureNamesMixin(ClassNamePrefixFeaturesOutMixin):
    """``get_feature_names_out`` that names unit and position where the outputs sit on a grid.

    The encoder's ``_output_grids()`` gives the (rows, cols, units) of every block of ``transform``'s
    columns (one per layer it returns), or None for flat outputs, which keep scikit-learn's
    ``{prefix}0 .. {prefix}N``.
    """

    def get_feature_names_out(self, input_features=None):
        """Output feature names: ``{name}_u{unit}_r{row}c{col}`` on a grid, ``{name}{i}`` for flat outputs.

        ``name`` is the class name in lower case; ``row`` and ``col`` are the (pooled) position
        of the output, ``unit`` its channel; ``_l{layer}`` follows the name where ``transform``
        returns several layers on grids. The order is that of ``transform``'s columns.
        """
        check_is_fitted(self)
        grids = self._output_grids()
        if grids is None:
            return super().get_feature_names_out(input_features)
        _check_feature_names_in(self, input_features, generate_names=False)
        return grid_feature_names(type(self).__name__.lower(), grids)
