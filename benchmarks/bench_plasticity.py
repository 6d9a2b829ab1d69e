"""Side by side with Nico-Curti/plasticity's ``Hopfield`` model (the Krotov & Hopfield rule in C++/Eigen).

    python benchmarks/bench_plasticity.py speed  --peer-python PEER/venv/bin/python [--threads 1 2] [--repeat 5]
                                                 [--peer-env NAME=VALUE ...]
    python benchmarks/bench_plasticity.py speed  --peer-python PEER/venv/bin/python --peer-impl numpy --threads 1
    python benchmarks/bench_plasticity.py sanity --peer-python PEER/venv/bin/python [--n-readout 10000]

plasticity is not a dependency of sklhebb: build it outside this repository
(benchmarks/RESULTS.md, "Side by side with Nico-Curti/plasticity", gives the
commands) and pass the interpreter of the virtualenv that imports it. Without
it the benchmark says what to do and exits with status 2.

Both learn 100 units from the same float32 rows, 70,000 Fashion-MNIST images
(train + t10k) flattened and divided by their L2 norm, 10 epochs of
minibatches of 1,000, the rule of Krotov & Hopfield (PNAS 2019) with p = 2,
rank k = 2, delta = 0.4, each minibatch change divided by its largest absolute
entry, learning rate 0.02 held constant, N(0, 1) initial weights:

* plasticity: its Cython extension ``_Hopfield`` (its sklearn-style
  ``plasticity.cython.Hopfield`` cannot be constructed at the measured commit:
  it passes 13 arguments to the 11 of ``_Hopfield``), driven as that class's
  ``fit`` would: ``check_array``, a float32 ravel, the C++ fit, the weights
  read back (column-major: its wrapper reads them as row-major). ``--peer-impl numpy``: its pure-NumPy ``plasticity.model.Hopfield``
  instead (float64 weights), the model its documentation times at 14.4 s.
  SGD with ``decay=0`` (the C++ optimizer's default 1e-4 shrinks the rate
  every step), and ``epochs_for_convergence`` = the epochs, so that its
  convergence test never ends a fit early.
* sklhebb: ``KrotovPatchEncoder(window=None, image_shape=None, center=False,
  schedule="constant")``, the fully connected network on flat rows; its own
  normalisation of each row to a unit vector is then a no-op up to rounding.

speed
    Alternating fits (the peer first in even pairs, sklhebb first in odd ones)
    after one warm-up epoch each; per thread count, the medians of ``--repeat``
    pairs and the median [min, max] of the per-pair ratio peer time / sklhebb
    time. Threads: ``OMP_NUM_THREADS`` when the peer's worker process starts
    (Eigen's products run on OpenMP's threads; ``--peer-env`` adds more, e.g.
    ``OMP_WAIT_POLICY=PASSIVE``), ``threadpoolctl`` for sklhebb,
    whose fit also caps its threads at the cores other processes leave free
    (``sklhebb/_threads.py``): the free cores before each fit and each side's
    CPU time / wall time are printed. Run it under
    ``flock -x /tmp/sklhebb-bench.lock``.
sanity
    First the peer's rule: one minibatch of 1,000 rows from its own initial
    weights (read back from a fit at learning rate 0) against the rule written
    out in float64 (argsort ranking), and how many epochs a C++ fit at its
    default ``epochs_for_convergence = 1`` runs. Then one fit each (1 thread) and the
    same readout of both sets of weights: features ReLU(x . m / |m|) of every
    unit, StandardScaler + LogisticRegression trained on the first
    ``--n-readout`` training images and scored on the 10,000 test images
    (which both fits saw, unlabelled), beside the untrained control (N(0, 1)
    weights, same features) and raw pixels; and the fraction of units whose
    norm is within 0.1 of 1 (the rule's fixed point at p = 2).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

# run by the peer's interpreter: loads the rows once, then answers one "@@ ..." line per request:
# "fit SEED EPOCHS OUT" times a fit ("@@ wall cpu"; OUT "-" keeps the weights, a path saves them as .npy),
# "rule SEED 1 OUT" saves its start and its first minibatch step, "early SEED EPOCHS -" tests its convergence stop
_PEER_WORKER = r"""
import os, resource, sys, time
import numpy as np
import plasticity
# its extensions import each other by their bare names
sys.path.insert(0, os.path.join(os.path.dirname(plasticity.__file__), "lib"))

SGD, NORMAL, LINEAR = 7, 3, 0  # enums of its optimizer.h, weights.h (its Hopfield ignores the activation)
impl, data, K, batch, p, k, delta, lr = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:9])
K, batch, k = int(K), int(batch), int(k)


