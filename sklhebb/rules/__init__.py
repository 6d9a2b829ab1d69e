"""Learning rules as pure functions, one per paper equation.

Arguments are arrays and scalars; the array namespace (NumPy, PyTorch, CuPy)
comes from the arrays (``sklhebb._backend.backend_of``). Nothing here knows
about scikit-learn, minibatch loops or learning-rate schedules: a rule returns
the change for one minibatch and the caller scales and applies it. Each rule
has an oracle test in ``tests/`` comparing it with a loop-based float64
transcription of its equation. Under data parallelism a rule whose minibatch
sum is followed by a nonlinearity combines the sums of the ranks itself
(``sklhebb._ranks``, the identity in one process); the others are combined by
the estimator's step. One module per paper; this package re-exports
every rule so that ``from sklhebb import rules; rules.krotov_update`` works.
"""

from .competitive import (
    abs_activation,
    abs_moments,
    abs_statistics_update,
    activation_backward,
    activation_gap,
    competitive_update,
    feedback_gamma,
    feedback_rates,
    renormalize_gamma,
    square_normalize,
    std_abs,
)  # noqa: F401, E501
from .krotov import krotov_currents, krotov_update  # noqa: F401
from .nsm import (
    NSM_ACTIVATIONS,
    deep_fixed_point,
    nsm_activation,
    nsm_fixed_point,
    nsm_regularizer,
    nsm_step_size,
    nsm_update,
    sm_cost_from_grams,
    sm_gram_terms,
)  # noqa: F401, E501
from .softmax import log_softmax  # noqa: F401
from .urfb import (
    feedback_error,
    hebbian_increment,
    hinge_error,
    hinge_loss,
    saturated_linear,
    saturated_linear_slope,
    softmax_error,
    softmax_loss,
    urfb_update,
)  # noqa: F401, E501
