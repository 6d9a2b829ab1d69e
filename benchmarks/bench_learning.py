"""Does the learning pay? Learned filters against their untrained control and a classical baseline (issue 14).

    python benchmarks/bench_learning.py whiten [--n-train N] [--n-test N] [--whiten none 0.1] [--epochs E]
    python benchmarks/bench_learning.py stack [--n-train N] [--n-test N] [--whiten none] [--epochs E]
    python benchmarks/bench_learning.py nsm-conv [--n-train N] [--n-test N] [--whiten none 0.1] [--epochs E]
    python benchmarks/bench_learning.py nps [--n-train N] [--n-test N] [--nps 4 8 16 32 64] [--epochs E]
    python benchmarks/bench_learning.py conv-search [--n-train N] [--n-test N] [--configs '{"learning_rate": 0.005}' ...]
    python benchmarks/bench_learning.py struct-search [--n-train N] [--n-test N] [--nps 8] [--configs '{"max_iter": 10}' ...] [--seeds 0 1 2]
    python benchmarks/bench_learning.py lce [--n-train N] [--n-test N] [--widths 1000 1000] [--epochs E] [--window K]
        [--subspace] [--lce-rate ETA] [--lce-activation NAME] [--seeds 0 1]
    python benchmarks/bench_learning.py deep [--n-train N] [--n-test N] [--scales 1 0.5] [--radius2 1.5 3] [--gammas 0 0.1] [--tau T] [--seeds 0 1]

Fashion-MNIST (local Debian package), the first ``--n-train`` training and
``--n-test`` test images, pixels in [0, 1]. Every row has the same readout,
StandardScaler + LogisticRegression, fitted on the training features only.

whiten
    One KrotovPatchEncoder layer (K, W = 5, pool 8 stride 4, center=True) per
    ``--whiten`` setting (none: the unwhitened path). For each: the learned
    filters; the same layer (same whitening) with standard-normal filters, the
    untrained control; the same layer with k-means filters (MiniBatchKMeans on
    100,000 of the layer's own normalised and whitened patches, the Coates & Ng
    dictionary); and raw pixels once.
stack
    Two layers, ``make_pipeline(KrotovPatchEncoder(output_layout="image"),
    KrotovPatchEncoder(), StandardScaler(), LogisticRegression())``: layer 1
    (K1, W = 5, pool 2 stride 2) learned, layer 2 (K2, W = 3, pool 4 stride 2)
    learned against layer 2 untrained (standard-normal filters) on top of the
    same learned layer 1, and layer 1 alone with the pooling of the stack.
nsm-conv
    The convolutional NSMEncoder of benchmarks/bench_nsm.py conv-acc (50
    channels of 6 x 6 unit-norm patches, ReLU, sum pooling over quadrants,
    eta 0.02, batch 5,000) per ``--whiten`` setting, learned against the same
    network untrained (random W, L = I, same whitening), and raw pixels;
    readout StandardScaler + LinearSVC() as in that table.
nps
    Obeid Table 1's sweep, neurons per site, on the structured single layer
    of benchmarks/bench_nsm.py structured (sites every 2 px, radius 4, tanh,
    same-site lateral inhibition, images mean-subtracted by the training
    mean), learned against the same network untrained, with a readout that
    converges by construction: RidgeClassifierCV (closed form, its penalty
    chosen by leave-one-out on the training set) on standardised features;
    LinearSVC() as in the earlier table beside it, with whether liblinear
    converged (``--svc-scaled``: on standardised features). Also the share of tanh outputs with |r| > 0.99 (saturated).
deep
    Obeid's deep structured network of benchmarks/bench_nsm.py deep (layer 1:
    4 tanh neurons per site every 2 px, radius 4; layer 2: 8 per site every 2
    layer-1 sites, radius r2; same-site lateral inhibition; mean-subtracted
    pixels; eta ``--eta``, ``--epochs``, batch 100; ``--activation`` tanh, or the
    capped ReLU of Obeid Sec. 6.2), per ``layer_input_scale`` c
    (``--scales``; 1 is the paper's network), r2 and gamma: layer 2 learned
    against layer 2 untrained (its initial W, L = I) on top of the same
    learned layer 1, and layer 1 alone learned against untrained, raw pixels;
    readout ``tuned_ridge`` (all rows), the share of layer 2's test outputs
    with |r| > 0.99 (capped_relu: its cap is 1) and the mean norm of layer 2's input c r^(1).
    ``--n1``, ``--n2``: layer 1's and layer 2's neurons per site (4 and 8 by default); ``--tau``: both
    layers' tau (1, the paper's, by default); ``--seeds``: one
    pass (layer 1 alone and every network) per random_state (0 by default).
    ``--pools``: each layer alone also pooled over its site grid, as in
    struct-search (layer 1: 14 x 14 sites; layer 2: 7 x 7).
conv-search
    The convolutional NSMEncoder of nsm-conv (50 channels of 6 x 6 unit-norm
    patches, ReLU, quadrant sum pooling, eta 0.02, 2 epochs, batch 5,000
    patches) with each ``--configs`` entry's parameters changed (a JSON dict
    of NSMEncoder parameters, e.g. learning_rate, max_iter, n_components,
    threshold, whiten, pool, pool_size), learned against the same network
    untrained (random W, L = I), and raw pixels; two readouts on the same
    features: ``tuned_ridge`` and, with ``--svc``, StandardScaler + LinearSVC
    with C chosen on the same validation split (0.001 to 1, dual="auto",
    max_iter 1,000, with whether liblinear converged at the chosen C); and
    the share of pooled features that are zero on every training image (dead).
    ``--split-lateral``: also the learned filters W with L = I (outputs
    relu(W x)), to tell the filters from the learned lateral inhibition.
    ``--pooled-patches``: also the same network with W = L = I and a linear
    activation, whose features are the sum-pooled (normalised, whitened)
    patches themselves: a linear function of the pixels, the representation
    whose Gram matrix an exact similarity-matching solution reproduces.
    ``--pools``: every network's rows under each pooling (JSON dicts of
    ``pool``, ``pool_size``, ``pool_stride`` and ``power``, the features
    sign(F) |F|^power after pooling), from one solve of the dynamics per
    network (``pooled_features``); the configs then may not set the pooling.
    ``--filter-stats``: per network also the statistics of ``filter_stats``
    (mean |cos| and participation ratio of the rows of W and of the effective
    filters L^-1 W, cond(L), and on 20,000 training patches the silent
    channels, the share of active outputs, the mean |correlation| between
    channels, and the distance of the outputs' similarities from the inputs').
struct-search
    The structured single layer of nps (``--nps`` neurons per site, sites
    every 2 px, radius 4, tanh, same-site lateral inhibition, eta 0.02,
    ``--epochs``, batch 100, input_scale 1, mean-subtracted pixels) with each
    ``--configs`` entry's NSMEncoder parameters changed, learned against the
    same network untrained (its initial masked W, L = I), and raw pixels;
    readout ``tuned_ridge``. ``--seeds``: both networks once per
    random_state (overriding the config's), then the mean margin.
    ``--pools``: every network's outputs also pooled over the site grid
    (``site_pooled``: max or sum, window and stride in sites, ``"signs":
    "both"`` for max(F) and max(-F) side by side), each pooling a row.
    ``--zca EPS``: the mean-subtracted pixels ZCA-whitened first
    (``zca_matrix`` fitted on the training images, relative eps), rescaled to
    their mean squared norm before whitening, so that tanh sees inputs of the
    same size.
lce
    LocalCompetitiveEncoder (Zhou), a layer-wise stack of ``--widths`` units
    (its defaults otherwise: square_normalize, 10 epochs per layer,
    ``return_layers="all"``): at every layer p, layer p learned against layer
    p untrained (its initial truncated-normal weights) on top of the same
    learned layers below, and raw pixels; readout ``tuned_ridge``.
    ``--window K``: locally connected layers (Section V; K x K windows, same-size
    output), ``--widths`` then counts units per image position. ``--subspace``:
    how much of layer 1's weight energy lies in the inputs' top principal
    subspaces, and the weights' effective rank, learned against untrained.

The readout ``tuned_ridge`` (deep, and the later commands): StandardScaler +
a one-vs-rest ridge classifier whose penalty is chosen on a held-out 20 % of
the training set (15 values, 1e-4 to 1e5), then refitted on the whole training
set; a closed form (SVD), so it converges on every feature set alike.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklhebb import KrotovPatchEncoder
from sklhebb._backend import resolve
from sklhebb.datasets import load_fashion_mnist
from sklhebb.image import PatchStream
from sklhebb.rules.structure import site_grid


def data(n_train, n_test):
    X, y = load_fashion_mnist()
    Xt, yt = load_fashion_mnist(kind="t10k")
    return X[:n_train].astype(np.float32) / 255, y[:n_train], Xt[:n_test].astype(np.float32) / 255, yt[:n_test]


def readout_score(F, y, Ft, yt):
    """StandardScaler + LogisticRegression on the training features; test accuracy and seconds."""
    t0 = time.perf_counter()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(F, y)
    return clf.score(Ft, yt), time.perf_counter() - t0


def row(name, enc, X, y, Xt, yt, t_fit=0.0):
    t0 = time.perf_counter()
    F, Ft = enc.transform(X), enc.transform(Xt)
    t_tr = time.perf_counter() - t0
    acc, t_ro = readout_score(F, y, Ft, yt)
    print(f"{name:<58} acc={acc:.4f}  fit={t_fit:6.1f}s transform={t_tr:6.1f}s readout={t_ro:6.1f}s", flush=True)
    return acc


def untrained(enc, seed=0):
    """The same fitted layer (geometry, whitening) with standard-normal filters."""
    ctrl = copy.deepcopy(enc)
    ctrl.components_ = np.random.RandomState(seed).standard_normal(enc.components_.shape).astype(enc.components_.dtype)
    return ctrl


def kmeans_filters(enc, X, n_patches=100_000, seed=0):
    """The same layer with k-means centroids of its own normalised (and whitened) patches as filters."""
    bk = resolve("numpy")
    whitening = None if not hasattr(enc, "whitening_") else (enc.whitening_mean_.astype(np.float32), enc.whitening_.astype(np.float32))
    images = X.reshape(X.shape[0], 28, 28, 1) if X.ndim == 3 else X
    win = enc.components_.shape[1] // images.shape[3]
    stream = PatchStream(bk, images, int(round(win**0.5)), n_patches, 64, "float32", center=enc.center, whitening=whitening)
    P = next(iter(stream.epoch(np.random.RandomState(seed))))
    km = MiniBatchKMeans(enc.components_.shape[0], random_state=seed, n_init=3, batch_size=4096).fit(P)
    out = copy.deepcopy(enc)
    out.components_ = km.cluster_centers_.astype(enc.components_.dtype)
    return out


def whiten_cmd(args):
    X, y, Xt, yt = data(args.n_train, args.n_test)
    print(f"Fashion-MNIST {len(X)} train / {len(Xt)} test; K={args.K}, W=5, pool 8/4, {args.epochs} epochs; load {os.getloadavg()}", flush=True)
    acc, t = readout_score(X.reshape(len(X), -1), y, Xt.reshape(len(Xt), -1), yt)
    print(f"{'raw pixels':<58} acc={acc:.4f}  readout={t:6.1f}s", flush=True)
    for w in args.whiten:
        eps = None if w == "none" else float(w)
        enc = KrotovPatchEncoder(args.K, window=5, whiten=eps, max_iter=args.epochs, random_state=0)
        t0 = time.perf_counter()
        enc.fit(X)
        t_fit = time.perf_counter() - t0
        row(f"whiten={w}: learned", enc, X, y, Xt, yt, t_fit)
        row(f"whiten={w}: untrained (standard-normal filters)", untrained(enc), X, y, Xt, yt)
        t0 = time.perf_counter()
        km = kmeans_filters(enc, X)
        row(f"whiten={w}: k-means filters", km, X, y, Xt, yt, time.perf_counter() - t0)


def stack_cmd(args):
    X, y, Xt, yt = data(args.n_train, args.n_test)
    eps = None if args.whiten[0] == "none" else float(args.whiten[0])
    print(
        f"Fashion-MNIST {len(X)} train / {len(Xt)} test; layer 1 K={args.K}, W=5, pool {args.pool1[0]}/{args.pool1[1]}, whiten={args.whiten[0]}; "
        f"layer 2 K={args.K2}, W=3, pool {args.pool2[0]}/{args.pool2[1]}, whiten={args.whiten2}; {args.epochs} epochs; load {os.getloadavg()}",
        flush=True,
    )
    acc, t = readout_score(X.reshape(len(X), -1), y, Xt.reshape(len(Xt), -1), yt)
    print(f"{'raw pixels':<58} acc={acc:.4f}  readout={t:6.1f}s", flush=True)
    pool1 = dict(pool_size=args.pool1[0], pool_stride=args.pool1[1])
    l1 = KrotovPatchEncoder(args.K, window=5, **pool1, whiten=eps, output_layout="image", max_iter=args.epochs, random_state=0)
    t0 = time.perf_counter()
    l1.fit(X)
    t1 = time.perf_counter() - t0
    l1_flat = copy.deepcopy(l1).set_params(output_layout="flat")
    row(f"layer 1 learned alone (pool {args.pool1[0]}/{args.pool1[1]})", l1_flat, X, y, Xt, yt, t1)
    row(f"layer 1 untrained alone (pool {args.pool1[0]}/{args.pool1[1]})", untrained(l1_flat), X, y, Xt, yt)
    t0 = time.perf_counter()
    H1, H1t = l1.transform(X), l1.transform(Xt)
    print(f"layer 1 maps {H1.shape[1:]} in {time.perf_counter() - t0:.1f}s", flush=True)
    eps2 = None if args.whiten2 == "none" else float(args.whiten2)
    l2 = KrotovPatchEncoder(args.K2, window=3, pool_size=args.pool2[0], pool_stride=args.pool2[1], whiten=eps2, max_iter=args.epochs, random_state=1)
    t0 = time.perf_counter()
    l2.fit(H1)
    t2 = time.perf_counter() - t0
    row("layer 2 learned on learned layer 1", l2, H1, y, H1t, yt, t2)
    row("layer 2 untrained on learned layer 1", untrained(l2), H1, y, H1t, yt)
    t0 = time.perf_counter()
    km = kmeans_filters(l2, H1)
    row("layer 2 k-means filters on learned layer 1", km, H1, y, H1t, yt, time.perf_counter() - t0)


def _ridge_and_svc(F, y, Ft, yt, scaled=False):
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.svm import LinearSVC

    ridge = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-1, 5, 13))).fit(F, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svc = (make_pipeline(StandardScaler(), LinearSVC()) if scaled else LinearSVC()).fit(F, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return ridge.score(Ft, yt), float(ridge[-1].alpha_), svc.score(Ft, yt), converged


RIDGE_ALPHAS = np.logspace(-4, 5, 19)


def tuned_ridge(F, y, Ft, yt, alphas=RIDGE_ALPHAS, val=0.2, seed=0):
    """Test accuracy, penalty and validation accuracy of StandardScaler + ridge (one-vs-rest, targets +-1), the
    penalty chosen on a random ``val`` share of the training rows, then refitted on all of them (by SVD)."""
    F, Ft = np.asarray(F, np.float64), np.asarray(Ft, np.float64)
    classes = np.unique(y)
    T = np.where(y[:, None] == classes[None, :], 1.0, -1.0)

    def solve(A, T):
        mu, sd = A.mean(axis=0), A.std(axis=0)
        sd[sd == 0] = 1.0
        U, sv, Vt = np.linalg.svd((A - mu) / sd, full_matrices=False)
        tm = T.mean(axis=0)
        UT = U.T @ (T - tm)
        return lambda a: (mu, sd, Vt.T @ ((sv / (sv**2 + a))[:, None] * UT), tm)

    def predict(model, A):
        mu, sd, B, tm = model
        return classes[np.argmax(((A - mu) / sd) @ B + tm, axis=1)]

    idx = np.random.RandomState(seed).permutation(len(F))
    va, tr = idx[: int(val * len(F))], idx[int(val * len(F)) :]
    path = solve(F[tr], T[tr])
    scores = [np.mean(predict(path(a), F[va]) == y[va]) for a in alphas]
    best = int(np.argmax(scores))
    return float(np.mean(predict(solve(F, T)(alphas[best]), Ft) == yt)), float(alphas[best]), float(scores[best])


def _top_untrained(learned, untrained):
    """The learned network with its top layer's weights replaced by the untrained network's (initial W, L = I)."""
    out = copy.deepcopy(learned)
    out.components_, out.lateral_ = untrained.components_, untrained.lateral_
    out.layer_components_ = learned.layer_components_[:-1] + [untrained.components_]
    out.layer_laterals_ = learned.layer_laterals_[:-1] + [untrained.lateral_]
    return out


def deep_cmd(args):
    import json

    from sklhebb import NSMEncoder

    X, y, Xt, yt = data(args.n_train, args.n_test)
    X, Xt = X.reshape(len(X), -1), Xt.reshape(len(Xt), -1)
    mean = X.mean(axis=0)
    X, Xt = X - mean, Xt - mean  # Obeid Sec. 6.3: mean subtraction
    print(
        f"Fashion-MNIST {len(X)} train / {len(Xt)} test, deep structured NSM ({args.n1} per site, radius 4 | {args.n2} per site, radius r2), "
        f"{args.activation}, "
        f"eta {args.eta}, tau {args.tau}, {args.epochs} epochs, tuned_ridge readout; load {os.getloadavg()}",
        flush=True,
    )
    print("| network | seed | c | r2 | gamma | features | fit (s) | dynamics steps | layer-2 input norm | saturated | accuracy | alpha |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    pools = site_pools(args)

    def line(name, seed, c, r2, gamma, F, Ft, t_fit="-", steps="-", norm="-", sat="-", grid=None):
        for spec in pools if grid is not None else [None]:
            G, Gt = site_pooled(F, grid, spec), site_pooled(Ft, grid, spec)
            acc, alpha, _ = tuned_ridge(G, y, Gt, yt)
            where = name if spec is None else f"{name}, `{json.dumps(spec)}`"
            print(
                f"| {where} | {seed} | {c} | {r2} | {gamma} | {G.shape[1]} | {t_fit} | {steps} | {norm} | {sat} | {acc:.4f} | {alpha:g} |",
                flush=True,
            )

    line("raw pixels (mean-subtracted)", "-", "-", "-", "-", X, Xt)
    learn = dict(learning_rate=args.eta, max_iter=args.epochs, batch_size=100)
    frozen = dict(learning_rate=1e-12, max_iter=1, batch_size=len(X))
    for seed in args.seeds if args.seeds is not None else [0]:
        common = dict(
            structure="local", image_shape=(28, 28), activation=args.activation, lateral_radius=0.0, input_scale=1.0, tau=args.tau,
            random_state=seed,
        )  # fmt: skip
        for label, kw in (("learned", learn), ("untrained", frozen)):
            e = NSMEncoder(args.n1, site_stride=2, radius=4.0, **kw, **common).fit(X)
            line(f"layer 1 alone, {label}", seed, "-", "-", "-", e.transform(X), e.transform(Xt), grid=site_grid(28, 28, 2))
        for r2 in args.radius2:
            for c in args.scales:
                for gamma in args.gammas:
                    net = dict(hidden_layer_sizes=(args.n1,), site_stride=(2, 2), radius=(4.0, r2), gamma=gamma, layer_input_scale=c, **common)
                    t0 = time.perf_counter()
                    e = NSMEncoder(args.n2, **learn, **net).fit(X)
                    t_fit = f"{time.perf_counter() - t0:.1f}"
                    ctrl = _top_untrained(e, NSMEncoder(args.n2, **frozen, **net).fit(X))
                    for name, enc in (("layer 2 learned on learned layer 1", e), ("layer 2 untrained on learned layer 1", ctrl)):
                        enc.set_params(return_layers="all")
                        Z, Zt = enc.transform(X), enc.transform(Xt)
                        n2 = enc.components_.shape[0]
                        H1t = Zt[:, :-n2]
                        norm, sat = f"{float(np.mean(np.linalg.norm(c * H1t, axis=1))):.1f}", f"{float(np.mean(np.abs(Zt[:, -n2:]) > 0.99)):.3f}"
                        steps = f"{e.n_dynamics_steps_:.1f}" if enc is e else "-"
                        top, top_t, fit_s = Z[:, -n2:], Zt[:, -n2:], t_fit if enc is e else "-"
                        line(name, seed, c, r2, gamma, top, top_t, fit_s, steps, norm, sat, grid=site_grid(14, 14, 2))
                        line(name.replace("layer 2", "layers 1 + 2"), seed, c, r2, gamma, Z, Zt)


def tuned_svc(F, y, Ft, yt, Cs=(0.001, 0.01, 0.1, 1.0), val=0.2, seed=0):
    """StandardScaler + LinearSVC, C chosen on the validation split of ``tuned_ridge``, refitted on all the training
    rows: test accuracy, C, and whether liblinear converged in that refit."""
    from sklearn.svm import LinearSVC

    idx = np.random.RandomState(seed).permutation(len(F))
    va, tr = idx[: int(val * len(F))], idx[int(val * len(F)) :]

    def fit(A, b, C):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf = make_pipeline(StandardScaler(), LinearSVC(C=C, dual="auto", max_iter=1000)).fit(A, b)
        return clf, not any(issubclass(w.category, ConvergenceWarning) for w in caught)

    scores = [fit(F[tr], y[tr], C)[0].score(F[va], y[va]) for C in Cs]
    C = Cs[int(np.argmax(scores))]
    clf, converged = fit(F, y, C)
    return clf.score(Ft, yt), C, converged


def _bank(A):
    """Mean |cosine| between the rows of A and the participation ratio of A's singular values over its largest value."""
    A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-30)
    off = ~np.eye(len(A), dtype=bool)
    s2 = np.linalg.svd(A, compute_uv=False) ** 2
    return float(np.mean(np.abs((A @ A.T)[off]))), float(s2.sum() ** 2 / (s2**2).sum() / min(A.shape))


