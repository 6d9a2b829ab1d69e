"""Fit times on a busy machine: default threads against one thread, beside a competing process.

    python benchmarks/bench_contention.py [--estimators NAME ...] [--repeat 5] [--phases busy idle] [--grid]
                                          [--partial-fit ROWS]

Issue 16's protocol. The benchmark starts its own competitor: one CPU-bound
process (a NumPy matmul loop, ``OMP_NUM_THREADS=1``) pinned to the last core
with ``os.sched_setaffinity``. Under that competition ("busy"), and then
without it ("idle"), each estimator's fit with default settings is timed with
the default threads against the same fit restricted to one thread
(``threadpoolctl.threadpool_limits(1)`` and ``torch.set_num_threads(1)``),
alternating the two, medians of ``--repeat`` pairs. Estimators:

* ``krotov`` / ``krotov-torch``: KrotovPatchEncoder(n_components=16, window=5,
  pool_size=4, pool_stride=4, max_iter=1) on 1,000 Fashion-MNIST images
  (NumPy backend / torch CPU backend);
* ``nsm``, ``competitive``, ``activation``, ``urfb``: NSMEncoder,
  LocalCompetitiveEncoder, ActivationLearningClassifier and URFBClassifier
  with their defaults on scikit-learn's digits.

``--partial-fit ROWS``: instead of one ``fit``, a loop of ``partial_fit``
calls on consecutive ``ROWS``-row slices of the same data (the time of the
whole loop), for estimators whose calls are short enough that per-call costs
(the free-core reading, the thread pools' start-up) show.

``--grid``: GridSearchCV(n_jobs=2) against n_jobs=1 over a small sklhebb
pipeline (KrotovPatchEncoder + LogisticRegression on digits), no competitor.
The load average is printed beside every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

_COMPETITOR = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})
parent = os.getppid()
import numpy as np
a = np.random.default_rng(0).standard_normal((300, 300))
while os.getppid() == parent:  # ends with the benchmark, however that ends
    a = np.tanh(a @ a)
"""


@contextlib.contextmanager
def competitor(active):
    """One CPU-bound NumPy process pinned to the last core (nothing when not ``active``)."""
    if not active:
        yield None
        return
    core = max(os.sched_getaffinity(0))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", _COMPETITOR, str(core)], env=env)
    try:
        time.sleep(1.0)  # imported and spinning
        yield core
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def one_thread():
    """Every thread pool at one thread: BLAS/OpenMP (threadpoolctl) and torch's intra-op pool."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=1):
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)


def load():
    from sklearn.datasets import load_digits

    from sklhebb.datasets import load_fashion_mnist

    digits = load_digits(return_X_y=True)
    fm = load_fashion_mnist(kind="train")[0][:1000]
    return digits, fm


def estimators(names, digits, fm):
    import sklhebb

    Xd, yd = digits
    krotov = dict(n_components=16, window=5, pool_size=4, pool_stride=4, max_iter=1, random_state=0)
    table = {
        "krotov": (lambda: sklhebb.KrotovPatchEncoder(**krotov), fm, None),
        "krotov-torch": (lambda: sklhebb.KrotovPatchEncoder(**krotov, backend="torch"), fm, None),
        "nsm": (lambda: sklhebb.NSMEncoder(random_state=0), Xd, None),
        "competitive": (lambda: sklhebb.LocalCompetitiveEncoder(random_state=0), Xd, None),
        "activation": (lambda: sklhebb.ActivationLearningClassifier(random_state=0), Xd, yd),
        "urfb": (lambda: sklhebb.URFBClassifier(random_state=0), Xd, yd),
    }
    return [(n, *table[n]) for n in names]


def time_fit(make, X, y, ctx, rows=None):
    """Seconds of ``make().fit(X, y)`` under ``ctx``; with ``rows``, of partial_fit over ``rows``-row slices."""
    est = make()
    with ctx(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        if rows is None:
            est.fit(X, y) if y is not None else est.fit(X)
        else:
            kw = {} if y is None else {"classes": np.unique(y)}
            for i in range(0, X.shape[0], rows):
                est.partial_fit(X[i : i + rows], *(() if y is None else (y[i : i + rows],)), **kw)
        return time.perf_counter() - t0


def load_avg():
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def run_fits(args, digits, fm):
    rows = args.partial_fit
    what = "fit" if rows is None else f"partial_fit loop ({rows} rows a call)"
    print(f"| estimator, {what} | machine | default (s) | one thread (s) | default / one thread, median [min, max] | load before | load after |")
    print("|---|---|---|---|---|---|---|")
    for name, make, X, y in estimators(args.estimators, digits, fm):
        time_fit(make, X, y, contextlib.nullcontext, rows)  # compile / load kernels, warm caches
        for phase in args.phases:
            with competitor(phase == "busy"):
                before = load_avg()
                t_def, t_one = [], []
                for _ in range(args.repeat):
                    t_def.append(time_fit(make, X, y, contextlib.nullcontext, rows))
                    t_one.append(time_fit(make, X, y, one_thread, rows))
                r = np.array(t_def) / np.array(t_one)
                print(
                    f"| {name} | {phase} | {np.median(t_def):.3f} | {np.median(t_one):.3f} | "
                    f"{np.median(r):.2f} [{r.min():.2f}, {r.max():.2f}] | {before} | {load_avg()} |",
                    flush=True,
                )


def run_grid(args, digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    import sklhebb

    Xd, yd = digits
    pipe = make_pipeline(
        sklhebb.KrotovPatchEncoder(n_components=16, window=3, pool_size=3, pool_stride=3, max_iter=2, random_state=0),
        LogisticRegression(max_iter=300),
    )
    grid = {"krotovpatchencoder__n_components": [8, 16], "krotovpatchencoder__delta": [0.1, 0.2]}
    print("| GridSearchCV (4 settings x 3 folds) | time (s), median | load before | load after |")
    print("|---|---|---|---|")
    for _ in range(1):  # warm up: loky's workers, numba's cache
        GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(Xd, yd)
    times = {1: [], 2: []}
    before = load_avg()
    for _ in range(args.repeat):
        for n_jobs in (1, 2):
            t0 = time.perf_counter()
            GridSearchCV(pipe, grid, cv=3, n_jobs=n_jobs).fit(Xd, yd)
            times[n_jobs].append(time.perf_counter() - t0)
    for n_jobs in (1, 2):
        print(f"| n_jobs={n_jobs} | {np.median(times[n_jobs]):.2f} | {before} | {load_avg()} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--estimators", nargs="+", default=["krotov", "krotov-torch", "nsm", "competitive", "activation", "urfb"])
    ap.add_argument("--phases", nargs="+", default=["busy", "idle"], choices=["busy", "idle"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--partial-fit", type=int, default=None, metavar="ROWS", help="time a partial_fit loop of ROWS-row calls instead of a fit")
    ap.add_argument("--grid", action="store_true", help="also GridSearchCV(n_jobs=2) against n_jobs=1")
    ap.add_argument("--no-fits", action="store_true", help="only the GridSearchCV part")
    args = ap.parse_args()
    if args.partial_fit is not None and args.partial_fit < 1:
        ap.error(f"--partial-fit takes the rows of one call, at least 1; got {args.partial_fit}")
    digits, fm = load()
    print(f"cores {sorted(os.sched_getaffinity(0))}; competitor pinned to core {max(os.sched_getaffinity(0))} (busy phase)")
    if not args.no_fits:
        run_fits(args, digits, fm)
    if args.grid:
        run_grid(args, digits)


if __name__ == "__main__":
    main()
