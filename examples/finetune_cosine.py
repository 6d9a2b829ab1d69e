"""Pre-training hand-off: locally learned filters fine-tuned by backpropagation, and how far they move.

Mirrors the measurement of Bahroun et al. (Section 5, Fig. 4-5): a network whose
first layer is initialised with filters learned by a local rule is fine-tuned end to
end by backpropagation, and the cosine similarity between each first-layer filter
and its pre-trained version is recorded during training. Next to it, the same
network started from random filters, with the cosine of its filters to their own
random initialisation.

Here the first layer is ``KrotovPatchEncoder.to_torch()`` (Grinberg, Hopfield &
Krotov 2019: an NNL-CONV layer, i.e. the filters in an ``nn.Conv2d`` with per-patch
centring and normalisation, ReLU(x)^n and 2 x 2 max pooling) learned on
Fashion-MNIST (Debian package ``dataset-fashion-mnist``; nothing is downloaded),
followed by a LeNet-sized head (Conv 5x5 x 50, ReLU, max pool 2, Linear 800 -> 500,
ReLU, Linear 500 -> 10). The random-init network is built the same way from an
encoder whose filters are standard-normal rows scaled to unit length. Both are trained with Adam on the same
images in the same order. Prints the mean cosine and the test accuracy after each
epoch; writes examples/out/finetune_cosine.png.

    python examples/finetune_cosine.py           # 3,000 training images, 5 epochs (a few minutes)
    python examples/finetune_cosine.py --quick   # 800 training images, 2 epochs (about 30 s)
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from torch import nn

from sklhebb import KrotovPatchEncoder
from sklhebb.datasets import load_fashion_mnist

torch.set_num_threads(1)

K1, WINDOW = 20, 5  # LeNet (Caffe variant): 20 filters 5 x 5, then 50 filters 5 x 5, then 500 units


def lenet(first_layer):
    """first_layer: NNLConv2d + MaxPool2d(2) from to_torch(), (n, 1, 28, 28) -> (n, 20, 12, 12)."""
    return nn.Sequential(
        first_layer,
        nn.Conv2d(K1, 50, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(50 * 4 * 4, 500),
        nn.ReLU(),
        nn.Linear(500, 10),
    )


def filters(net):
    return net[0][0].conv.weight.detach().flatten(1).clone()


def mean_cosine(W, W0):
    return float(nn.functional.cosine_similarity(W, W0, dim=1).mean())


@torch.no_grad()
def accuracy(net, X, y):
    return float((net(X).argmax(1) == y).float().mean())


def finetune(net, X, y, X_te, y_te, *, epochs, batch=64, lr=1e-3, every=10, seed=0):
    """Adam on cross-entropy; returns steps, mean cosine to the starting filters, and per-epoch test accuracy."""
    W0 = filters(net)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)  # same image order for both networks
    steps, cosines, accs, ep_cos = [0], [1.0], [accuracy(net, X_te, y_te)], [1.0]
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
            step += 1
            if step % every == 0:
                steps.append(step)
                cosines.append(mean_cosine(filters(net), W0))
        accs.append(accuracy(net, X_te, y_te))
        ep_cos.append(mean_cosine(filters(net), W0))
    return np.array(steps), np.array(cosines), accs, filters(net), ep_cos


def main(quick=False):
    n_train, n_test, krotov_epochs, epochs = (800, 500, 1, 2) if quick else (3000, 2000, 3, 5)
    X, y = load_fashion_mnist()
    Xt, yt = load_fashion_mnist(kind="t10k")
    X_train, X_test = X[:n_train].astype(np.float32) / 255, Xt[:n_test].astype(np.float32) / 255
    print(f"Fashion-MNIST: {n_train} training images, {n_test} test images; first layer K = {K1}, W = {WINDOW}")

    t0 = time.perf_counter()
    enc = KrotovPatchEncoder(n_components=K1, window=WINDOW, power=1, pool_size=2, pool_stride=2, max_iter=krotov_epochs, random_state=0).fit(X_train)
    print(f"KrotovPatchEncoder fit ({krotov_epochs} epochs): {time.perf_counter() - t0:.1f} s")
    rnd = clone(enc).set_params(max_iter=1).fit(X_train[:10])
    G = np.random.RandomState(0).standard_normal(enc.components_.shape)
    # unit rows, like the learned filters: NNLConv2d normalises the filters in forward, so this is the
    # same function as the raw Gaussian, but Adam's steps then move both starts by the same angle per step
    rnd.components_ = G / np.linalg.norm(G, axis=1, keepdims=True)

    Xtr_t, Xte_t = torch.as_tensor(X_train[:, None]), torch.as_tensor(X_test[:, None])
    ytr_t = torch.as_tensor(np.array(y[:n_train]), dtype=torch.long)
    yte_t = torch.as_tensor(np.array(yt[:n_test]), dtype=torch.long)

    # the hand-off: to_torch() gives the same numbers as transform (channels first)
    layer = enc.to_torch()
    with torch.no_grad():
        z = layer(Xte_t[:5]).permute(0, 2, 3, 1).reshape(5, -1).numpy()
    # (float32: NNLConv2d centres through |v|^2 - n mean^2, which loses digits on nearly flat patches)
    print(f"to_torch() vs transform on 5 images (float32): max |diff| = {np.abs(z - enc.transform(X_test[:5])).max():.2e}")

    runs = {}
    for name, e in [("Krotov pre-trained", enc), ("random init", rnd)]:
        torch.manual_seed(0)  # same head initialisation for both
        net = lenet(copy.deepcopy(e.to_torch()))
        t0 = time.perf_counter()
        runs[name] = finetune(net, Xtr_t, ytr_t, Xte_t, yte_t, epochs=epochs)
        print(f"{name}: fine-tuned {epochs} epochs in {time.perf_counter() - t0:.1f} s")

    print("\nafter epoch:            " + " ".join(f"{e:>6}" for e in range(epochs + 1)))
    for name, (_, _, accs, _, ep_cos) in runs.items():
        print(f"{name:<20}cos  " + " ".join(f"{c:.4f}" for c in ep_cos))
        print(f"{name:<20}acc  " + " ".join(f"{a:>6.3f}" for a in accs))
    short = {"Krotov pre-trained": "pretrained", "random init": "random"}
    finals = {f"{short[n]}_cosine_end": r[4][-1] for n, r in runs.items()}
    finals |= {f"{short[n]}_accuracy_epoch1": r[2][1] for n, r in runs.items()} | {f"{short[n]}_accuracy_end": r[2][-1] for n, r in runs.items()}
    print("RESULT " + " ".join(f"{k}={v:.6g}" for k, v in finals.items()))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure written")
        return
    from sklhebb.plotting import ReceptiveFieldDisplay

    fig = plt.figure(figsize=(13, 4.2))
    spec = fig.add_gridspec(1, 4, width_ratios=[1.4, 1.1, 0.8, 0.8], wspace=0.3)
    ax = fig.add_subplot(spec[0])
    for name, (steps, cos, _, _, _) in runs.items():
        ax.plot(steps, cos, label=name)
    ax.set_xlabel("fine-tuning step (minibatch of 64)")
    ax.set_ylabel("mean cosine(first-layer filter, its start)")
    ax.set_title("how far the first layer moves")
    ax.legend()
    ax2 = fig.add_subplot(spec[1])
    for name, (_, _, accs, _, _) in runs.items():
        ax2.plot(range(len(accs)), accs, marker="o", label=name)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("test accuracy")
    ax2.set_title("test accuracy while fine-tuning")
    ax2.legend()
    start = enc.components_
    end = runs["Krotov pre-trained"][3].numpy().reshape(K1, 1, WINDOW, WINDOW).transpose(0, 2, 3, 1).reshape(K1, -1)
    for k, (title, F) in enumerate([("pre-trained filters", start), ("after fine-tuning", end)]):
        a = fig.add_subplot(spec[2 + k])
        a.set_title(title, fontsize=9)
        a.set_axis_off()
        pos = a.get_position()
        fig.text(pos.x0 + pos.width / 2, 0.9, title, ha="center", fontsize=9)
        ReceptiveFieldDisplay(F, shape=(WINDOW, WINDOW)).plot(ax=a, ncols=4)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    fig.savefig(out / "finetune_cosine.png", dpi=85)
    print(f"figure written to {out / 'finetune_cosine.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of about 30 s")
    main(parser.parse_args().quick)