def filter_stats(enc, X, n_patches=20_000, seed=1):
    """Statistics of a fitted convolutional NSMEncoder's filters and of its outputs on ``n_patches`` training patches.

    W: mean |cos| and participation ratio of its rows (the feedforward filters); L^-1 W: the same for the effective
    filters (r = L^-1 W x wherever no output is clipped); cond(L) = lambda_max / lambda_min; on the patches (cut,
    normalised and whitened as the encoder does), the fixed points r: the share of channels silent on every patch,
    the share of outputs > 0, the mean |correlation| between channels, and how far the outputs' similarities r.r'
    are from the inputs' x.x' on 2,000 of the patches: ||G - c H||_F / ||G||_F (G = x.x', H = r.r', c the best
    scale; 0 for an exact similarity-matching solution)."""
    from sklhebb import rules

    W, L = enc.components_.astype(np.float64), enc.lateral_.astype(np.float64)
    whitening = None if not hasattr(enc, "whitening_") else (enc.whitening_mean_.astype(np.float32), enc.whitening_.astype(np.float32))
    images = X.reshape(X.shape[0], 28, 28, 1) if X.ndim == 3 else X
    stream = PatchStream(resolve("numpy"), images, enc.window, n_patches, 64, "float32", center=enc.center, whitening=whitening)
    P = next(iter(stream.epoch(np.random.RandomState(seed)))).astype(np.float64)
    R, _ = rules.nsm_fixed_point(P @ W.T, L, activation=enc.activation, threshold=enc.threshold, tol=enc.tol, max_iter=2000, accelerate=True)
    C = np.cov(R, rowvar=False)
    sd = np.sqrt(np.diag(C))
    live = sd > 0
    corr = C[np.ix_(live, live)] / sd[live, None] / sd[None, live]
    off = ~np.eye(int(live.sum()), dtype=bool)
    ev = np.linalg.eigvalsh(L)
    G, H = P[:2000] @ P[:2000].T, R[:2000] @ R[:2000].T  # input and output similarities of 2,000 patches
    gram = float(np.linalg.norm(G - (np.sum(G * H) / np.sum(H * H)) * H) / np.linalg.norm(G))
    (wc, wp), (fc, fp) = _bank(W), _bank(np.linalg.solve(L, W))
    return dict(
        w_cos=wc,
        w_pr=wp,
        f_cos=fc,
        f_pr=fp,
        cond=float(ev[-1] / ev[0]),
        silent=float(np.mean(~live)),
        active=float(np.mean(R > 0)),
        corr=float(np.mean(np.abs(corr[off]))) if off.any() else float("nan"),
        gram=gram,
    )


