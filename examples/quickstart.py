"""sklhebb quick start: filters learned by competing hidden units, on scikit-learn's digits.

Runs in well under a minute on a laptop CPU with data that ships inside
scikit-learn (no download). Prints test accuracy of

* raw pixels + logistic regression,
* random (unlearned) filters in the same NNL-CONV architecture (the control),
* filters learned by KrotovPatchEncoder (Grinberg, Hopfield & Krotov 2019),

and, when matplotlib is installed, writes the learned filters to
examples/out/quickstart_filters.png.
"""

import time
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklhebb import KrotovPatchEncoder

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)

encoder = KrotovPatchEncoder(n_components=100, window=3, image_shape=(8, 8), power=2, pool_size=2, pool_stride=2, max_iter=5, random_state=0)


def readout():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))


t0 = time.perf_counter()
raw = readout().fit(X_train, y_train).score(X_test, y_test)

learned = make_pipeline(clone(encoder), readout()).fit(X_train, y_train)
acc_learned = learned.score(X_test, y_test)

# the control: the same architecture with the random initial filters, never trained
control = make_pipeline(clone(encoder).set_params(max_iter=1), readout())
control[0].fit(X_train)
control[0].components_ = np.random.RandomState(0).standard_normal(control[0].components_.shape)
control[1:].fit(control[0].transform(X_train), y_train)
acc_random = control[1:].score(control[0].transform(X_test), y_test)

print(f"{'model':<44}test accuracy")
print(f"{'raw pixels + logistic regression':<44}{raw:.4f}")
print(f"{'random filters + NNL-CONV + logistic':<44}{acc_random:.4f}")
print(f"{'KrotovPatchEncoder + logistic regression':<44}{acc_learned:.4f}")
print(f"(total {time.perf_counter() - t0:.1f} s)")
# the figures above, machine-readable (tests/test_examples.py checks them against the README)
print("RESULT " + " ".join(f"{k}={v:.6g}" for k, v in {"raw": raw, "random_filters": acc_random, "learned_filters": acc_learned}.items()))

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401 - the figure needs pyplot
except ImportError:
    print("matplotlib not installed: no figure written")
else:
    from sklhebb.plotting import ReceptiveFieldDisplay

    # the 100 learned 3 x 3 filters, the units that win most patches of the test digits first
    fig = ReceptiveFieldDisplay.from_estimator(learned[0], X_test).plot(ncols=10).figure_
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    fig.savefig(out / "quickstart_filters.png", dpi=80)
    print(f"filters written to {out / 'quickstart_filters.png'}")
