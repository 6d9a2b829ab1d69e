"""Shadows: patch normalisation (NNL-CONV) against an ordinary conv net trained by backpropagation.

Mirrors Grinberg, Hopfield & Krotov (2019), Section 6 and Fig. 6, on Fashion-MNIST
instead of CIFAR-10. Two networks with the same K, window W and max pooling:

* NNL-CONV: filters learned by KrotovPatchEncoder (local, unsupervised), per-patch
  normalisation, ReLU(x)^n, max pooling; a linear readout (StandardScaler +
  LogisticRegression) trained on the labels;
* CONV: an ordinary torch Conv2d (with bias) + ReLU + the same max pooling + a
  linear softmax layer, all trained end to end by backpropagation (Adam).

Both are trained on clean images only (and, as a control, the NNL-CONV layer with
random standard-normal filters and the same readout) and tested on clean test images and on the
same test images shadowed as the paper's Fig. 6: the first 25/32 of the columns
(22 of 28) multiplied by 0.3 (``sklhebb.datasets.add_shadow``'s default). Fashion-MNIST comes from the Debian package
``dataset-fashion-mnist`` (nothing is downloaded). Prints the four accuracies and
writes examples/out/shadows.png (shadowed examples and a bar chart).

    python examples/shadows.py           # 3,000 training images, K = 64 (a few minutes)
    python examples/shadows.py --quick   # 600 training images, K = 32 (about 30 s)
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from sklhebb import KrotovPatchEncoder
from sklhebb.datasets import add_shadow, load_fashion_mnist

torch.set_num_threads(1)

WINDOW, POWER, POOL, POOL_STRIDE, SHADOW, SHADOW_FRACTION = 5, 1, 8, 4, 0.3, 25 / 32


def conv_net(K, n_classes=10, side=28):
    """CONV counterpart: Conv2d(W) + ReLU + MaxPool(W_p, stride) + Linear, as in the paper's Appendix."""
    conv_out = side - WINDOW + 1
    pooled = (conv_out - POOL) // POOL_STRIDE + 1
    return nn.Sequential(
        nn.Conv2d(1, K, WINDOW),
        nn.ReLU(),
        nn.MaxPool2d(POOL, stride=POOL_STRIDE),
        nn.Flatten(),
        nn.Linear(K * pooled * pooled, n_classes),
    )


def train_torch(net, X, y, *, epochs, batch=50, lr=3e-3, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    Xt, yt = torch.as_tensor(X[:, None]), torch.as_tensor(y, dtype=torch.long)
    for _ in range(epochs):
        perm = torch.randperm(len(Xt))
        for i in range(0, len(Xt), batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(net(Xt[idx]), yt[idx]).backward()
            opt.step()
    return net


@torch.no_grad()
def torch_accuracy(net, X, y):
    return float((net(torch.as_tensor(X[:, None])).argmax(1).numpy() == y).mean())


def main(quick=False):
    n_train, n_test, K, epochs, bp_epochs = (600, 500, 32, 1, 8) if quick else (3000, 2000, 64, 3, 15)
    X, y = load_fashion_mnist()
    Xt, yt = load_fashion_mnist(kind="t10k")
    X_train, y_train = X[:n_train].astype(np.float32) / 255, y[:n_train].astype(np.int64)
    X_test, y_test = Xt[:n_test].astype(np.float32) / 255, yt[:n_test].astype(np.int64)
    X_shadow = add_shadow(X_test, strength=SHADOW, fraction=SHADOW_FRACTION).astype(np.float32)
    print(
        f"Fashion-MNIST: {n_train} clean training images, {n_test} test images (clean, and the left "
        f"{SHADOW_FRACTION:.3g} of the columns x{SHADOW}); "
        f"K = {K}, W = {WINDOW}, max pool {POOL} stride {POOL_STRIDE}"
    )

    t0 = time.perf_counter()
    nnl = make_pipeline(
        KrotovPatchEncoder(n_components=K, window=WINDOW, power=POWER, pool_size=POOL, pool_stride=POOL_STRIDE, max_iter=epochs, random_state=0),
        StandardScaler(),
        LogisticRegression(max_iter=500),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        nnl.fit(X_train, y_train)
    acc_nnl = (nnl.score(X_test, y_test), nnl.score(X_shadow, y_test))
    t_nnl = time.perf_counter() - t0

    # control: the same NNL-CONV layer with random (standard-normal, never trained) filters, to separate
    # what patch normalisation does from what the learned filters do
    t0 = time.perf_counter()
    rnd = clone(nnl)
    rnd[0].set_params(max_iter=1).fit(X_train[:10])
    rnd[0].components_ = np.random.RandomState(0).standard_normal(rnd[0].components_.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rnd[1:].fit(rnd[0].transform(X_train), y_train)
    acc_rnd = tuple(rnd[1:].score(rnd[0].transform(Z), y_test) for Z in (X_test, X_shadow))
    t_rnd = time.perf_counter() - t0

    t0 = time.perf_counter()
    torch.manual_seed(0)
    net = train_torch(conv_net(K), X_train, y_train, epochs=bp_epochs)
    acc_conv = (torch_accuracy(net, X_test, y_test), torch_accuracy(net, X_shadow, y_test))
    t_conv = time.perf_counter() - t0

    print(f"{'model':<52}{'clean':>8}{'shadowed':>10}{'time s':>8}")
    print(f"{f'NNL-CONV (local filters, {epochs} ep) + logistic readout':<52}{acc_nnl[0]:>8.4f}{acc_nnl[1]:>10.4f}{t_nnl:>8.1f}")
    print(f"{'NNL-CONV, random filters (control) + logistic':<52}{acc_rnd[0]:>8.4f}{acc_rnd[1]:>10.4f}{t_rnd:>8.1f}")
    print(f"{f'CONV + ReLU, end-to-end backprop ({bp_epochs} ep, Adam)':<52}{acc_conv[0]:>8.4f}{acc_conv[1]:>10.4f}{t_conv:>8.1f}")
    accs = {"nnl": acc_nnl, "nnl_random": acc_rnd, "conv": acc_conv}
    results = {f"{m}_{k}": a[i] for m, a in accs.items() for i, k in enumerate(("clean", "shadowed"))}
    print("RESULT " + " ".join(f"{k}={v:.6g}" for k, v in results.items()))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure written")
        return
    fig = plt.figure(figsize=(10, 4))
    spec = fig.add_gridspec(2, 6, width_ratios=[1, 1, 1, 1, 0.2, 4])
    for j in range(4):
        for i, (imgs, label) in enumerate([(X_test, "clean"), (X_shadow, "shadowed")]):
            a = fig.add_subplot(spec[i, j])
            a.imshow(imgs[j], cmap="gray", vmin=0, vmax=1)
            a.set_axis_off()
            if j == 0:
                a.set_title(label, fontsize=9, loc="left")
    ax = fig.add_subplot(spec[:, 5])
    x = np.arange(2)
    models = [("NNL-CONV, local filters", acc_nnl), ("NNL-CONV, random filters", acc_rnd), ("CONV, backprop", acc_conv)]
    for k, (name, acc) in enumerate(models):
        bars = ax.bar(x + (k - 1) * 0.27, acc, 0.27, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(x, ["clean test", f"shadowed test (x{SHADOW})"])
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.3)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(f"trained on {n_train} clean images")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    fig.savefig(out / "shadows.png", dpi=90, bbox_inches="tight")
    print(f"figure written to {out / 'shadows.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of about 30 s")
    main(parser.parse_args().quick)
