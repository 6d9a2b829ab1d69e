"""KrotovPatchEncoder benchmarks: throughput against the matrix-product floor, and accuracy.

    python benchmarks/bench_krotov.py speed [--quick] [--threads 1 2] [--backend numpy torch] [--pause 0.2]
    python benchmarks/bench_krotov.py accuracy [--quick] [--n-train N] [--n-test N]
    python benchmarks/bench_krotov.py transform [--quick] [--n-train 10000] [--k 400] [--threads 1 2]
    python benchmarks/bench_krotov.py full [--n-train 60000] [--n-test 10000] [--encoder JSON] [--layer2 JSON [--layer3 JSON]] [--C ...]

speed
    One minibatch of Eq. (1)-(2) for K = 400 units, W = 4, C = 3 (N = 48),
    batch 1000, timed in the same run as
      * the floor: the two dense products of the rule (currents V M^T and the
        Hebbian sum g^T V) alone, and the one product V M^T alone;
      * a plain vectorised NumPy update (argsort ranking, dense g, two
        products), the straightforward transcription a user would write;
    and the end-to-end fit throughput (patch cutting, normalisation,
    shuffling included) on CIFAR-shaped random uint8 images. With numba
    installed, the NumPy backend is timed twice: with the compiled fit step
    (whose "step" also cuts and normalises its patches) and on the plain
    NumPy path (SKLHEBB_DISABLE_NUMBA).
transform
    The NNL-CONV transform of ``--n-train`` Fashion-MNIST images (K = ``--k``,
    W = 5, default pooling) against its one product alone: the normalised
    patches, cut beforehand in the transform's chunks, times the filters.
accuracy
    Fashion-MNIST (local Debian package): NNL-CONV features of learned
    filters against the same architecture with random filters (the control),
    StandardScaler + LogisticRegression readout, with fit/transform times.
full
    The issue-14 bar on Fashion-MNIST (the first ``--n-train`` / ``--n-test``
    images, pixels in [0, 1]): a KrotovPatchEncoder (``--encoder``, its
    parameters as JSON; ``--layer2``: a second layer on its image-layout maps,
    ``--layer3`` a third on layer 2's, every layer's features concatenated;
    ``--powers``: one pair of rows per power of a single layer, from the same
    filters; ``--seed``: the layers' and the control's seeds) against the same
    architecture with standard-normal filters (the untrained control; same
    whitening) and Coates & Ng's k-means pipeline (K-means centroids of 100,000
    centred, unit-norm, ZCA-whitened 5 x 5 patches, triangle activation
    max(0, mean_k z - z_k) of the distances z, sum pooling over the four
    quadrants), and raw pixels (``--rows raw``). Readout: StandardScaler + ``--readout`` (LogisticRegression or
    LinearSVC), C chosen on the last ``--val`` of the training images (fitted on
    the rest) and refitted on all of them; the test set is scored once. The
    learned features' fit and transform are timed each in its own hold of
    ``--lock`` (the transform of the training set in holds of 20,000 images).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import json
import os
import platform
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits


def _interleaved(fns, repeat, inner, contexts=None, pause=0.0):
    """Time several functions in alternation; per-function medians and the median
    ratio of each function to the first, per repetition (robust to a loaded machine).
    ``contexts[j]``, when given, makes the context each block of f_j's calls runs in;
    ``pause`` idle seconds precede each block (threads left spinning go idle)."""
    contexts = contexts or [None] * len(fns)

    def block(j, n):
        time.sleep(pause)
        with contexts[j]() if contexts[j] is not None else contextlib.nullcontext():
            t0 = time.perf_counter()
            for _ in range(n):
                fns[j]()
            return (time.perf_counter() - t0) / max(n, 1)

    for j in range(len(fns)):
        block(j, 1)
    times = np.zeros((repeat, len(fns)))
    for r in range(repeat):
        for j in range(len(fns)):
            times[r, j] = block(j, inner)
    return np.median(times, axis=0), np.median(times / times[:, :1], axis=0)


def plain_numpy_update(M, V, rank=2, delta=0.2):
    """The straightforward vectorised update: full sort, dense g, two products."""
    I = V @ M.T  # (B, K)
    order = np.argsort(I, axis=1)
    g = np.zeros_like(I)
    rows = np.arange(I.shape[0])
    g[rows, order[:, -1]] = 1.0
    g[rows, order[:, -rank]] = -delta
    dM = g.T @ V - (g * I).sum(axis=0)[:, None] * M
    return dM / max(np.abs(dM).max(), 1e-30)


def _compiled_step_fn(M, X, B, threads):
    """One compiled minibatch (numba): cut + normalise + Eq. (1)-(2), cycling over a chunk's patches."""
    from sklhebb.rules._krotov_numba import KrotovStepper

    images = X[:77].astype(np.float32)  # one fit chunk (2**16 patches)
    n_p = images.shape[0] * 29 * 29
    order = np.random.default_rng(1).permutation(n_p)
    st = KrotovStepper(M.copy(), batch_size=B, n_threads=threads, p=2, rank=2, delta=0.2, normalize=True, center=True, window=(4, 4))
    pos = [0]

    def step():
        i = pos[0] % (n_p // B)
        st.step_patches(images, order[i * B : (i + 1) * B], 0.01)
        pos[0] += 1

    return step


def speed(args):
    from sklhebb import KrotovPatchEncoder, _numba, rules
    from sklhebb._backend import resolve

    K, N, B = 400, 48, 1000
    rng = np.random.default_rng(0)
    M0 = rng.standard_normal((K, N)).astype(np.float32)
    V0 = rng.standard_normal((B, N)).astype(np.float32)
    V0 /= np.linalg.norm(V0, axis=1, keepdims=True)
    g0 = np.zeros((B, K), np.float32)
    g0[np.arange(B), rng.integers(0, K, B)] = 1
    repeat, inner = (5, 50) if args.quick else (11, 200)
    n_img = 100 if args.quick else 400
    X = (rng.random((n_img, 32, 32, 3)) * 255).astype(np.uint8)
    n_patches = n_img * 29 * 29
    variants = []
    for backend in args.backend:
        if backend == "numpy":
            if _numba.available():
                variants.append(("numpy", "compiled (numba)", True))
            variants.append(("numpy", "plain NumPy", False))
        else:
            if backend == "torch" and _numba.available():
                # torch CPU tensors: the fit runs the compiled kernel on their memory
                variants.append((backend, "compiled (numba)", True))
            variants.append((backend, "torch ops (the GPU path)", False))
    rows = []
    for threads in args.threads:
        for backend, path, compiled in variants:
            _numba.ENABLED = compiled
            bk = resolve(backend)
            M, V, g = (bk.asarray(a) for a in (M0, V0, g0))
            if backend == "torch":
                import torch

                torch.set_num_threads(threads)
            with threadpool_limits(limits=threads):
                floor = lambda: (V @ M.T, g.T @ V)  # noqa: E731 - the rule's two dense products
                fns = [floor, lambda: V @ M.T]
                if compiled:
                    # BLAS at `threads` for the floor, at one thread (numba's threads
                    # instead) for the compiled step, as in a fit
                    with _numba.kernel_threads() as n:
                        step = _compiled_step_fn(M0, X, B, n)
                    med, ratio = _interleaved(
                        [floor, lambda: V @ M.T, step], repeat, inner, contexts=[None, None, _numba.kernel_threads], pause=args.pause
                    )
                else:
                    fns.append(lambda: M + 0.01 * rules.krotov_update(M, V, rank=2, delta=0.2))
                    if backend == "numpy":
                        fns.append(lambda: plain_numpy_update(M0, V0))
                    med, ratio = _interleaved(fns, repeat, inner, pause=args.pause)
                t_two, t_one, t_rule = med[:3]
                r_rule = ratio[2]
                t_plain = med[3] if len(med) > 3 else np.nan
                # end to end: CIFAR-shaped images, patches cut on the fly. Each fit is
                # timed right after a block of floor calls and the ratio is per pair.
                # A short pause before each block lets the threads left spinning by
                # the block before (OpenBLAS's workers spin ~0.1 s after a call) go idle,
                # so that neither measurement runs beside the other's leftovers.
                enc = KrotovPatchEncoder(n_components=K, window=4, batch_size=B, max_iter=1, random_state=0, backend=backend)
                enc.fit(X[:10])
                fit_rates, fit_ratios = [], []
                for _ in range(3 if args.quick else 5):
                    time.sleep(args.pause)
                    t0 = time.perf_counter()
                    for _ in range(inner):
                        floor()
                    floor_rate = B * inner / (time.perf_counter() - t0)
                    time.sleep(args.pause)
                    t0 = time.perf_counter()
                    enc.fit(X)
                    fit_rates.append(n_patches / (time.perf_counter() - t0))
                    fit_ratios.append(fit_rates[-1] / floor_rate)
            rows.append(
                (
                    backend,
                    path,
                    threads,
                    t_one,
                    t_two,
                    t_rule,
                    r_rule,
                    t_plain,
                    np.median(fit_rates),
                    np.median(fit_ratios),
                    min(fit_ratios),
                    max(fit_ratios),
                )
            )
    _numba.ENABLED = True
    print(f"machine: {platform.processor() or platform.machine()}, K={K}, N={N}, batch={B}, float32, pause {args.pause} s")
    print("timings: medians over interleaved repetitions; ratio: median of per-repetition ratios")
    print(
        "| backend | step | threads | 1 product (ms) | 2 products = floor (ms) | our step (ms) | step / floor | "
        "floor / step | plain NumPy update (ms) | patches/s (step) | patches/s (fit, end to end) | "
        "fit / floor (issue 16: NumPy >= 1.2, torch >= 0.9), median [min, max] |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for backend, path, threads, t1, t2, tr, rr, tp, fit_rate, fr, fr_lo, fr_hi in rows:
        plain = f"{tp * 1e3:.3f}" if np.isfinite(tp) else "-"
        print(
            f"| {backend} | {path} | {threads} | {t1 * 1e3:.3f} | {t2 * 1e3:.3f} | {tr * 1e3:.3f} | {rr:.2f} | {1 / rr:.2f} | "
            f"{plain} | {B / tr / 1e6:.2f}M | {fit_rate / 1e6:.2f}M | {fr:.2f} [{fr_lo:.2f}, {fr_hi:.2f}] |"
        )


def accuracy(args):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklhebb import KrotovPatchEncoder
    from sklhebb.datasets import load_fashion_mnist

    Xtr, ytr = load_fashion_mnist(kind="train")
    Xte, yte = load_fashion_mnist(kind="t10k")
    ntr, nte = (2000, 1000) if args.quick else (args.n_train, args.n_test)
    Xtr, ytr, Xte, yte = Xtr[:ntr], ytr[:ntr], Xte[:nte], yte[:nte]
    base = dict(
        n_components=args.k,
        window=5,
        power=args.power,
        pool_size=8,
        pool_stride=4,
        batch_size=1000,
        max_iter=2 if args.quick else args.epochs,
        random_state=0,
    )
    settings = [
        ("paper NNL-CONV (uncentred), max-normalised update, delta=0.2", dict(delta=0.2, center=False)),
        ("centred patches (default), max-normalised, delta=0.2", dict(delta=0.2, center=True)),
        (
            "paper NNL-CONV (uncentred), literal Eq.(1) sum, lr=1e-3, delta=0.2",
            dict(delta=0.2, center=False, normalize_update=False, learning_rate=1e-3),
        ),
        ("centred, literal Eq.(1) sum, lr=1e-3, delta=0.2", dict(delta=0.2, center=True, normalize_update=False, learning_rate=1e-3)),
    ]
    if args.settings:
        settings = [settings[i] for i in args.settings]
    print(f"Fashion-MNIST train {ntr} / test {nte}; K={args.k}, W=5, power={args.power}, max-pool 8 stride 4; StandardScaler + LogisticRegression")
    print("| filters | accuracy | random-filter control (same architecture) | fit (s) | transform train+test (s) |")
    print("|---|---|---|---|---|")
    for label, kw in settings:
        enc = KrotovPatchEncoder(**base, **kw)
        t0 = time.perf_counter()
        enc.fit(Xtr)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        Ztr, Zte = enc.transform(Xtr), enc.transform(Xte)
        t_tr = time.perf_counter() - t0
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
        acc = clf.fit(Ztr, ytr).score(Zte, yte)
        enc.components_ = np.random.RandomState(1).standard_normal(enc.components_.shape).astype(np.float32)
        acc_rnd = clf.fit(enc.transform(Xtr), ytr).score(enc.transform(Xte), yte)
        print(f"| {label} | {acc:.4f} | {acc_rnd:.4f} | {t_fit:.1f} | {t_tr:.1f} |", flush=True)


def transform(args):
    """NNL-CONV transform of Fashion-MNIST images against its one product (patches x filters), same run."""
    from sklhebb import KrotovPatchEncoder
    from sklhebb._backend import resolve
    from sklhebb.datasets import load_fashion_mnist
    from sklhebb.encoders.krotov import _TRANSFORM_CHUNK_FLOATS
    from sklhebb.image import extract_patches, normalize_rows

    X = load_fashion_mnist(kind="train")[0][: args.n_train]
    enc = KrotovPatchEncoder(n_components=args.k, window=5, max_iter=1, random_state=0).fit(X[:1000])
    bk = resolve("numpy")
    F = normalize_rows(bk, enc.components_)
    # the product cut in the transform's chunks and in 2**15-position chunks (the former
    # default); the floor is the faster of the two in each pair
    step = enc._chunk(24 * 24 * args.k, _TRANSFORM_CHUNK_FLOATS)  # the transform's images per chunk
    products = []
    for size in sorted({step, 2**15 // (24 * 24)}):
        chunks = [extract_patches(bk, X[i : i + size, :, :, None].astype(np.float32), 5, 1).reshape(-1, 25) for i in range(0, len(X), size)]
        chunks = [normalize_rows(bk, P, center=True) for P in chunks]
        out = np.empty((chunks[0].shape[0], args.k), np.float32)
        products.append((chunks, out))

    def product():
        best = np.inf
        for chunks, out in products:
            t0 = time.perf_counter()
            for P in chunks:
                np.matmul(P, F.T, out=out[: P.shape[0]])
            best = min(best, time.perf_counter() - t0)
        return best

    rows = []
    for threads in args.threads:
        with threadpool_limits(limits=threads):
            enc.transform(X[:step])
            pairs = []
            for _ in range(3 if args.quick else 5):
                time.sleep(args.pause)
                t_prod = product()
                time.sleep(args.pause)
                t0 = time.perf_counter()
                enc.transform(X)
                pairs.append((t_prod, time.perf_counter() - t0))
        p = np.array(pairs)
        r = p[:, 1] / p[:, 0]
        rows.append((threads, np.median(p[:, 0]), np.median(p[:, 1]), np.median(r), r.min(), r.max()))
    print(f"Fashion-MNIST {len(X)} images, K={args.k}, W=5, pool 8/4 (defaults); medians of {len(pairs)} pairs")
    print("| threads | one product (s) | transform (s) | transform / product (goal <= 2), median [min, max] |")
    print("|---|---|---|---|")
    for threads, tp, tt, r, lo, hi in rows:
        print(f"| {threads} | {tp:.2f} | {tt:.2f} | {r:.2f} [{lo:.2f}, {hi:.2f}] |")


@contextlib.contextmanager
def _held(path):
    """Hold the benchmark lock ``path`` exclusively (None: no lock); yields the 1-minute load average."""
    if path is None:
        yield _load()
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield _load()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _load():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def _stack_features(layers, X, lock=None, hold=20_000):
    """Features of ``layers`` on ``X``: each layer on the image-layout maps of the one below, all layers' maps concatenated.

    Computed in holds of ``hold`` images (each its own hold of ``lock``); returns (F, seconds, loads).
    """
    F, seconds, loads = None, 0.0, []
    for start in range(0, len(X), hold):
        with _held(lock) as load:
            loads.append(load)
            t0 = time.perf_counter()
            parts, Z = [], X[start : start + hold]
            for layer in layers:
                Z = layer.transform(Z)
                parts.append(Z.reshape(len(Z), -1))
            seconds += time.perf_counter() - t0
        part = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        if F is None:
            F = np.empty((len(X), part.shape[1]), np.float32)
        F[start : start + len(part)] = part
    return F, seconds, loads


def _untrained(layers, seed=1, first=1):
    """The same fitted layers (same whitening), from layer ``first`` (1-based) up with standard-normal filters, never trained."""
    out = copy.deepcopy(layers)
    rng = np.random.RandomState(seed)
    for layer in out[first - 1 :]:
        layer.components_ = rng.standard_normal(layer.components_.shape).astype(layer.components_.dtype)
    return out


def _coates_ng_features(X_fit, sets, k, window=5, eps=0.1, n_patches=100_000, seed=0):
    """Coates & Ng (2011): k-means on centred, unit-norm, ZCA-whitened patches; triangle activation; quadrant sums."""
    from sklearn.cluster import MiniBatchKMeans

    from sklhebb._backend import resolve
    from sklhebb.image import extract_patches, normalize_rows, whiten_rows, zca_matrix

    bk = resolve("numpy")
    d = window * window

    def patches(chunk):
        return normalize_rows(bk, extract_patches(bk, chunk[..., None], window, 1), center=True)

    rng = np.random.RandomState(seed)
    per_image = (X_fit.shape[1] - window + 1) * (X_fit.shape[2] - window + 1)
    take = np.unique(rng.randint(0, len(X_fit) * per_image, n_patches))  # sampled patch indices
    P = []
    for i in range(0, len(X_fit), 1000):
        mine = take[(take >= i * per_image) & (take < (i + 1000) * per_image)] - i * per_image
        P.append(patches(X_fit[i : i + 1000]).reshape(-1, d)[mine])
    P = np.concatenate(P).astype(np.float64)
    whitening = zca_matrix(P.mean(axis=0), P.T @ P / len(P), eps)
    P = whiten_rows(bk, P, whitening, normalize=False)
    km = MiniBatchKMeans(k, batch_size=4096, n_init=3, random_state=seed).fit(P)
    C = km.cluster_centers_.astype(np.float32)
    cc = (C * C).sum(axis=1)
    whitening = tuple(a.astype(np.float32) for a in whitening)

    def encode(X):
        out = []
        for i in range(0, len(X), 500):
            Q = whiten_rows(bk, patches(X[i : i + 500]), whitening, normalize=False)
            z = np.sqrt(np.maximum((Q * Q).sum(-1, keepdims=True) - 2 * Q @ C.T + cc, 0))
            f = np.maximum(z.mean(axis=-1, keepdims=True) - z, 0)  # triangle activation
            h, w = f.shape[1] // 2, f.shape[2] // 2
            out.append(np.concatenate([f[:, r : r + h, c : c + w].sum(axis=(1, 2)) for r in (0, h) for c in (0, w)], axis=1))
        return np.concatenate(out)

    return [encode(X) for X in sets]


def _tuned_readout(F, y, Ft, yt, Cs, kind, val, max_iter, tune_rows=None):
    """StandardScaler + linear readout; C chosen on the last ``val`` of the training rows, refitted on all; test accuracy.

    Each C is fitted on the training rows before the validation rows (at most ``tune_rows`` of them, to save time).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    def model(C):
        if kind == "logreg":
            return LogisticRegression(C=C, max_iter=max_iter)
        return LinearSVC(C=C, max_iter=max_iter)

    scaler = StandardScaler(copy=False).fit(F)
    F, Ft = scaler.transform(F, copy=False), scaler.transform(Ft, copy=False)
    n_val = int(round(len(F) * val))
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for C in Cs:
            n_fit = len(F) - n_val if tune_rows is None else min(tune_rows, len(F) - n_val)
            scores[C] = model(C).fit(F[:n_fit], y[:n_fit]).score(F[-n_val:], y[-n_val:])
        best = max(Cs, key=lambda C: (scores[C], -C))
        return model(best).fit(F, y).score(Ft, yt), best, scores


def full(args):
    """Learned KrotovPatchEncoder features against the untrained control, Coates & Ng k-means and raw pixels, one run."""
    from sklhebb import KrotovPatchEncoder
    from sklhebb.datasets import load_fashion_mnist

    X, y = load_fashion_mnist(kind="train")
    Xt, yt = load_fashion_mnist(kind="t10k")
    X, y = X[: args.n_train].astype(np.float32) / 255, y[: args.n_train]
    Xt, yt = Xt[: args.n_test].astype(np.float32) / 255, yt[: args.n_test]
    kws = [json.loads(args.encoder)] + [json.loads(k) for k in (args.layer2, args.layer3) if k is not None]
    if args.layer3 is not None and args.layer2 is None:
        raise SystemExit("--layer3 needs --layer2: layer 3 reads layer 2's maps")
    if args.untrained_from > len(kws):
        raise SystemExit(f"--untrained-from {args.untrained_from}: the network has {len(kws)} layer(s)")
    if args.powers is not None and len(kws) > 1:
        raise SystemExit("--powers sweeps layer 1's power, which layer 2 is fitted on: use it without --layer2")
    for kw in kws[:-1]:
        kw["output_layout"] = "image"
    n_fit = min(args.fit_images or len(X), len(X))
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(
        f"Fashion-MNIST {len(X)} / {len(Xt)}; layers {kws}; seed {args.seed}; filters fitted on {n_fit} images; "
        f"OMP_NUM_THREADS={threads}; lock {args.lock}; readout StandardScaler + {args.readout}, "
        f"C in {args.C} on the last {args.val} of the training set (fitted on {args.tune_rows or 'all the other'} rows)",
        flush=True,
    )
    print("| features | dimensions | validation accuracy per C | C | test accuracy |")
    print("|---|---|---|---|---|", flush=True)

    def row(label, F, Ft):
        acc, C, scores = _tuned_readout(F, y, Ft, yt, args.C, args.readout, args.val, args.max_iter, args.tune_rows)
        vals = ", ".join(f"{c:g}: {s:.4f}" for c, s in scores.items())
        print(f"| {label} | {F.shape[1]} | {vals} | {C:g} | {acc:.4f} |", flush=True)

    if "learned" in args.rows or "untrained" in args.rows:
        # the untrained row alone keeps of the layers from --untrained-from up only their fitted whitening (fitted
        # before the first epoch): one epoch is enough; the learned layers below them are trained in full
        layers, fit_s, fit_cpu, fit_loads = [], 0.0, 0.0, []
        for i, kw in enumerate(kws, start=1):
            epochs = {"max_iter": 1} if "learned" not in args.rows and i >= args.untrained_from else {}
            with _held(args.lock) as load:
                fit_loads.append(load)
                t0, c0 = time.perf_counter(), time.process_time()
                below = X[:n_fit]
                for layer in layers:
                    below = layer.transform(below)
                layers.append(KrotovPatchEncoder(random_state=args.seed + i - 1, **{**kw, **epochs}).fit(below))
                fit_s, fit_cpu = fit_s + time.perf_counter() - t0, fit_cpu + time.process_time() - c0
    for power in args.powers or [None]:
        if power is not None:
            layers[0].power = power
        at = "" if power is None else f", power {power:g}"
        if "learned" in args.rows:
            c0 = time.process_time()
            F, tr_s, tr_loads = _stack_features(layers, X, args.lock)
            Ft, te_s, te_loads = _stack_features(layers, Xt, args.lock)
            tr_cpu = time.process_time() - c0
            loads = fit_loads + tr_loads + te_loads
            print(
                f"learned features{at}: fit {fit_s:.1f} s + transform {tr_s + te_s:.1f} s = {fit_s + tr_s + te_s:.1f} s wall "
                f"(process CPU {fit_cpu:.1f} + {tr_cpu:.1f} s; loads {min(loads):.1f}-{max(loads):.1f}); {F.shape[1]} features",
                flush=True,
            )
            if args.time_only:
                return
            row(f"learned{at}", F, Ft)
            del F, Ft
        if "untrained" in args.rows:
            control = _untrained(layers, seed=args.seed + 1, first=args.untrained_from)
            F, _, _ = _stack_features(control, X)
            Ft, _, _ = _stack_features(control, Xt)
            row(f"untrained (standard-normal filters from layer {args.untrained_from} up{at})", F, Ft)
            del F, Ft
    if "kmeans" in args.rows:
        t0 = time.perf_counter()
        F, Ft = _coates_ng_features(X[:n_fit], [X, Xt], args.kmeans_k)
        row(f"Coates & Ng k-means K={args.kmeans_k} ({time.perf_counter() - t0:.0f} s, not under the lock)", F, Ft)
    if "raw" in args.rows:
        row("raw pixels", X.reshape(len(X), -1), Xt.reshape(len(Xt), -1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["speed", "accuracy", "transform", "full"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pause", type=float, default=0.2, help="idle seconds before each floor block and each fit (speed)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--backend", nargs="+", default=["numpy", "torch"])
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--power", type=float, default=1)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument(
        "--settings", type=int, nargs="+", help="indices of the settings to run (0 paper, 1 centred, 2 literal sum, 3 centred literal sum)"
    )
    ap.add_argument(
        "--encoder", default='{"n_components": 400, "window": 5, "pool_size": 6, "pool_stride": 6}', help="full: layer 1's parameters (JSON)"
    )
    ap.add_argument("--layer2", default=None, help="full: a second layer's parameters (JSON); its features are concatenated with layer 1's")
    ap.add_argument("--layer3", default=None, help="full: a third layer on layer 2's maps (JSON); its features are concatenated too")
    ap.add_argument("--seed", type=int, default=0, help="full: layer i is seeded seed + i - 1, the untrained control's filters seed + 1")
    ap.add_argument(
        "--powers", type=float, nargs="+", default=None, help="full: one learned / untrained pair per power of layer 1 (one layer), same filters"
    )
    ap.add_argument("--fit-images", type=int, default=None, help="full: images the filters are fitted on (default all)")
    ap.add_argument("--readout", choices=["logreg", "svc"], default="logreg")
    ap.add_argument("--C", type=float, nargs="+", default=[0.001, 0.01, 0.1])
    ap.add_argument("--val", type=float, default=0.1, help="full: share of the training images the readout's C is chosen on")
    ap.add_argument(
        "--tune-rows", type=int, default=None, help="full: training rows each C is fitted on while tuning (default all but the validation rows)"
    )
    ap.add_argument("--max-iter", type=int, default=500, help="full: the readout's max_iter")
    ap.add_argument("--kmeans-k", type=int, default=400, help="full: k-means centroids of the Coates & Ng baseline")
    ap.add_argument("--time-only", action="store_true", help="full: stop after timing the learned features")
    ap.add_argument(
        "--rows",
        nargs="+",
        choices=["learned", "untrained", "kmeans", "raw"],
        default=["learned", "untrained", "kmeans", "raw"],
        help="full: the rows to run",
    )
    ap.add_argument(
        "--untrained-from",
        type=int,
        choices=[1, 2, 3],
        default=1,
        help="full: the untrained control's random filters from this layer up (2: layer 2 untrained on the learned layer 1)",
    )
    ap.add_argument("--lock", default=None, help="full: the benchmark lock held while the learned features are fitted and computed")
    ap.add_argument(
        "--no-hugepages",
        action="store_true",
        help="NumPy allocates without madvise(MADV_HUGEPAGE): where the kernel compacts memory on a huge-page fault "
        "(transparent_hugepage/defrag = madvise), a large array's first touch costs up to 5x more",
    )
    args = ap.parse_args()
    if args.no_hugepages:
        from numpy._core.multiarray import _set_madvise_hugepage

        _set_madvise_hugepage(False)
    {"speed": speed, "accuracy": accuracy, "transform": transform, "full": full}[args.what](args)


if __name__ == "__main__":
    main()
