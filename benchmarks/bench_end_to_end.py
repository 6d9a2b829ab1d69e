"""The paper's headline comparison: NNL-CONV filters learned locally against the same net trained end to end (issue 14).

    python benchmarks/bench_end_to_end.py [--n-train N] [--n-val N] [--n-test N] [--epochs E] [--e2e-epochs E] [--lrs 3e-3 1e-2]
    python benchmarks/bench_end_to_end.py --quick      # under a minute

Grinberg, Hopfield & Krotov (2019), Section 3 and Fig. 2 (left): one NNL-CONV layer, max pooling
and a softmax layer; the filters learned by the local rule (1) and frozen, the softmax layer
trained by Adam on the cross-entropy, against the net of the same capacity trained end to end
(CIFAR-10 error 27.80 % against 27.11 %); Section 6 / Fig. 6 tests both on images shadowed
by multiplying the first 25 of 32 columns by 0.3. Here on Fashion-MNIST (the Debian package;
the first ``--n-train`` training images, the last ``--n-val`` of them the validation split, and
the first ``--n-test`` test images; pixels in [0, 1]), all rows in one run:

* local: ``KrotovPatchEncoder`` with the library defaults (K = 100, W = 5, n = 1, max pool
  8 stride 4, patches centred before they are normalised; ``--uncentred``: the paper's raw
  patches) fitted on the training split, exported with ``to_torch()`` (patch normalisation,
  ReLU^n, max pooling), the filters frozen, a linear softmax head on the flattened pooled
  maps trained by torch autograd;
* end to end, NNL-CONV: the same ``to_torch()`` module, from the random (standard-normal)
  initial filters, and the same head, all trained by autograd;
* untrained control: those random filters frozen, the same head;
* k-means: MiniBatchKMeans centroids of 100,000 normalised patches as the filters, frozen,
  the same head (the Coates & Ng dictionary);
* raw pixels: the same head (a linear softmax) on the pixels;
* end to end, CONV: the paper's own counterpart, ``nn.Conv2d`` (with bias) + ReLU, no patch
  normalisation, the same pooling and head, all trained by autograd.

Every row is trained by the same procedure on the training split only: Adam, batch 300 (the
paper's), for every learning rate of ``--lrs`` a fresh run of ``--epochs`` epochs (``--e2e-epochs``
for the end-to-end rows), and the (learning rate, epoch) with the best validation accuracy is
the model tested. Test error and accuracy on the clean test images and on the same images
shadowed as the paper does (``sklhebb.datasets.add_shadow``'s default, the first 22 of 28
columns times 0.3). Torch runs on one thread (``torch.set_num_threads(1)``); the local fit's
threads are those ``sklhebb._threads`` leaves it. Prints one line per row and a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from bench_learning import kmeans_filters, untrained
from threadpoolctl import threadpool_info
from torch import nn

from sklhebb import KrotovPatchEncoder
from sklhebb._threads import free_cores
from sklhebb.datasets import add_shadow, load_fashion_mnist

BATCH = 300  # the paper's minibatch for the top layer and for the end-to-end nets
CHUNK = 1000  # images per forward pass when features or test predictions are computed


def data(n_train, n_val, n_test):
    """Training split, validation split (the last n_val of the first n_train training images), clean and shadowed test."""
    X, y = load_fashion_mnist()
    Xt, yt = load_fashion_mnist(kind="t10k")
    X, y = X[:n_train].astype(np.float32) / 255, y[:n_train].astype(np.int64)
    Xt, yt = Xt[:n_test].astype(np.float32) / 255, yt[:n_test].astype(np.int64)
    n_fit = n_train - n_val
    return (X[:n_fit], y[:n_fit]), (X[n_fit:], y[n_fit:]), Xt, add_shadow(Xt).astype(np.float32), yt


def nchw(X):
    return torch.from_numpy(X[:, None])


@torch.no_grad()
def forward(net, X):
    """net(X) in chunks, without a graph; X are tensors of any leading shape."""
    return torch.cat([net(X[i : i + CHUNK]) for i in range(0, len(X), CHUNK)])


def accuracy(net, X, y):
    return float((forward(net, X).argmax(1) == y).double().mean())


def train(net, fit, val, *, lrs, epochs, seed=0):
    """Adam on the cross-entropy, a fresh run per learning rate; the best (lr, epoch) on validation.

    Returns the net with the weights of that epoch, the chosen lr and epoch, the validation
    accuracy, and the seconds of the chosen run and of all runs.
    """
    (X, y), (Xv, yv) = fit, val
    start = {k: v.clone() for k, v in net.state_dict().items()}
    best = (-1.0, None, None, None)
    seconds, total = {}, 0.0
    for lr in lrs:
        net.load_state_dict(start)
        torch.manual_seed(seed)
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
        t0 = time.perf_counter()
        for epoch in range(1, epochs + 1):
            net.train()
            perm = torch.randperm(len(X))
            for i in range(0, len(X), BATCH):
                idx = perm[i : i + BATCH]
                opt.zero_grad()
                nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
                opt.step()
            net.eval()
            acc = accuracy(net, Xv, yv)
            if acc > best[0]:
                best = (acc, lr, epoch, {k: v.clone() for k, v in net.state_dict().items()})
        seconds[lr] = time.perf_counter() - t0
        total += seconds[lr]
    acc, lr, epoch, state = best
    net.load_state_dict(state)
    return net, dict(lr=lr, epoch=epoch, val=acc, seconds=seconds[lr], seconds_all=total)


def head(n_features, n_classes=10):
    """The softmax layer of the paper's Fig. 2: a linear layer on the flattened pooled maps (cross-entropy applies the softmax)."""
    torch.manual_seed(0)  # every row's head starts from the same draw
    return nn.Sequential(nn.Flatten(), nn.Linear(n_features, n_classes))