POOL_KEYS = ("pool", "pool_size", "pool_stride", "power")


def pooled_features(enc, X, pools, chunk=500):
    """``enc``'s features of ``X`` under every pooling of ``pools`` (dicts of ``pool``, ``pool_size``,
    ``pool_stride`` and ``power``: features sign(F) |F|^power after pooling), from one solve of the dynamics.

    The output maps come from a copy of ``enc`` with 1 x 1 pooling, ``chunk`` images at a time, and are pooled
    by the library's own ``max_pool`` / sum pooling with the geometry that ``enc`` set to each pooling would use."""
    from sklhebb.encoders.nsm import _sum_pool
    from sklhebb.image import max_pool

    for spec in pools:
        if set(spec) - set(POOL_KEYS):
            raise ValueError(f"--pools: unknown keys {sorted(set(spec) - set(POOL_KEYS))}; allowed: {POOL_KEYS}")
    bk = resolve("numpy")
    maps = copy.deepcopy(enc).set_params(pool="sum", pool_size=1, pool_stride=1, output_layout="image")
    poolers = [copy.deepcopy(enc).set_params(**{k: v for k, v in spec.items() if k != "power"}) for spec in pools]
    out = [[] for _ in pools]
    for start in range(0, len(X), chunk):
        M = maps.transform(X[start : start + chunk])
        for F, spec, p in zip(out, pools, poolers):
            size, stride = p._pool_geometry(M.shape[1], M.shape[2])
            G = max_pool(bk, M, size, stride) if p.pool == "max" else _sum_pool(bk, M, size, stride)
            G = G.reshape(len(G), -1)
            F.append(np.sign(G) * np.abs(G) ** spec["power"] if "power" in spec else G)
    return [np.concatenate(F) for F in out]


