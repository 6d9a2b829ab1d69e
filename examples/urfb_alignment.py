"""Alignment of forward and feedback weights under URFB and FRFB, with the error curves (Amit, Fig. 10).

URFBClassifier trains Amit's (2019) ``simpnet`` (conv 32 5x5; max-pool 3;
drop .8; full 500; drop .3; output 10) on a Fashion-MNIST subset three ways:

* ``feedback="urfb"``: the feedback weights R start random and receive the
  same Hebbian increment as the forward weights W (updated random feedback);
* ``feedback="frfb"``: R stays at its random start (feedback alignment);
* ``feedback="bp"``: the error goes back through W (back-propagation).

The network is trained one epoch per ``partial_fit`` call so that the test
error can be measured after every epoch. ``alignment_`` holds the correlation
between W and R of each weight layer after each epoch, the quantity of
Amit's Fig. 10 (simpnet, URFB left, FRFB right): under URFB it climbs
towards 1, under FRFB it stays lower (the top layer aligns first). Prints
the final test errors and alignments; writes examples/out/urfb_alignment.png
(alignment per layer and epoch for URFB and FRFB, training loss and test
error per epoch for all three). Fashion-MNIST from the Debian package
``dataset-fashion-mnist`` (nothing is downloaded). Paper runs last hundreds
of epochs; here it is a short run, with the paper's ramp sigma(h) = clip(h,
-1, 1) (``ramp_scale=1``), which learns faster than the code's 0.5, and
the paper's hinge loss of Eq. (4)-(6) (``loss="hinge"``; the estimator's
default is softmax).

    python examples/urfb_alignment.py           # 2,000 training images, 10 epochs (a few minutes)
    python examples/urfb_alignment.py --quick   # 500 training images, 4 epochs (seconds)
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
from pathlib import Path

import numpy as np

from sklhebb import URFBClassifier
from sklhebb.datasets import load_fashion_mnist

FEEDBACKS = ("urfb", "frfb", "bp")
BATCH = 20


def main(quick=False):
    n_train, n_test, epochs = (500, 500, 4) if quick else (2000, 2000, 10)
    X, y = load_fashion_mnist()
    Xt, yt = load_fashion_mnist(kind="t10k")
    X_train, y_train = X[:n_train].reshape(n_train, -1).astype(np.float32) / 255, y[:n_train]
    X_test, y_test = Xt[:n_test].reshape(n_test, -1).astype(np.float32) / 255, yt[:n_test]
    classes = np.unique(y_train)
    print(f"Fashion-MNIST: {n_train} training images, {n_test} test images, simpnet, {epochs} epochs")

    runs = {}
    for fb in FEEDBACKS:
        clf = URFBClassifier(
            hidden_layer_sizes="simpnet",
            feedback=fb,
            loss="hinge",
            ramp_scale=1.0,
            learning_rate=0.1,
            batch_size=BATCH,
            image_shape=(28, 28),
            random_state=0,
        )
        errors = []
        t0 = time.perf_counter()
        for _ in range(epochs):
            clf.partial_fit(X_train, y_train, classes=classes)
            errors.append(1.0 - clf.score(X_test, y_test))
        runs[fb] = (clf, errors, time.perf_counter() - t0)
    layers = runs["urfb"][0].layers_
    print(f"network: {layers}")

    n_layers = runs["urfb"][0].alignment_.shape[1]
    head = "".join(f"{'corr(W, R) ' + str(i + 1):>16}" for i in range(n_layers))
    print(f"{'feedback':<10}{'test error':>12}{'train loss':>12}{head}{'time s':>9}")
    for fb, (clf, errors, t) in runs.items():
        al = "".join(f"{a:>16.3f}" for a in clf.alignment_[-1])
        print(f"{fb:<10}{errors[-1]:>12.4f}{clf.loss_curve_[-1]:>12.4f}{al}{t:>9.1f}")
    print("(bp sends the error through W itself: its alignment is 1 by definition)")
    results = {f"{fb}_test_error": errors[-1] for fb, (_, errors, _) in runs.items()}
    results |= {f"{fb}_corr_layer{i + 1}": a for fb in ("urfb", "frfb") for i, a in enumerate(runs[fb][0].alignment_[-1])}
    print("RESULT " + " ".join(f"{k}={v:.6g}" for k, v in results.items()))
    print("alignment after epoch 1:", ", ".join(f"{fb} {np.array2string(runs[fb][0].alignment_[0], precision=3)}" for fb in ("urfb", "frfb")))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure written")
        return
    names = [part.strip() for part in layers.split(";") if part.strip().split()[0] in ("conv", "full", "output")]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    ep = np.arange(1, epochs + 1)
    for ax, fb in zip(axes[:2], ("urfb", "frfb")):
        for i in range(n_layers):
            ax.plot(ep, runs[fb][0].alignment_[:, i], marker="o", ms=3, label=f"layer {i + 1}: {names[i]}")
        ax.set_title(f"{fb.upper()}: correlation of W and R")
        ax.set_xlabel("epoch")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=8)
    colours = {"urfb": "C0", "frfb": "C2", "bp": "C3"}
    for fb, (clf, errors, _) in runs.items():
        axes[2].plot(ep, clf.loss_curve_, color=colours[fb], marker="o", ms=3, label=fb)
        axes[3].plot(ep, errors, color=colours[fb], marker="o", ms=3, label=fb)
    axes[2].set_title("training loss (hinge, Eq. 4)")
    axes[3].set_title("test error")
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    fig.savefig(out / "urfb_alignment.png", dpi=80)
    print(f"figure written to {out / 'urfb_alignment.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of seconds")
    main(parser.parse_args().quick)