def fit_cython(X, seed, epochs, lr=lr, stable_epochs=None):
    from hopfield import _Hopfield
    from update_args import _update_args
    from weights_initialization import _weights_initialization
    from sklearn.utils import check_array

    opt = _update_args(SGD, lr, 0.9, 0.0, 0.9, 0.999, 0.0)
    init = _weights_initialization(NORMAL, 0.0, 1.0, 1.0, seed)
    stable = epochs if stable_epochs is None else stable_epochs  # its epochs_for_convergence
    model = _Hopfield(K, batch, LINEAR, opt, init, stable, 0.01, 0.0, delta, p, k)
    rows = np.ascontiguousarray(check_array(X).ravel().astype("float32"))
    model.fit(rows, X.shape[0], X.shape[1], epochs, seed)
    W, shape = model.get_weights()  # Eigen's column-major buffer, with the shape (outputs, features)
    return np.asarray(W, dtype=np.float32).reshape(shape[::-1]).T


def fit_numpy(X, seed, epochs, lr=lr):
    from plasticity.model import Hopfield
    from plasticity.model.optimizer import SGD as NumpySGD

    model = Hopfield(outputs=K, num_epochs=epochs, batch_size=batch, delta=delta, optimizer=NumpySGD(lr=lr),
                     p=p, k=k, epochs_for_convergence=epochs, random_state=seed, verbose=False)
    return model.fit(X).weights


fit = {"cython": fit_cython, "numpy": fit_numpy}[impl]
X = np.load(data)
print("@@ plasticity", plasticity.__version__, impl, os.path.dirname(plasticity.__file__), flush=True)
for line in sys.stdin:
    what, seed, epochs, out = line.split()
    if what == "rule":  # one minibatch from the same start: the start (learning rate 0), then the step
        np.save(out, np.stack([fit(X[:batch], int(seed), 1, rate) for rate in (0.0, lr)]))
        print("@@ 0 0", flush=True)
        continue
    if what == "early":  # a fit at its default epochs_for_convergence = 1 against fits of 1, 2, 3 epochs
        W = fit_cython(X[:10 * batch], int(seed), int(epochs), stable_epochs=1)
        same = [np.array_equal(W, fit_cython(X[:10 * batch], int(seed), e)) for e in (1, 2, 3)]
        print("@@", *map(int, same), flush=True)
        continue
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    W = fit(X, int(seed), int(epochs))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    if out != "-":
        np.save(out, W)
    print("@@", wall, cpu, flush=True)