def conv_search_cmd(args):
    import json

    from sklhebb import NSMEncoder

    X, y, Xt, yt = data(args.n_train, args.n_test)
    print(f"Fashion-MNIST {len(X)} train / {len(Xt)} test, conv NSM search; load {os.getloadavg()}", flush=True)
    stats_head = (
        " W mean abs cos | W PR | L^-1 W mean abs cos | L^-1 W PR | cond(L) | silent channels | active | channel abs corr | similarity mismatch |"
    )
    print(
        "| config | network | features | fit (s) | transform (s) | dynamics steps | dead | ridge acc | alpha | SVC acc | C | converged |"
        + (stats_head if args.filter_stats else "")
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" * 9 if args.filter_stats else ""))
    Xf, Xtf = X.reshape(len(X), -1), Xt.reshape(len(Xt), -1)
    acc, alpha, _ = tuned_ridge(Xf, y, Xtf, yt)
    sacc, C, conv = tuned_svc(Xf, y, Xtf, yt) if args.svc else (float("nan"), float("nan"), "-")
    print(f"| - | raw pixels | 784 | - | - | - | - | {acc:.4f} | {alpha:g} | {sacc:.4f} | {C:g} | {conv} |", flush=True)
    base = dict(n_components=50, input_scale=1.0, window=6, learning_rate=0.02, max_iter=2, batch_size=5000, random_state=0)
    for config in args.configs:
        params = {**base, **json.loads(config)}
        if args.pools is not None and set(json.loads(config)) & set(POOL_KEYS):
            raise ValueError(f"--configs {config}: pooling is set by --pools when it is given")
        runs = [("learned", {}), ("untrained", dict(learning_rate=1e-12, max_iter=1))]
        if args.split_lateral:
            runs.insert(1, ("learned W, L = I", {}))
        if args.pooled_patches:
            runs.append(("pooled patches", {}))
        learned = None
        for label, kw in runs:
            t0 = time.perf_counter()
            if label == "learned W, L = I":  # the learned filters without the learned lateral inhibition
                e = copy.deepcopy(learned)
                e.lateral_ = np.eye(e.lateral_.shape[0], dtype=e.lateral_.dtype)
                e.layer_laterals_ = [e.lateral_]
            elif label == "pooled patches":  # W = L = I, linear: the pooled (normalised, whitened) patches themselves
                e = copy.deepcopy(learned)
                e.set_params(activation="linear")
                e.components_ = np.eye(e.components_.shape[1], dtype=e.components_.dtype)
                e.lateral_ = np.eye(e.components_.shape[1], dtype=e.lateral_.dtype)
                e.layer_components_, e.layer_laterals_ = [e.components_], [e.lateral_]
            else:
                e = NSMEncoder(**{**params, **kw}).fit(X)
                learned = learned or e
            t_fit = time.perf_counter() - t0
            if args.pools is not None:
                pooled_rows(args, config, label, e, t_fit, X, y, Xt, yt)
                continue
            t0 = time.perf_counter()
            F, Ft = e.transform(X), e.transform(Xt)
            t_tr = time.perf_counter() - t0
            dead = float(np.mean(np.all(F == 0, axis=0)))
            acc, alpha, _ = tuned_ridge(F, y, Ft, yt)
            sacc, C, conv = tuned_svc(F, y, Ft, yt) if args.svc else (float("nan"), float("nan"), "-")
            print(
                f"| `{config}` | {label} | {F.shape[1]} | {t_fit:.1f} | {t_tr:.1f} | {e.n_dynamics_steps_:.1f} | {dead:.2f} | "
                f"{acc:.4f} | {alpha:g} | {sacc:.4f} | {C:g} | {conv} |"
                + ("".join(f" {v:.3g} |" for v in filter_stats(e, X).values()) if args.filter_stats else ""),
                flush=True,
            )


def pooled_rows(args, config, label, e, t_fit, X, y, Xt, yt):
    """conv-search rows of one fitted network under every ``--pools`` pooling (one solve of the dynamics)."""
    import json

    pools = [json.loads(p) for p in args.pools]
    t0 = time.perf_counter()
    feats = pooled_features(e, X, pools)
    feats_t = pooled_features(e, Xt, pools)
    t_tr = time.perf_counter() - t0
    stats = "".join(f" {v:.3g} |" for v in filter_stats(e, X).values()) if args.filter_stats else ""
    for spec, F, Ft in zip(args.pools, feats, feats_t):
        dead = float(np.mean(np.all(F == 0, axis=0)))
        acc, alpha, _ = tuned_ridge(F, y, Ft, yt)
        sacc, C, conv = tuned_svc(F, y, Ft, yt) if args.svc else (float("nan"), float("nan"), "-")
        print(
            f"| `{config}` `{spec}` | {label} | {F.shape[1]} | {t_fit:.1f} | {t_tr:.1f} | {e.n_dynamics_steps_:.1f} | {dead:.2f} | "
            f"{acc:.4f} | {alpha:g} | {sacc:.4f} | {C:g} | {conv} |" + stats,
            flush=True,
        )


SITE_POOL_KEYS = ("pool", "pool_size", "pool_stride", "signs")


def site_pools(args):
    """``--pools`` of struct-search and deep: the JSON specs of ``site_pooled``, None for "none" (and when not given)."""
    import json

    return [None] if args.pools is None else [None if p == "none" else json.loads(p) for p in args.pools]


def site_pooled(F, grid, spec):
    """Structured-layer outputs ``F`` (n, sites x neurons, ordered site row, site column, neuron) pooled over the
    site grid ``grid`` (rows, columns) as ``spec`` says: ``pool`` "max" or "sum" over ``pool_size`` x ``pool_size``
    windows every ``pool_stride`` sites; ``signs`` "both" pools F and -F and concatenates them (tanh outputs are
    signed, and a max keeps only the positive side). ``spec`` None: ``F`` as it is."""
    from sklhebb.encoders.nsm import _sum_pool
    from sklhebb.image import max_pool

    if spec is None:
        return F

    if set(spec) - set(SITE_POOL_KEYS) or not {"pool", "pool_size", "pool_stride"} <= set(spec):
        raise ValueError(f"--pools {spec}: needs pool, pool_size, pool_stride (and optionally signs); allowed: {SITE_POOL_KEYS}")
    if spec["pool"] not in ("max", "sum") or spec.get("signs", "both") != "both":
        raise ValueError(f"--pools {spec}: pool is 'max' or 'sum', and signs (when given) is 'both'")
    bk = resolve("numpy")
    M = np.ascontiguousarray(F.reshape(len(F), grid[0], grid[1], -1))
    sides = [M, -M] if spec.get("signs") == "both" else [M]
    pool = max_pool if spec["pool"] == "max" else _sum_pool
    return np.concatenate([pool(bk, S, spec["pool_size"], spec["pool_stride"]).reshape(len(F), -1) for S in sides], axis=1)


def struct_search_cmd(args):
    import json

    from sklhebb import NSMEncoder

    X, y, Xt, yt = data(args.n_train, args.n_test)
    X, Xt = X.reshape(len(X), -1), Xt.reshape(len(Xt), -1)
    mean = X.mean(axis=0)
    X, Xt = X - mean, Xt - mean  # Obeid Sec. 6.3: mean subtraction
    if args.zca is not None:  # ZCA of the pixels, fitted on the training set, rescaled to the pixels' mean squared norm
        from sklhebb.image import zca_matrix

        _, Z = zca_matrix(np.zeros(X.shape[1]), X.T.astype(np.float64) @ X / len(X), args.zca)
        size = np.sqrt(np.mean(np.sum(X.astype(np.float64) ** 2, axis=1)))
        X, Xt = X @ Z, Xt @ Z
        scale = size / np.sqrt(np.mean(np.sum(X**2, axis=1)))
        X, Xt = (X * scale).astype(np.float32), (Xt * scale).astype(np.float32)
    nps = args.nps[0]
    pools = site_pools(args)
    zca = "" if args.zca is None else f", pixels ZCA-whitened (eps {args.zca:g})"
    print(f"Fashion-MNIST {len(X)} train / {len(Xt)} test, structured NSM {nps} per site{zca}, search; load {os.getloadavg()}", flush=True)
    print("| config | seed | network | features | fit (s) | dynamics steps | saturated or zero | accuracy | alpha |")
    print("|---|---|---|---|---|---|---|---|---|")
    acc, alpha, _ = tuned_ridge(X, y, Xt, yt)
    print(f"| - | - | raw pixels (mean-subtracted{zca}) | 784 | - | - | - | {acc:.4f} | {alpha:g} |", flush=True)
    base = dict(
        input_scale=1.0, structure="local", image_shape=(28, 28), site_stride=2, radius=4.0, activation="tanh", random_state=0,
        learning_rate=0.02, max_iter=args.epochs, batch_size=100,
    )  # fmt: skip
    for config in args.configs:
        params = {**base, **json.loads(config)}
        margins = {}
        for seed in args.seeds if args.seeds is not None else [params["random_state"]]:
            accs = {}
            for label, kw in (("learned", {}), ("untrained", dict(learning_rate=1e-12, max_iter=1, batch_size=len(X)))):
                e = NSMEncoder(nps, **{**params, "random_state": seed, **kw})
                t0 = time.perf_counter()
                e.fit(X)
                t_fit = time.perf_counter() - t0
                F, Ft = e.transform(X), e.transform(Xt)
                odd = float(np.mean(np.abs(F) > 0.99)) if params["activation"] == "tanh" else float(np.mean(F == 0))
                grid = site_grid(28, 28, params["site_stride"])
                for spec in pools:
                    G, Gt = site_pooled(F, grid, spec), site_pooled(Ft, grid, spec)
                    acc, alpha, _ = tuned_ridge(G, y, Gt, yt)
                    accs.setdefault(json.dumps(spec), []).append(acc)
                    where = f"`{config}`" + ("" if spec is None else f" `{json.dumps(spec)}`")
                    print(
                        f"| {where} | {seed} | {label} | {G.shape[1]} | {t_fit:.1f} | {e.n_dynamics_steps_:.1f} | {odd:.3f} | "
                        f"{acc:.4f} | {alpha:g} |",
                        flush=True,
                    )
            for spec, (learned, untrained) in accs.items():
                margins.setdefault(spec, []).append(100 * (learned - untrained))
        for spec, m in margins.items():
            where = f"`{config}`" + ("" if spec == "null" else f" `{spec}`")
            print(f"| {where} | mean of {len(m)} | learned - untrained (points) | | | | | {np.mean(m):+.2f} | |", flush=True)


def lce_cmd(args):
    from sklhebb import LocalCompetitiveEncoder

    X, y, Xt, yt = data(args.n_train, args.n_test)
    X, Xt = X.reshape(len(X), -1), Xt.reshape(len(Xt), -1)
    widths = args.widths
    print(
        f"Fashion-MNIST {len(X)} train / {len(Xt)} test, LocalCompetitiveEncoder layer-wise {widths}, window {args.window}, "
        f"{args.epochs} epochs per layer, learning_rate {args.lce_rate or 'default'}, activation {args.lce_activation or 'default'}, "
        f"tuned_ridge readout; load {os.getloadavg()}",
        flush=True,
    )
    print("| readout input | layer | features | fit (s) | accuracy | alpha |")
    print("|---|---|---|---|---|---|")
    acc, alpha, _ = tuned_ridge(X, y, Xt, yt)
    print(f"| raw pixels | - | {X.shape[1]} | - | {acc:.4f} | {alpha:g} |", flush=True)
    rate = {} if args.lce_rate is None else dict(learning_rate=args.lce_rate)
    both = {} if args.lce_activation is None else dict(activation=args.lce_activation)  # learned and untrained
    bounds = np.cumsum([0] + [w * (28 * 28 if args.window is not None else 1) for w in widths])  # each layer's columns
    for seed in args.seeds or [0]:
        net = dict(n_components=widths[-1], hidden_layer_sizes=tuple(widths[:-1]), return_layers="all", random_state=seed, **both)
        if args.window is not None:  # locally connected layers (Zhou Section V): widths are units per position
            net.update(window=args.window, image_shape=(28, 28))
        t0 = time.perf_counter()
        learned = LocalCompetitiveEncoder(max_iter=args.epochs, **rate, **net).fit(X)
        t_fit = time.perf_counter() - t0
        initial = LocalCompetitiveEncoder(max_iter=1, learning_rate=1e-12, **net).fit(X)
        if args.subspace:
            _lce_subspace(X, learned, initial)
        for p in range(len(widths)):
            ctrl = copy.deepcopy(learned)
            ctrl.coefs_ = learned.coefs_[:p] + initial.coefs_[p:]
            accs = []
            for label, enc in (("learned", learned), ("untrained, on the learned layers below", ctrl)):
                F, Ft = enc.transform(X)[:, bounds[p] : bounds[p + 1]], enc.transform(Xt)[:, bounds[p] : bounds[p + 1]]
                acc, alpha, _ = tuned_ridge(F, y, Ft, yt)
                accs.append(acc)
                fit = f"{t_fit:.1f}" if enc is learned and p == 0 else "-"
                print(f"| seed {seed}: layer {p + 1} {label} | {p + 1} | {F.shape[1]} | {fit} | {acc:.4f} | {alpha:g} |", flush=True)
            print(f"| seed {seed}: layer {p + 1} learned - untrained (points) | {p + 1} | | | {100 * (accs[0] - accs[1]):+.2f} | |", flush=True)
        if len(widths) > 1:  # does depth add accuracy: every layer's features side by side
            accs = []
            nets = [("learned", learned.coefs_), ("top layer untrained", learned.coefs_[:-1] + initial.coefs_[-1:])]
            for label, coefs in nets + [("untrained", initial.coefs_)]:
                enc = copy.deepcopy(learned)
                enc.coefs_ = coefs
                acc, alpha, _ = tuned_ridge(enc.transform(X), y, enc.transform(Xt), yt)
                accs.append(acc)
                print(f"| seed {seed}: layers 1-{len(widths)} concatenated, {label} | all | {bounds[-1]} | - | {acc:.4f} | {alpha:g} |", flush=True)
            print(f"| seed {seed}: concatenated, learned - top layer untrained (points) | all | | | {100 * (accs[0] - accs[1]):+.2f} | |", flush=True)


def _lce_subspace(X, learned, initial, dims=(10, 50, 100, 200, 400)):
    """Where layer 1's weight vectors lie: the share of their energy in the inputs' top principal subspaces.

    The inputs as layer 1 sees them (unit vectors with ``normalize_input``);
    for each unit the fraction ||P_m w||^2 / ||w||^2, with P_m the projection
    on the top-m principal directions of those inputs (uncentred: the rule
    sees no mean), averaged over units; and the participation ratio of the
    weight matrix's squared singular values (its effective rank).
    """
    Z = X / np.linalg.norm(X, axis=1, keepdims=True) if learned.normalize_input else X
    _, _, Vt = np.linalg.svd(Z, full_matrices=False)
    print("| layer 1 weights | units | effective rank | " + " | ".join(f"energy in top {m}" for m in dims) + " |")
    print("|---|---|---|" + "---|" * len(dims))
    for label, enc in (("learned", learned), ("untrained", initial)):
        W = np.asarray(enc.coefs_[0], dtype=np.float64).T  # (units, inputs)
        sv2 = np.linalg.svd(W, compute_uv=False) ** 2
        pr = sv2.sum() ** 2 / (sv2**2).sum()
        norms = (W**2).sum(axis=1)
        shares = [float(np.mean(((W @ Vt[:m].T) ** 2).sum(axis=1) / norms)) for m in dims]
        print(f"| {label} | {W.shape[0]} | {pr:.1f} | " + " | ".join(f"{v:.3f}" for v in shares) + " |", flush=True)


def nps_cmd(args):
    from sklhebb import NSMEncoder

    X, y, Xt, yt = data(args.n_train, args.n_test)
    X, Xt = X.reshape(len(X), -1), Xt.reshape(len(Xt), -1)
    mean = X.mean(axis=0)
    X, Xt = X - mean, Xt - mean  # Obeid Sec. 6.3: mean subtraction
    svc = "StandardScaler + LinearSVC" if args.svc_scaled else "LinearSVC"
    print(f"Fashion-MNIST {len(X)} train / {len(Xt)} test, structured NSM, {args.epochs} epochs, {svc}; load {os.getloadavg()}", flush=True)
    print("| readout input | neurons per site | features | fit (s) | ridge acc | ridge alpha | LinearSVC acc | liblinear converged | saturated |")
    print("|---|---|---|---|---|---|---|---|---|")
    acc, alpha, svc, conv = _ridge_and_svc(X, y, Xt, yt, args.svc_scaled)
    print(f"| raw pixels (mean-subtracted) | - | 784 | - | {acc:.4f} | {alpha:g} | {svc:.4f} | {conv} | - |", flush=True)
    for nps in args.nps:
        net = dict(input_scale=1.0, structure="local", image_shape=(28, 28), site_stride=2, radius=4.0, activation="tanh", random_state=0)
        for label, kw in (
            ("learned", dict(learning_rate=0.02, max_iter=args.epochs, batch_size=100)),
            ("untrained", dict(learning_rate=1e-12, max_iter=1, batch_size=len(X))),
        ):
            e = NSMEncoder(nps, **kw, **net)
            t0 = time.perf_counter()
            e.fit(X)
            t_fit = time.perf_counter() - t0
            F, Ft = e.transform(X), e.transform(Xt)
            sat = float(np.mean(np.abs(F) > 0.99))
            acc, alpha, svc, conv = _ridge_and_svc(F, y, Ft, yt, args.svc_scaled)
            print(
                f"| {label} structured NSM | {nps} | {F.shape[1]} | {t_fit:.1f} | {acc:.4f} | {alpha:g} | {svc:.4f} | {conv} | {sat:.3f} |",
                flush=True,
            )


def nsm_conv_cmd(args):
    from sklearn.svm import LinearSVC

    from sklhebb import NSMEncoder

    X, y, Xt, yt = data(args.n_train, args.n_test)
    print(f"Fashion-MNIST {len(X)} train / {len(Xt)} test, conv NSM 50 x 6x6, {args.epochs} epochs; load {os.getloadavg()}", flush=True)

    def svc(F, Ft):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            acc = make_pipeline(StandardScaler(), LinearSVC()).fit(F, y).score(Ft, yt)
        return acc, not any(issubclass(w.category, ConvergenceWarning) for w in caught)

    acc, conv = svc(X.reshape(len(X), -1), Xt.reshape(len(Xt), -1))
    print(f"{'raw pixels':<46} acc={acc:.4f} liblinear converged={conv}", flush=True)
    for w in args.whiten:
        eps = None if w == "none" else float(w)
        for label, lr, epochs in (("learned", 0.02, args.epochs), ("untrained (random W, L = I)", 1e-12, 1)):
            e = NSMEncoder(50, input_scale=1.0, window=6, whiten=eps, learning_rate=lr, max_iter=epochs, batch_size=5000, random_state=0)
            t0 = time.perf_counter()
            e.fit(X)
            t_fit = time.perf_counter() - t0
            t0 = time.perf_counter()
            F, Ft = e.transform(X), e.transform(Xt)
            t_tr = time.perf_counter() - t0
            acc, conv = svc(F, Ft)
            print(f"{f'whiten={w}: {label}':<46} acc={acc:.4f} fit={t_fit:.1f}s transform={t_tr:.1f}s liblinear converged={conv}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["whiten", "stack", "nps", "nsm-conv", "deep", "lce", "conv-search", "struct-search"])
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--whiten", nargs="+", default=["none", "0.1"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--K", type=int, default=100)
    parser.add_argument("--K2", type=int, default=100)
    parser.add_argument("--pool1", type=int, nargs=2, default=[3, 3], metavar=("SIZE", "STRIDE"))
    parser.add_argument("--pool2", type=int, nargs=2, default=[2, 2], metavar=("SIZE", "STRIDE"))
    parser.add_argument("--whiten2", default="none")
    parser.add_argument("--svc-scaled", action="store_true", help="nps: StandardScaler before the LinearSVC readout")
    parser.add_argument("--nps", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5], help="deep: layer_input_scale values")
    parser.add_argument("--radius2", type=float, nargs="+", default=[1.5, 3.0], help="deep: layer 2 radii (layer-1 site units)")
    parser.add_argument("--svc", action="store_true", help="conv-search: the tuned LinearSVC readout as well")
    parser.add_argument("--split-lateral", action="store_true", help="conv-search: also the learned W with L = I")
    parser.add_argument("--pooled-patches", action="store_true", help="conv-search: also the pooled patches (W = L = I, linear)")
    parser.add_argument("--filter-stats", action="store_true", help="conv-search: statistics of the filters and outputs")
    parser.add_argument("--configs", nargs="+", default=["{}"], help="conv-search: JSON dicts of NSMEncoder parameters")
    parser.add_argument(
        "--pools",
        nargs="+",
        default=None,
        help="conv-search: JSON dicts of pool, pool_size, pool_stride, power; struct-search and deep: of pool, pool_size, "
        "pool_stride (in sites), signs, or none (the sites unpooled); every network (deep: every layer alone) under each",
    )
    parser.add_argument("--widths", type=int, nargs="+", default=[1000, 1000], help="lce: units per layer, bottom first")
    parser.add_argument("--window", type=int, default=None, help="lce: locally connected layers with this window; widths per position")
    parser.add_argument("--lce-rate", type=float, default=None, help="lce: learning_rate of the learned network (default: the encoder's)")
    parser.add_argument("--lce-activation", default=None, help="lce: the activation of both networks (default: the encoder's)")
    parser.add_argument("--subspace", action="store_true", help="lce: layer 1's weights against the inputs' principal subspaces")
    parser.add_argument("--eta", type=float, default=0.02, help="deep: learning rate of both layers")
    parser.add_argument("--activation", default="tanh", help="deep: the activation of both layers")
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.1], help="deep: feedback strengths")
    parser.add_argument("--n1", type=int, default=4, help="deep: layer 1's neurons per site")
    parser.add_argument("--n2", type=int, default=8, help="deep: layer 2's neurons per site")
    parser.add_argument("--tau", type=float, default=1.0, help="deep: NSMEncoder tau (L learns at eta / (2 tau))")
    parser.add_argument("--zca", type=float, default=None, help="struct-search: ZCA-whiten the pixels first (relative eps, as zca_matrix)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="struct-search, deep, lce: random_state of both networks, a pass per seed")
    args = parser.parse_args()
    commands = {"whiten": whiten_cmd, "stack": stack_cmd, "nps": nps_cmd, "nsm-conv": nsm_conv_cmd, "deep": deep_cmd, "lce": lce_cmd}
    {**commands, "conv-search": conv_search_cmd, "struct-search": struct_search_cmd}[args.what](args)


if __name__ == "__main__":
    main()
