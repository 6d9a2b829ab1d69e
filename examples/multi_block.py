"""The multi-block NNL-CONV layer (blocks of different windows) as a FeatureUnion, on Fashion-MNIST.

Mirrors Grinberg, Hopfield & Krotov (2019), Section 3 and Fig. 2 (middle): one
NNL-CONV layer made of blocks with different window sizes W, each block's filters
learned by its own run of the rule (1)-(2), each followed by max pooling, and the
pooled outputs concatenated for one linear classifier. In scikit-learn that is a
FeatureUnion of KrotovPatchEncoders, one per window, in a Pipeline before
StandardScaler and LogisticRegression. Compared with a single block (W = 5) with
the same total number of channels K, and with the multi-block layer holding random
(standard-normal, never trained) filters. Fashion-MNIST subset from the Debian
package ``dataset-fashion-mnist`` (nothing is downloaded). Writes
examples/out/multi_block.png: the filters of each block.

    python examples/multi_block.py           # 3,000 training images, K = 3 x 32 (a few minutes)
    python examples/multi_block.py --quick   # 500 training images, K = 3 x 12 (seconds)
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import StandardScaler

from sklhebb import KrotovPatchEncoder
from sklhebb.datasets import load_fashion_mnist
from sklhebb.plotting import ReceptiveFieldDisplay

WINDOWS = (3, 5, 7)
POWER = 1


def model(features):
    return make_pipeline(features, StandardScaler(), LogisticRegression(max_iter=500))


def main(quick=False):
    n_train, n_test, k, epochs = (500, 500, 12, 1) if quick else (3000, 2000, 32, 3)
    X, y = load_fashion_mnist()
    Xt, yt = load_fashion_mnist(kind="t10k")
    X_train, y_train = X[:n_train].astype(np.float32) / 255, y[:n_train]
    X_test, y_test = Xt[:n_test].astype(np.float32) / 255, yt[:n_test]
    print(f"Fashion-MNIST: {n_train} training images, {n_test} test images, {epochs} epochs per block")

    def block(window, n_components):
        return KrotovPatchEncoder(
            n_components=n_components, window=window, power=POWER, pool_size=8, pool_stride=4, max_iter=epochs, random_state=window
        )

    multi = FeatureUnion([(f"w{w}", block(w, k)) for w in WINDOWS])
    single = block(5, k * len(WINDOWS))

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, feats in [(f"multi-block W = {WINDOWS}, K = {len(WINDOWS)} x {k}", multi), (f"single block W = 5, K = {len(WINDOWS) * k}", single)]:
            t0 = time.perf_counter()
            m = model(feats).fit(X_train, y_train)
            rows.append((name, m.score(X_test, y_test), m[0].transform(X_test[:1]).shape[1], time.perf_counter() - t0))
            if feats is multi:
                fitted_multi = m[0]
        # control: the multi-block layer with random filters, never trained
        t0 = time.perf_counter()
        ctrl = clone(multi).set_params(**{f"w{w}__max_iter": 1 for w in WINDOWS}).fit(X_train[:10])
        for i, (_, enc) in enumerate(ctrl.transformer_list):
            enc.components_ = np.random.RandomState(i).standard_normal(enc.components_.shape)
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(ctrl.transform(X_train), y_train)
        rows.append(
            ("multi-block, random filters", head.score(ctrl.transform(X_test), y_test), ctrl.transform(X_test[:1]).shape[1], time.perf_counter() - t0)
        )

    print(f"{'model':<40}{'test acc':>9}{'features':>10}{'time s':>8}")
    for name, acc, n_feat, t in rows:
        print(f"{name:<40}{acc:>9.4f}{n_feat:>10}{t:>8.1f}")
    results = dict(zip(("multi_block", "single_block", "multi_block_random"), (acc for _, acc, _, _ in rows)))
    print("RESULT " + " ".join(f"{k}={v:.6g}" for k, v in results.items()))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure written")
        return
    fig, axes = plt.subplots(1, len(WINDOWS), figsize=(4 * len(WINDOWS), 4.6))
    fig.subplots_adjust(top=0.8, bottom=0.03, left=0.02, right=0.98)
    for ax, (name, enc) in zip(axes, fitted_multi.transformer_list):
        # the units that win most patches of the test images first, each with its share
        ReceptiveFieldDisplay.from_estimator(enc, X_test).plot(ax=ax)
        ax.set_title(f"block {name}: {enc.window} x {enc.window} filters, K = {enc.n_components}", fontsize=10, pad=18)
    fig.suptitle(
        "Multi-block NNL-CONV layer: the filters of each block, most frequent winner on the test patches first\n"
        "(% of the patches each unit wins; every filter stretched from black, its most negative weight, to white)",
        fontsize=9,
    )
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    fig.savefig(out / "multi_block.png", dpi=80)
    print(f"figure written to {out / 'multi_block.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of seconds")
    main(parser.parse_args().quick)