def frozen(enc, fit, val, tests, *, lrs, epochs):
    """Filters frozen: features computed once, then the head trained on them.

    The features are ``enc.transform``'s (several times faster than the module on a CPU),
    put in the exported module's (K, ph, pw) order and checked equal to the module's forward
    on 200 images, so the head sees what it would see on top of the frozen module.
    """
    module = enc.to_torch()
    check = fit[0][:200]
    t0 = time.perf_counter()
    F, Fv, *Ft = (module_order(enc, X) for X in (fit[0], val[0], *tests))
    t_features = time.perf_counter() - t0
    np.testing.assert_allclose(forward(module, nchw(check)).flatten(1).numpy(), F[:200].numpy(), rtol=1e-4, atol=1e-5)
    labels = [torch.from_numpy(y) for _, y in (fit, val)]
    net, info = train(head(F.shape[1]), (F, labels[0]), (Fv, labels[1]), lrs=lrs, epochs=epochs)
    return net, Ft, dict(info, times=dict(features=t_features))


def module_order(enc, X):
    """``enc.transform(X)`` ((ph, pw, K) flattened) as the flattened (K, ph, pw) maps of ``enc.to_torch()``."""
    F = torch.from_numpy(enc.transform(X))
    return F.reshape(len(X), -1, enc.n_components).transpose(1, 2).flatten(1)


def conv_counterpart(K, window, pool_size, pool_stride):
    """The paper's end-to-end net: a standard CONV layer (with bias) + ReLU, the same max pooling (Appendix)."""
    return nn.Sequential(nn.Conv2d(1, K, window), nn.ReLU(), nn.MaxPool2d(pool_size, stride=pool_stride))


def n_flat(module, image):
    with torch.no_grad():
        return module(nchw(image[:1])).numel()


