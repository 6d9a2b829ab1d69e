"""NSMEncoder benchmarks: speed against pynsm, Fashion-MNIST accuracy.

Run with one thread (the machine is a shared 2-core CPU):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_nsm.py fc
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_nsm.py conv
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_nsm.py structured
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_nsm.py deep
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_nsm.py s2m
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_nsm.py conv-acc

``--quick`` shrinks every run to a smoke test (seconds).

Speed runs (fc, conv) train pynsm and NSMEncoder on the same data, from the
same initial weights, with the same learning rates for W and L (pynsm's SGD on
its loss equals Obeid Eq. 2 with eta = 4 lr / N and the same tau), the same
minibatches and the same number of epochs, and report samples/s together with
the similarity matching cost (Obeid Eq. 3) of both learned networks on held-out
data, evaluated by the same code (NSMEncoder.score with the other's weights),
so the speed is compared at a matched (or better) final objective.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sklhebb.datasets import load_fashion_mnist
from sklhebb.encoders.nsm import NSMEncoder


def fc_data(n_train, n_test):
    """Fashion-MNIST, centre 24x24 crop, 3x3 average pooled to 8x8 = 64 features, unit rows."""
    X, _ = load_fashion_mnist()
    X = X[: n_train + n_test, 2:26, 2:26].astype(np.float32) / 255.0
    X = X.reshape(-1, 8, 3, 8, 3).mean(axis=(2, 4)).reshape(-1, 64)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return X[:n_train], X[n_train:]


def with_weights(enc, W, L):
    """A copy of a fitted NSMEncoder carrying other weights (to score them)."""
    import copy

    e = copy.deepcopy(enc)
    e.components_ = np.ascontiguousarray(W, dtype=np.float32)
    e.lateral_ = np.ascontiguousarray(L, dtype=np.float32)
    return e


def make_pynsm(encoder, n_out, tau, n_dyn):
    from pynsm import SimilarityMatching

    return SimilarityMatching(encoder, n_out, tau=tau, max_iterations=n_dyn, iteration_projection=torch.nn.functional.relu)


def bench_fc(args):
    n_train, n_test = (2000, 500) if args.quick else (10000, 2000)
    N, B, epochs, tau = 100, args.batch_size, (1 if args.quick else args.epochs), args.tau
    eta = args.eta  # Obeid's eta; pynsm lr = eta * N / 4
    Xtr, Xte = fc_data(n_train, n_test)
    rng = np.random.RandomState(0)
    W0 = (rng.standard_normal((N, 64)) / 8.0).astype(np.float32)
    print(
        f"# fully connected: {n_train} x 64 -> {N}, batch {B}, {epochs} epochs, eta = {eta}, tau = {tau}, torch threads = {torch.get_num_threads()}"
    )
    judge = NSMEncoder(N, input_scale=1.0, image_shape=None, tol=1e-6, max_iter_dynamics=5000, dynamics="accelerated").fit(
        Xtr[:10]
    )  # only its scoring code is used
    enc = torch.nn.Linear(64, N, bias=False)
    with torch.no_grad():
        enc.weight.copy_(torch.from_numpy(W0))
    model = make_pynsm(enc, N, tau, 40)
    Xt = torch.from_numpy(Xtr)
    batches = [Xt[i : i + B] for i in range(0, n_train, B)]
    hist = pynsm_history(
        model, batches, eta * N / 4, epochs, judge, Xte, lambda: (enc.weight.detach().numpy(), model.competitor.weight.detach().numpy())
    )
    rows = [("pynsm 1.0.1 (40 autograd steps, step 1)", hist, 40.0)]
    for backend, dyn, tol in configs(args):

        def make(backend=backend, tol=tol, dyn=dyn):
            e = NSMEncoder(
                N,
                input_scale=1.0,
                image_shape=None,  # 8 x 8 rows as flat vectors: the fully connected network
                learning_rate=eta,
                tau=tau,
                batch_size=B,
                shuffle=False,
                tol=tol,
                dynamics=dyn,
                max_iter_dynamics=args.max_dyn,
                backend=backend,
                random_state=0,
            )
            e._init_params = _fixed_init(e._init_params, W0)
            return e

        _, h, k = run_ours(make, Xtr, Xte, judge, epochs, n_train)
        rows.append((f"NSMEncoder {backend}, {dyn}, tol = {tol:g}", h, k))
    report(rows, "samples", n_train, epochs)


def run_ours(make, Xtr, Xte, judge, epochs, n_samples):
    """Train epoch by epoch (partial_fit = one epoch of fit here: constant rate, no shuffling).

    Returns per-epoch (cumulative training seconds, held-out cost); scoring is not timed.
    """
    e = make()
    out, t_total, steps = [], 0.0, []
    for _ in range(epochs):
        t0 = time.perf_counter()
        e.partial_fit(Xtr)
        t_total += time.perf_counter() - t0
        steps.append(e.n_dynamics_steps_)
        out.append((t_total, -with_weights(judge, e.components_, e.lateral_).score(Xte)))
    return e, out, float(np.mean(steps))


def report(rows, unit, n_samples, epochs):
    """rows: (name, [(cum time, cost) per epoch], mean steps). First row is pynsm."""
    target = min(c for _, c in rows[0][1])
    print(f"target = pynsm's best held-out cost over {epochs} epochs: {target:.5f} (matched = within 0.1%)")
    for name, hist, _ in rows:
        print(f"  {name}: held-out cost per epoch " + ", ".join(f"{c:.5f}" for _, c in hist))
    print(
        f"| implementation | {unit}/s over {epochs} epochs | mean dynamics steps | held-out cost after {epochs} epochs "
        f"| epochs to reach the target | {unit}/s to reach it | speed-up at matched cost |"
    )
    print("|---|---|---|---|---|---|---|")
    base = None
    for name, hist, k in rows:
        sps = n_samples * epochs / hist[-1][0]
        hit = next((i for i, (_, c) in enumerate(hist) if c <= target * (1 + 1e-3)), None)
        if hit is None:
            reach, sps_hit = "not reached", float("nan")
        else:
            reach, sps_hit = str(hit + 1), n_samples * (hit + 1) / hist[hit][0]
        if base is None:
            base = sps_hit
        print(f"| {name} | {sps:,.1f} | {k:.1f} | {hist[-1][1]:.5f} | {reach} | {sps_hit:,.1f} | {sps_hit / base:.1f}x |")


def pynsm_history(model, batches, lr, epochs, judge, Xte, get_weights):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    hist, t_total = [], 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        for xb in batches:
            y = model(xb)
            loss = model.loss(xb, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        t_total += time.perf_counter() - t0
        W, M = get_weights()
        hist.append((t_total, -with_weights(judge, W, M).score(Xte)))
    return hist


def configs(args):
    return [(b, d, t) for b in args.backends for d in args.dynamics for t in args.tols]


def _fixed_init(orig, W0):
    def init(rng, dtype):
        p = orig(rng, dtype)
        p["W"] = W0.astype(dtype)
        return p

    return init


def bench_conv(args):
    n_train, n_test = (100, 10) if args.quick else (1000, 50)
    N, win, Bimg, epochs, tau = 50, 6, args.conv_batch, (1 if args.quick else args.epochs), args.tau
    eta = args.eta
    X, _ = load_fashion_mnist()
    X = X[: n_train + n_test].astype(np.float32) / 255.0
    Xtr, Xte = X[:n_train], X[n_train:]
    rng = np.random.RandomState(0)
    W0 = (rng.standard_normal((N, win * win)) / win).astype(np.float32)
    per = (28 - win + 1) ** 2
    print(
        f"# convolutional: {n_train} images 28x28 -> {N} channels of {win}x{win}, batch {Bimg} images "
        f"({Bimg * per} patches), {epochs} epochs, eta = {eta}, tau = {tau}, raw pixel patches"
    )
    judge = NSMEncoder(N, input_scale=1.0, window=win, normalize_patches=False, tol=1e-5, max_iter_dynamics=5000, dynamics="accelerated").fit(Xtr[:2])
    enc = torch.nn.Conv2d(1, N, win, bias=False)
    with torch.no_grad():
        enc.weight.copy_(torch.from_numpy(W0.reshape(N, 1, win, win)))
    model = make_pynsm(enc, N, tau, 40)
    Xt = torch.from_numpy(Xtr[:, None])
    batches = [Xt[i : i + Bimg] for i in range(0, n_train, Bimg)]
    hist = pynsm_history(
        model,
        batches,
        eta * N / 4,
        epochs,
        judge,
        Xte,
        lambda: (enc.weight.detach().numpy().reshape(N, -1), model.competitor.weight.detach().numpy()),
    )
    rows = [("pynsm 1.0.1 (40 autograd steps, step 1)", hist, 40.0)]
    for backend, dyn, tol in configs(args):

        def make(backend=backend, tol=tol, dyn=dyn):
            e = NSMEncoder(
                N,
                input_scale=1.0,
                window=win,
                normalize_patches=False,
                learning_rate=eta,
                tau=tau,
                batch_size=Bimg * per,
                chunk_size=Bimg,
                shuffle=False,
                tol=tol,
                dynamics=dyn,
                max_iter_dynamics=args.max_dyn,
                backend=backend,
                random_state=0,
            )
            e._init_params = _fixed_init(e._init_params, W0)
            return e

        _, h, k = run_ours(make, Xtr, Xte, judge, epochs, n_train)
        rows.append((f"NSMEncoder {backend}, {dyn}, tol = {tol:g}", h, k))
    report(rows, "images", n_train, epochs)


def _fashion_rows(n_train, n_test):
    """The first Fashion-MNIST train / test images as [0, 1] float32 rows, with their labels."""
    X, y = load_fashion_mnist()
    Xt, yt = load_fashion_mnist(kind="t10k")
    X = X[:n_train].reshape(n_train, -1).astype(np.float32) / 255.0
    Xt = Xt[:n_test].reshape(n_test, -1).astype(np.float32) / 255.0
    return X, y[:n_train], Xt, yt[:n_test]


def bench_structured(args):
    from sklearn.svm import LinearSVC

    n_train, n_test = (300, 200) if args.quick else (args.n_train, args.n_test)
    X, y, Xt, yt = _fashion_rows(n_train, n_test)
    mean = X.mean(axis=0)
    X, Xt = X - mean, Xt - mean  # Obeid Sec. 6.3: mean subtraction
    print(
        f"# structured single layer (Obeid Sec. 6.3): Fashion-MNIST {n_train} train / {n_test} test, stride 2, "
        f"radius 4, tanh, same-site lateral inhibition, LinearSVC() readout"
    )
    print("| readout input | neurons per site | features | fit time (s) | test accuracy |")
    print("|---|---|---|---|---|")
    svc = LinearSVC()
    t0 = time.perf_counter()
    acc = svc.fit(X, y).score(Xt, yt)
    print(f"| raw pixels (mean-subtracted) | - | 784 | - | {acc:.4f} |")
    for nps in [2] if args.quick else args.nps:
        # the network of the learned row and of its control
        net = dict(input_scale=1.0, structure="local", image_shape=(28, 28), site_stride=2, radius=4.0, activation="tanh", random_state=0)
        e = NSMEncoder(nps, learning_rate=args.eta, max_iter=1 if args.quick else args.epochs, batch_size=100, **net)
        t0 = time.perf_counter()
        e.fit(X)
        t_fit = time.perf_counter() - t0
        Z, Zt = e.transform(X), e.transform(Xt)
        acc = LinearSVC().fit(Z, y).score(Zt, yt)
        print(f"| learned structured NSM | {nps} | {Z.shape[1]} | {t_fit:.1f} | {acc:.4f} |", flush=True)
        # control: the same network with its initial (random, masked) weights, untrained
        e0 = NSMEncoder(nps, max_iter=1, learning_rate=1e-12, batch_size=n_train, **net).fit(X)
        Z, Zt = e0.transform(X), e0.transform(Xt)
        acc0 = LinearSVC().fit(Z, y).score(Zt, yt)
        print(f"| random structured weights (control) | {nps} | {Z.shape[1]} | - | {acc0:.4f} |", flush=True)


def bench_deep(args):
    """Deep structured NSM (Obeid Sec. 4-6) against the single structured layer, Fashion-MNIST, LinearSVC."""
    from sklearn.svm import LinearSVC

    n_train, n_test = (300, 200) if args.quick else (args.n_train, args.n_test)
    epochs = 1 if args.quick else args.epochs
    X, y, Xt, yt = _fashion_rows(n_train, n_test)
    mean = X.mean(axis=0)
    X, Xt = X - mean, Xt - mean  # Obeid Sec. 6.3: mean subtraction
    nps1, nps2 = args.nps[0], args.nps2
    print(
        f"# deep structured NSM (Obeid Sec. 4-6): Fashion-MNIST {n_train} train / {n_test} test, tanh, {epochs} "
        f"epochs, eta = {args.eta}, batch 100; layer 1: sites every 2 px, radius 4, {nps1} neurons per site; "
        f"layer 2: sites every 2 layer-1 sites, radius r2 (layer-1 site units), {nps2} neurons per site; "
        f"same-site lateral inhibition (L as blocks); LinearSVC() readout; saturated = share of the top layer's "
        f"test outputs with |r| > 0.99"
    )
    print("| network | r2 | gamma | features | fit time (s) | mean dynamics steps | saturated | test accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    common = dict(structure="local", image_shape=(28, 28), activation="tanh", batch_size=100, random_state=0)

    def evaluate(name, r2, gamma, e, t_fit):
        e = e.set_params(return_layers="all")
        Z, Zt = e.transform(X), e.transform(Xt)
        n_top = e.components_.shape[0]
        sat = float(np.mean(np.abs(Zt[:, -n_top:]) > 0.99))
        views = [("", Z, Zt)]
        if e.hidden_layer_sizes:
            views = [(", top layer", Z[:, -n_top:], Zt[:, -n_top:]), (", both layers", Z, Zt)]
        for suffix, A, At in views:
            acc = LinearSVC().fit(A, y).score(At, yt)
            print(f"| {name}{suffix} | {r2} | {gamma} | {A.shape[1]} | {t_fit} | {e.n_dynamics_steps_:.1f} | {sat:.2f} | {acc:.4f} |", flush=True)

    for lr, label in [(args.eta, "learned"), (1e-12, "random weights, untrained (control)")]:
        learned = lr == args.eta
        ep = epochs if learned else 1
        e = NSMEncoder(nps1, input_scale=1.0, site_stride=2, radius=4.0, learning_rate=lr, max_iter=ep, **common)
        t0 = time.perf_counter()
        e.fit(X)
        evaluate(f"single structured layer, {label}", "-", "-", e, f"{time.perf_counter() - t0:.1f}" if learned else "-")
        for r2 in args.radius2:
            for gamma in args.gammas if learned else [0.0]:
                e = NSMEncoder(
                    nps2,
                    input_scale=1.0,
                    hidden_layer_sizes=(nps1,),
                    site_stride=(2, 2),
                    radius=(4.0, r2),
                    lateral_radius=0.0,
                    gamma=gamma,
                    learning_rate=lr,
                    max_iter=ep,
                    **common,
                )
                t0 = time.perf_counter()
                e.fit(X)
                evaluate(
                    f"deep structured, 2 layers, {label}",
                    f"{r2:g}",
                    f"{gamma:g}" if learned else "-",
                    e,
                    f"{time.perf_counter() - t0:.1f}" if learned else "-",
                )


def bench_s2m(args):
    from sklearn.linear_model import LogisticRegression

    n_train, n_test = (500, 300) if args.quick else (args.n_train, args.n_test)
    X, y, Xt, yt = _fashion_rows(n_train, n_test)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Xt /= np.linalg.norm(Xt, axis=1, keepdims=True)
    N = args.s2m_units
    print(
        f"# S2M (Bahroun Sec. 4, Fig. 3): fully connected, {N} ReLU units, Fashion-MNIST {n_train} train / "
        f"{n_test} test, unit-norm rows, {args.epochs} epochs, LogisticRegression readout on transform(X)"
    )
    print("| alpha | test accuracy | mean dynamics steps |")
    print("|---|---|---|")
    for alpha in [0.0, 1.0] if args.quick else args.alphas:
        e = NSMEncoder(
            N,
            input_scale=1.0,
            image_shape=None,  # 784-pixel rows as flat vectors: Bahroun's fully connected S2M
            alpha=alpha,
            learning_rate=args.eta,
            max_iter=1 if args.quick else args.epochs,
            batch_size=100,
            random_state=0,
        )
        e.fit(X, y)
        Z, Zt = e.transform(X), e.transform(Xt)
        acc = LogisticRegression(max_iter=2000).fit(Z, y).score(Zt, yt)
        print(f"| {alpha:g} | {acc:.4f} | {e.n_dynamics_steps_:.1f} |", flush=True)


def bench_conv_acc(args):
    """Convolutional NSM features + LinearSVC against the same network with random W (L = I)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    n_train, n_test = (300, 200) if args.quick else (args.n_train, args.n_test)
    X, y = load_fashion_mnist()
    Xt, yt = load_fashion_mnist(kind="t10k")
    X, y, Xt, yt = X[:n_train], y[:n_train], Xt[:n_test], yt[:n_test]
    N, win = args.conv_units, args.window
    print(
        f"# convolutional NSM features: Fashion-MNIST {n_train} train / {n_test} test, {N} channels of {win}x{win}, "
        f"unit-norm patches (center={args.center}), ReLU, sum pooling over quadrants, StandardScaler + LinearSVC"
    )
    print("| features | fit time (s) | transform time (s) | mean dynamics steps | test accuracy |")
    print("|---|---|---|---|---|")
    for name, lr, epochs in [("learned conv NSM", args.eta, 1 if args.quick else args.epochs), ("random W, L = I (control)", 1e-12, 1)]:
        e = NSMEncoder(N, input_scale=1.0, window=win, center=args.center, learning_rate=lr, max_iter=epochs, batch_size=5000, random_state=0)
        t0 = time.perf_counter()
        e.fit(X)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        Z, Zt = e.transform(X), e.transform(Xt)
        t_tr = time.perf_counter() - t0
        clf = make_pipeline(StandardScaler(), LinearSVC()).fit(Z, y)
        print(f"| {name} | {t_fit:.1f} | {t_tr:.1f} | {e.n_dynamics_steps_:.1f} | {clf.score(Zt, yt):.4f} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["fc", "conv", "structured", "deep", "s2m", "conv-acc"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--eta", type=float, default=0.02)
    p.add_argument("--tau", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--conv-batch", type=int, default=20)
    p.add_argument("--max-dyn", type=int, default=40)
    p.add_argument("--tols", type=float, nargs="+", default=[1e-4])
    p.add_argument("--backends", nargs="+", default=["numpy", "torch"])
    p.add_argument("--dynamics", nargs="+", default=["neural", "accelerated"])
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--nps", type=int, nargs="+", default=[4, 8])
    p.add_argument("--nps2", type=int, default=8, help="deep: neurons per site of layer 2 (layer 1: --nps[0])")
    p.add_argument(
        "--radius2",
        type=float,
        nargs="+",
        default=[1.5, 3.0],
        help="deep: radii of layer 2 in layer-1 site units (1.5: the 2 x 2 sites below; 3: up to 32 sites)",
    )
    p.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.1], help="deep: feedback strengths")
    p.add_argument("--alphas", type=float, nargs="+", default=[0, 0.01, 0.1, 1, 10])
    p.add_argument("--s2m-units", type=int, default=10)
    p.add_argument("--conv-units", type=int, default=50)
    p.add_argument("--window", type=int, default=6)
    p.add_argument("--center", action="store_true")
    args = p.parse_args()
    torch.manual_seed(0)
    {"fc": bench_fc, "conv": bench_conv, "structured": bench_structured, "deep": bench_deep, "s2m": bench_s2m, "conv-acc": bench_conv_acc}[args.what](
        args
    )


if __name__ == "__main__":
    main()
