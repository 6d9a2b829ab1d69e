"""Parameter constraints the estimators share beyond scikit-learn's own: layer sizes, layer specs,
image shapes and per-layer values, checked by ``_parameter_constraints`` when ``fit`` starts."""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, Options

__all__ = ["ImageShape", "LayerSizes", "LayerSpec", "PerLayer"]


class _Custom(Options):
    """Base of the constraints below. scikit-learn's validation takes constraint objects of its own
    classes only, so they derive from ``Options`` and replace its test and its description."""

    def __init__(self):
        super().__init__(object, set())


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, Real) and not isinstance(value, bool)


class LayerSizes(_Custom):
    """A tuple or list of positive ints, one per layer (``hidden_layer_sizes``); empty if ``allow_empty``."""

    def __init__(self, *, allow_empty=True):
        super().__init__()
        self.allow_empty = allow_empty

    def is_satisfied_by(self, val):
        if not isinstance(val, (tuple, list)) or (not val and not self.allow_empty):
            return False
        return all(_is_int(s) and s >= 1 for s in val)

    def __str__(self):
        return f"a {'' if self.allow_empty else 'non-empty '}tuple of positive ints (units per layer, bottom first)"


class LayerSpec(_Custom):
    """A string in the paper's layer notation or a preset name, read by :func:`sklhebb.nn.parse_architecture`."""

    def is_satisfied_by(self, val):
        if not isinstance(val, str):
            return False
        from .nn.architecture import parse_architecture

        try:
            parse_architecture(val)
        except ValueError:
            return False
        return True

    def __str__(self):
        from .nn.architecture import PRESETS

        return (
            "a str of layers separated by ';' ('conv 32 5x5', 'untied 32 5x5', 'sparse 32 5x5', 'maxpool 3', "
            f"'maxpool 3, stride 3', 'drop .8', 'full 500', 'sum') or a preset among {sorted(PRESETS)}"
        )


class ImageShape(_Custom):
    """(H, W) or (H, W, C) of positive ints (as a tuple or list)."""

    def is_satisfied_by(self, val):
        return isinstance(val, (tuple, list)) and len(val) in (2, 3) and all(_is_int(s) and s >= 1 for s in val)

    def __str__(self):
        return "a tuple (H, W) or (H, W, C) of positive ints"


class PerLayer(_Custom):
    """One number in ``interval`` for every layer, or a non-empty tuple or list of such numbers, one per layer."""

    def __init__(self, interval: Interval):
        super().__init__()
        self.interval = interval

    def _ok(self, value):
        ok_type = _is_int(value) if self.interval.type is Integral else _is_real(value)
        return ok_type and self.interval.is_satisfied_by(value)

    def is_satisfied_by(self, val):
        if isinstance(val, (tuple, list)):
            return bool(val) and all(self._ok(v) for v in val)
        return self._ok(val)

    def __str__(self):
        return f"{self.interval}, or a tuple of such values (one per layer, bottom first)"