def main(args):
    torch.set_num_threads(1)
    fit, val, Xt, Xs, yt = data(args.n_train, args.n_val, args.n_test)
    y_fit, y_val, y_test = (torch.from_numpy(v) for v in (fit[1], val[1], yt))
    lrs, epochs, e2e_epochs = args.lrs, args.epochs, args.e2e_epochs
    print(
        f"Fashion-MNIST {len(fit[0])} training / {len(val[0])} validation / {len(Xt)} test images; K = {args.n_components}; "
        f"Adam, batch {BATCH}, lr in {lrs}, head {epochs} epochs, end to end {e2e_epochs} epochs; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    rows = []

    def record(name, net, tests, info, **times):
        """Accuracy on the clean and the shadowed test images."""
        clean, shadow = (accuracy(net, T, y_test) for T in tests)
        times = {**info.pop("times", {}), **times}
        rows.append(dict(name=name, clean=clean, shadow=shadow, **info, **times))
        print(
            f"{name:<44} clean {clean:.4f} shadowed {shadow:.4f}  (lr {info['lr']:g}, epoch {info['epoch']}, "
            f"val {info['val']:.4f}, chosen run {info['seconds']:.1f} s, all lrs {info['seconds_all']:.1f} s) "
            + " ".join(f"{k} {v:.1f} s" for k, v in times.items())
            + f"; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )

    # 1. local: the filters learned by the rule, exported, frozen
    enc = KrotovPatchEncoder(args.n_components, center=not args.uncentred, max_iter=args.local_epochs, random_state=0)
    # the fit runs on the BLAS threads (OMP_NUM_THREADS), capped at the cores other processes leave free
    threads = min(max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1), free_cores())
    t0 = time.perf_counter()
    enc.fit(fit[0])
    t_local = time.perf_counter() - t0
    print(f"  local filters: {np.mean(enc.components_ > 0):.3f} of their weights positive", flush=True)
    tests = (Xt, Xs)
    fit_t, val_t = (nchw(fit[0]), y_fit), (nchw(val[0]), y_val)
    net, Ft, info = frozen(enc, fit, val, tests, lrs=lrs, epochs=epochs)
    record(f"NNL-CONV, local filters ({args.local_epochs} epochs), frozen", net, Ft, info, local_fit=t_local)

    # 2. end to end: the same exported module from the random initial filters, trained with the head
    random_enc = untrained(enc)
    net = nn.Sequential(random_enc.to_torch(), head(n_flat(enc.to_torch(), fit[0])))
    w0 = net[0][0].conv.weight.detach().clone()
    net, info = train(net, fit_t, val_t, lrs=lrs, epochs=e2e_epochs)
    w = net[0][0].conv.weight.detach()
    unit = [v.flatten(1) / v.flatten(1).norm(dim=1, keepdim=True) for v in (w0, w)]
    info["filter_change"] = float((unit[1] - unit[0]).norm() / unit[0].norm())  # the unit filters the layer uses
    record("NNL-CONV, end to end from random filters", net, [nchw(T) for T in tests], info)
    print(f"  end to end moved the unit filters by {info['filter_change']:.3f} of their norm", flush=True)

    # 3. untrained control: the random filters frozen
    net, Ft, info = frozen(random_enc, fit, val, tests, lrs=lrs, epochs=epochs)
    record("NNL-CONV, random filters frozen (control)", net, Ft, info)

    # 4. classical: k-means filters frozen, and raw pixels
    t0 = time.perf_counter()
    km_enc = kmeans_filters(enc, fit[0])
    t_km = time.perf_counter() - t0
    net, Ft, info = frozen(km_enc, fit, val, tests, lrs=lrs, epochs=epochs)
    record("NNL-CONV, k-means filters frozen", net, Ft, info, kmeans_fit=t_km)
    net, info = train(head(28 * 28), fit_t, val_t, lrs=lrs, epochs=epochs)
    record("raw pixels, the same head", net, [nchw(T) for T in tests], info)

    # 5. the paper's end-to-end counterpart: CONV + ReLU, no patch normalisation
    torch.manual_seed(0)
    conv = conv_counterpart(args.n_components, round(enc.components_.shape[1] ** 0.5), enc.pool_size, enc.pool_stride)
    net = nn.Sequential(conv, head(n_flat(conv, fit[0])))
    net, info = train(net, fit_t, val_t, lrs=lrs, epochs=e2e_epochs)
    record("CONV + ReLU (paper's counterpart), end to end", net, [nchw(T) for T in tests], info)

    print(f"\nlocal fit on {threads} thread(s); torch on {torch.get_num_threads()} thread(s)")
    print("| model | clean error | clean acc | shadowed error | shadowed acc | lr, epoch (val acc) | training s (all lrs) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {100 * (1 - r['clean']):.2f} % | {r['clean']:.4f} | {100 * (1 - r['shadow']):.2f} % | {r['shadow']:.4f} "
            f"| {r['lr']:g}, {r['epoch']} ({r['val']:.4f}) | {r['seconds']:.1f} ({r['seconds_all']:.1f}) |"
        )
    print(f"local fit {t_local:.1f} s; k-means fit {t_km:.1f} s; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=5_000, help="training images, the validation split included")
    parser.add_argument("--n-val", type=int, default=1_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--n-components", type=int, default=100, help="K (the library default)")
    parser.add_argument("--local-epochs", type=int, default=10, help="epochs of the local fit (the library default)")
    parser.add_argument("--epochs", type=int, default=10, help="epoch budget of every frozen-filter head")
    parser.add_argument("--e2e-epochs", type=int, default=10, help="epoch budget of the end-to-end nets")
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-3, 1e-2], help="Adam learning rates searched on validation")
    parser.add_argument("--uncentred", action="store_true", help="center=False: the paper's raw patches, normalised uncentred")
    parser.add_argument("--quick", action="store_true", help="1,000 / 300 / 1,000 images, K = 32, 5 epochs, one lr (under a minute)")
    args = parser.parse_args()
    if args.quick:
        args.n_train, args.n_val, args.n_test, args.n_components = 1000, 300, 1000, 32
        args.local_epochs, args.epochs, args.e2e_epochs, args.lrs = 2, 5, 5, [3e-3]
    main(args)
