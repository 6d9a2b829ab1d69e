"""KrotovPatchEncoder benchmarks: throughput against the matrix-product floor, and accuracy.

    python benchmarks/bench_krotov.py speed [--quick] [--threads 1 2] [--backend numpy torch] [--pause 0.2]
    python benchmarks/bench_krotov.py accuracy [--quick] [--n-train N] [--n-test N]
    python benchmarks/bench_krotov.py transform [--quick] [--n-train 10000] [--k 400] [--threads 1 2]

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
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time

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
            variants.append((backend, "-", False))
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
        "fit / floor (goal >= 0.8), median [min, max] |"
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
    from sklhebb.image import extract_patches, normalize_rows

    X = load_fashion_mnist(kind="train")[0][: args.n_train]
    enc = KrotovPatchEncoder(n_components=args.k, window=5, max_iter=1, random_state=0).fit(X[:1000])
    bk = resolve("numpy")
    F = normalize_rows(bk, enc.components_)
    step = enc._chunk(24 * 24, 2**15)  # the transform's images per chunk
    chunks = [extract_patches(bk, X[i : i + step, :, :, None].astype(np.float32), 5, 1).reshape(-1, 25) for i in range(0, len(X), step)]
    chunks = [normalize_rows(bk, P, center=True) for P in chunks]
    out = np.empty((chunks[0].shape[0], args.k), np.float32)

    def product():
        for P in chunks:
            np.matmul(P, F.T, out=out[: P.shape[0]])

    rows = []
    for threads in args.threads:
        with threadpool_limits(limits=threads):
            enc.transform(X[:step])
            pairs = []
            for _ in range(3 if args.quick else 5):
                time.sleep(args.pause)
                t0 = time.perf_counter()
                product()
                t_prod = time.perf_counter() - t0
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["speed", "accuracy", "transform"])
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
    args = ap.parse_args()
    {"speed": speed, "accuracy": accuracy, "transform": transform}[args.what](args)


if __name__ == "__main__":
    main()
