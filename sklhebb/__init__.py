"""sklhebb: local (Hebbian) learning rules as scikit-learn estimators.

Estimators
----------
KrotovPatchEncoder            Grinberg, Hopfield & Krotov (2019): convolutional filters by competing units
NSMEncoder                    Bahroun et al.; Obeid et al.: (structured, deep, supervised) similarity matching
LocalCompetitiveEncoder       Zhou (2022): the local competitive rule, layer-wise features
ActivationLearningClassifier  Zhou (2022): activation learning with feedback
URFBClassifier                Amit (2019): updated random feedback
"""

__version__ = "0.1.0"

from ._training import DivergenceError  # noqa: E402
from .classifiers.activation import ActivationLearningClassifier  # noqa: E402
from .classifiers.urfb import URFBClassifier  # noqa: E402
from .encoders.competitive import LocalCompetitiveEncoder  # noqa: E402
from .encoders.krotov import KrotovPatchEncoder  # noqa: E402
from .encoders.nsm import NSMEncoder  # noqa: E402

__all__ = [
    "KrotovPatchEncoder",
    "NSMEncoder",
    "LocalCompetitiveEncoder",
    "ActivationLearningClassifier",
    "URFBClassifier",
    "DivergenceError",
    "__version__",
]