"""

HOW_TO_BUILD = """\
plasticity was not found with {python!r}{why}.
Build it outside this repository and pass its interpreter with --peer-python, for example:
  apt-get install -y libeigen3-dev cmake g++
  python3 -m venv PEER/venv && PEER/venv/bin/pip install numpy 'cython<3' scikit-learn tqdm matplotlib
  (sources of github.com/Nico-Curti/plasticity in PEER/plasticity)
  cmake -S PEER/plasticity -B PEER/build -DCMAKE_BUILD_TYPE=Release -DPYWRAP=ON -DOMP=ON -DVERBOSE=OFF \\
        -DBUILD_TEST=OFF -DVIEW=OFF -DPython3_EXECUTABLE=PEER/venv/bin/python -DPYTHON_EXECUTABLE=PEER/venv/bin/python
        (and -DPYTHON_INCLUDE_DIR, -DPYTHON_LIBRARY of that interpreter where the system has another Python)
  make -C PEER/build hopfield update_args weights_initialization
  cp PEER/build/plasticity/source/*.so PEER/plasticity/plasticity/lib/
  echo PEER/plasticity > "$(PEER/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/plasticity.pth"
(benchmarks/RESULTS.md, "Side by side with Nico-Curti/plasticity", has the details.)"""

CONFIG = {"K": 100, "batch": 1000, "p": 2.0, "k": 2, "delta": 0.4, "lr": 0.02}


def load_rows(n):
    """The first ``n`` of Fashion-MNIST's 70,000 images (train, then t10k): flat float32 rows of unit L2 norm."""
    from sklhebb.datasets import load_fashion_mnist

    Xtr, ytr = load_fashion_mnist(kind="train")
    Xte, yte = load_fashion_mnist(kind="t10k")
    X = np.concatenate([Xtr, Xte])[:n].reshape(-1, 28 * 28).astype(np.float32) / 255.0
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, np.concatenate([ytr, yte])[:n], len(Xtr)


class Peer:
    """plasticity's Hopfield fits in a worker process on the peer's interpreter, ``threads`` OpenMP threads."""

    def __init__(self, python, data_path, threads, extra_env=(), impl="cython"):
        # the C++ fit runs on OpenMP's threads; the NumPy one on BLAS's
        blas = str(threads) if impl == "numpy" else "1"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=blas)
        env.update(item.split("=", 1) for item in extra_env)
        cfg = [str(CONFIG[key]) for key in ("K", "batch", "p", "k", "delta", "lr")]
        self.proc = subprocess.Popen(
            [python, "-c", _PEER_WORKER, impl, str(data_path), *cfg],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),  # never this repository (its sklhebb/ on the path)
        )
        self.version = self._answer()

    def _answer(self):
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                return line[3:].split()
        raise RuntimeError(f"the peer's worker ended (exit status {self.proc.wait()}); its error is above")

    def fit(self, seed, epochs, out="-", what="fit"):
        self.proc.stdin.write(f"{what} {seed} {epochs} {out}\n")
        self.proc.stdin.flush()
        return tuple(map(float, self._answer()))

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def check_peer(python):
    """Exit with the build instructions unless ``python`` imports plasticity's Hopfield extension."""
    why = ""
    if python is None:
        why = " (no --peer-python given)"
    else:
        probe = "import os, sys, plasticity; sys.path.insert(0, os.path.join(os.path.dirname(plasticity.__file__), 'lib')); import hopfield"
        try:
            res = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=tempfile.gettempdir())
            if res.returncode != 0:
                why = ": " + (res.stderr.strip().splitlines() or ["import failed"])[-1]
        except OSError as exc:
            why = f": {exc}"
    if why:
        print(HOW_TO_BUILD.format(python=python, why=why), file=sys.stderr)
        sys.exit(2)


def sklhebb_encoder(seed, epochs):
    from sklhebb import KrotovPatchEncoder

    return KrotovPatchEncoder(
        CONFIG["K"],
        window=None,
        image_shape=None,
        center=False,
        p=CONFIG["p"],
        rank=CONFIG["k"],
        delta=CONFIG["delta"],
        learning_rate=CONFIG["lr"],
        schedule="constant",
        max_iter=epochs,
        batch_size=CONFIG["batch"],
        random_state=seed,
    )


def fit_sklhebb(X, seed, epochs, threads):
    """(wall, cpu, free cores before, encoder) of one fit inside ``threadpool_limits(threads)``."""
    from sklhebb._threads import free_cores

    free = free_cores()
    enc = sklhebb_encoder(seed, epochs)
    with threadpool_limits(limits=threads, user_api="blas"):
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        enc.fit(X)
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return wall, cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, free, enc


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _med(a):
    return f"{np.median(a):.3f} [{np.min(a):.3f}, {np.max(a):.3f}]"


def speed(args, X, data_path):
    print(f"rows {X.shape}, config {CONFIG}, {args.epochs} epochs, {args.repeat} pairs, {platform.processor() or platform.machine()}")
    for threads in args.threads:
        peer = Peer(args.peer_python, data_path, threads, args.peer_env, args.peer_impl)
        print(f"\nthreads {threads}: peer {' '.join(peer.version)} {' '.join(args.peer_env)}; load before {loadavg()}")
        peer.fit(0, 1)  # warm-up: page faults, OpenMP's pool
        fit_sklhebb(X, 0, 1, threads)  # warm-up: numba's compiled step (or its cache)
        rows = []
        for r in range(args.repeat):
            order = ("peer", "sklhebb") if r % 2 == 0 else ("sklhebb", "peer")
            got = {}
            for who in order:
                if who == "peer":
                    got[who] = peer.fit(r, args.epochs)
                else:
                    got[who] = fit_sklhebb(X, r, args.epochs, threads)[:3]
            (pw, pc), (sw, sc, free) = got["peer"], got["sklhebb"]
            rows.append((pw, pc, sw, sc, free))
            print(
                f"  pair {r}: peer {pw:.3f} s (cpu/wall {pc / pw:.2f}), "
                f"sklhebb {sw:.3f} s (cpu/wall {sc / sw:.2f}, free cores {free}), ratio {pw / sw:.2f}"
            )
        peer.close()
        a = np.array(rows)
        print(f"threads {threads}: peer {_med(a[:, 0])} s, sklhebb {_med(a[:, 2])} s, peer / sklhebb {_med(a[:, 0] / a[:, 2])}")
        free = sorted({int(f) for f in a[:, 4]})
        print(f"  cpu/wall: peer {_med(a[:, 1] / a[:, 0])}, sklhebb {_med(a[:, 3] / a[:, 2])}; free cores before sklhebb's fits {free}")
        print(f"  load after {loadavg()}")


def krotov_step(M, V):
    """The normalised change of Krotov & Hopfield's rule for one minibatch, written out (argsort ranking, dense g)."""
    I = V @ M.T
    order = np.argsort(I, axis=1)
    g = np.zeros_like(I)
    rows = np.arange(len(V))
    g[rows, order[:, -1]] = 1.0
    g[rows, order[:, -CONFIG["k"]]] = -CONFIG["delta"]
    dM = g.T @ V - (g * I).sum(axis=0)[:, None] * M
    return dM / np.abs(dM).max()


def _readout(F, y, n_train, n_readout):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with threadpool_limits(limits=1):
        model.fit(F[:n_readout], y[:n_readout])
        return model.score(F[n_train:], y[n_train:])


def sanity(args, X, y, n_train, data_path, out_dir):
    if X.shape[0] <= n_train:
        sys.exit(f"sanity needs the test images: --n must exceed {n_train}")
    peer = Peer(args.peer_python, data_path, 1, impl=args.peer_impl)
    rule_path = Path(out_dir) / "peer_rule.npy"
    peer.fit(0, 1, str(rule_path), what="rule")
    W0, W1 = np.load(rule_path).astype(np.float64)
    step = W0 + CONFIG["lr"] * krotov_step(W0, X[: CONFIG["batch"]].astype(np.float64))
    print(f"the peer's rule: one minibatch from its own start against Eq. (1)-(2) in float64: max |difference| {np.abs(W1 - step).max():.2e}")
    if args.peer_impl == "cython":
        same = peer.fit(0, args.epochs, what="early")
        alike = [e for e, flag in zip((1, 2, 3), same) if flag] or "none of 1, 2, 3"
        print(f"its default epochs_for_convergence = 1: a {args.epochs}-epoch fit (10,000 rows) has the weights of {alike} epochs")
    weights_path = Path(out_dir) / "peer_weights.npy"
    wall, _ = peer.fit(0, args.epochs, str(weights_path))
    peer.close()
    W_peer = np.load(weights_path)
    s_wall, _, _, enc = fit_sklhebb(X, 0, args.epochs, 1)
    W_ours = enc.components_
    W_random = np.random.default_rng(0).standard_normal(W_ours.shape).astype(np.float32)
    print(f"fits (1 thread): peer {wall:.2f} s, sklhebb {s_wall:.2f} s; load {loadavg()}")
    print(f"readout: StandardScaler + LogisticRegression on {args.n_readout} training images, scored on {X.shape[0] - n_train} test images")
    for name, W in (("plasticity", W_peer), ("sklhebb", W_ours), ("untrained N(0, 1)", W_random)):
        norms = np.linalg.norm(W, axis=1)
        F = np.maximum(X @ (W / norms[:, None]).T, 0.0)
        acc = _readout(F, y, n_train, args.n_readout)
        near = np.mean(np.abs(norms - 1.0) < 0.1)
        spread = f"{np.median(norms):.3f} [{norms.min():.3f}, {norms.max():.3f}]"
        print(f"  {name:18s} accuracy {acc:.4f}; units with |norm - 1| < 0.1: {near:.2f}; norms median {spread}")
    print(f"  {'raw pixels':18s} accuracy {_readout(X, y, n_train, args.n_readout):.4f}")
    print(f"load after {loadavg()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("speed", "sanity"))
    ap.add_argument("--peer-python", help="interpreter of the virtualenv in which plasticity is built")
    ap.add_argument("--peer-env", action="append", default=[], metavar="NAME=VALUE", help="more environment for the peer's worker")
    ap.add_argument("--peer-impl", choices=("cython", "numpy"), default="cython", help="its C++ fit, or its pure-NumPy model")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=5, help="pairs of fits per thread count")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--n", type=int, default=70000, help="images (train, then t10k)")
    ap.add_argument("--n-readout", type=int, default=10000, help="training images of the sanity readout")
    args = ap.parse_args()
    bad = [item for item in args.peer_env if "=" not in item]
    if bad:
        ap.error(f"--peer-env takes NAME=VALUE; got {bad}")
    check_peer(args.peer_python)
    X, y, n_train = load_rows(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "rows.npy"
        np.save(data_path, X)
        if args.mode == "speed":
            speed(args, X, data_path)
        else:
            sanity(args, X, y, n_train, data_path, tmp)


if __name__ == "__main__":
    main()
