"""sklhebb: local (Hebbian) learning rules as scikit-learn estimators."""

__version__ = "0.1.0"

from ._training import DivergenceError  # noqa: E402
from .encoders.krotov import KrotovPatchEncoder  # noqa: E402

__all__ = ["KrotovPatchEncoder", "DivergenceError", "__version__"]
