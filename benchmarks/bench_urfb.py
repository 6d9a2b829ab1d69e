"""URFBClassifier benchmarks (Amit 2019, "Deep learning with asymmetric connections
and Hebbian updates").

    python benchmarks/bench_urfb.py fashion [--quick] [--arch simpnet] [--n-train N] [--n-test N] [--epochs E]
    python benchmarks/bench_urfb.py linear  [--quick] [--runs 3] [--iters 1000]
    python benchmarks/bench_urfb.py timing  [--quick] [--arch simpnet] [--backend torch numpy] [--per-step | --per-layer]
    python benchmarks/bench_urfb.py grid    [--data digits fmnist mnist] [--hidden 500 256,256] [--batch auto 50] [--ramp 0.5 1]
                                            [--lr 0.1] [--epochs 50] [--schedule linear constant] [--loss softmax hinge] [--seeds 0 1]

fashion
    Fashion-MNIST (local Debian package; pixels / 255) with one architecture under
    feedback = bp, urfb and frfb (hinge loss, ramp 0.5, SGD 0.1, batch 500, same
    seed). Prints test error after every epoch (``partial_fit`` one epoch at a time
    on the shuffled training subset), the final W-R alignment per layer, and time.
linear
    The linear-network simulation of Section 5.1: X = I_40, T = W1* W2* W3* with
    N(0, 2^2) entries, R(0) and the BP start N(0, 0.1^2) (dimensions 40 -> 100 -> 100 -> 10), error
    e = |T - W3 W2 W1|^2, the ODEs of Eq. (9) integrated by Euler steps: BP from
    a random start, and URFB with W(0) = 0, random R(0), dR = eps dW^T for
    eps = 0 (FRFB), .25, .5, 1. Prints log10 error at checkpoints.
timing
    Epoch time of the classifier (feedback="bp" and "urfb") against plain
    torch-autograd back-propagation of the same network (F.conv2d, F.max_pool2d
    on zero-padded maps, clamp, inverted dropout, the hinge loss, SGD) on the
    same backend, alternated in one run; the best of ``--repeat`` epochs each.
    ``--per-step``: one batch of the bare Network (forward, feedback, update)
    against one autograd step, best of ``--repeat``. ``--per-layer``: where one
    batch's time goes, per layer and step (forward, error, increment, propagate)
    for the Network on each ``--backend``, and per layer (forward) plus the
    backward pass for autograd; medians of ``--repeat`` batches.
grid
    The defaults' grid (issue 15): URFBClassifier with every combination of the
    options given, on bench_defaults' data sets and splits, the data fed as it
    ships (input_scale="auto" scales it). Prints test accuracy and fit time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def _load(n_train, n_test, seed=0):
    from sklhebb.datasets import load_fashion_mnist

    X, y = load_fashion_mnist()
    Xt, yt = load_fashion_mnist(kind="t10k")
    rng = np.random.RandomState(seed)
    tr = rng.permutation(len(X))[:n_train]
    te = rng.permutation(len(Xt))[:n_test]
    return (X[tr] / 255.0).astype(np.float32), y[tr], (Xt[te] / 255.0).astype(np.float32), yt[te]


# ----------------------------------------------------------------- fashion
def fashion(args):
    from sklhebb.classifiers.urfb import URFBClassifier

    Xtr, ytr, Xte, yte = _load(args.n_train, args.n_test)
    print(
        f"# Fashion-MNIST, {len(Xtr)} train / {len(Xte)} test, arch={args.arch}, epochs={args.epochs}, "
        f"lr={args.lr}, batch={args.batch}, ramp_scale={args.ramp}, backend={args.backend}, machine: {platform.processor() or platform.machine()}"
    )
    classes = np.unique(ytr)
    for fb in args.feedback:
        clf = URFBClassifier(
            args.arch,
            feedback=fb,
            loss="hinge",
            learning_rate=args.lr,
            batch_size=args.batch,
            ramp_scale=args.ramp,
            backend=args.backend,
            random_state=args.seed,
        )
        t0 = time.perf_counter()
        errs, train_errs = [], []
        for _ in range(args.epochs):
            clf.partial_fit(Xtr, ytr, classes=classes)
            errs.append(1 - clf.score(Xte, yte))
            if args.train_error:
                train_errs.append(1 - clf.score(Xtr[:2000], ytr[:2000]))
        dt = time.perf_counter() - t0
        print(f"{fb:5s} test error by epoch: " + " ".join(f"{e:.4f}" for e in errs))
        if train_errs:
            print(f"{fb:5s} train error (first 2000) by epoch: " + " ".join(f"{e:.4f}" for e in train_errs))
        print(
            f"{fb:5s} final test error {errs[-1]:.4f}; loss by epoch "
            + " ".join(f"{v:.3f}" for v in clf.loss_curve_)
            + "; alignment (last epoch, per layer) "
            + " ".join(f"{a:.2f}" for a in clf.alignment_[-1])
            + f"; time {dt:.0f}s (incl. scoring)",
            flush=True,
        )


# ------------------------------------------------------------------ linear
def linear(args):
    """Euler integration of Eq. (7)-(9), three layers, Section 5.1."""
    dims = [40, 100, 100, 10]
    for run in range(args.runs):
        rng = np.random.RandomState(run)
        Ws = [rng.normal(0, 2, (dims[i + 1], dims[i])) for i in range(3)]
        T = Ws[2] @ Ws[1] @ Ws[0]  # X = I: T = Y X^t
        scale = np.linalg.norm(T, 2) ** 2
        dt = args.dt / scale ** (2 / 3)  # a step the fastest direction tolerates
        results, corr = {}, {}

        def run_case(eps, bp):
            r = np.random.RandomState(100 + run)
            if bp:
                W = [r.normal(0, args.init_sd, (dims[i + 1], dims[i])) for i in range(3)]
            else:
                W = [np.zeros((dims[i + 1], dims[i])) for i in range(3)]
                R = [None] + [r.normal(0, args.init_sd, (dims[i], dims[i + 1])) for i in range(1, 3)]
            log = []
            for it in range(args.iters + 1):
                E = T - W[2] @ W[1] @ W[0]
                e = float((E * E).sum())
                log.append(np.log10(e / (T * T).sum()))
                if not np.isfinite(e) or it == args.iters:
                    break
                F = [None] + ([W[i].T for i in range(1, 3)] if bp else [R[i] for i in range(1, 3)])
                # Eq. (9): dW_i = (F_{i+1} ... F_k) E (W_1^t ... W_{i-1}^t)
                dW2 = E @ (W[1] @ W[0]).T
                dW1 = F[2] @ E @ W[0].T
                dW0 = F[1] @ F[2] @ E
                W[2] = W[2] + dt * dW2
                W[1] = W[1] + dt * dW1
                W[0] = W[0] + dt * dW0
                if not bp:
                    R[2] = R[2] + eps * dt * dW2.T
                    R[1] = R[1] + eps * dt * dW1.T
            if not bp:
                corr[eps] = [np.corrcoef(W[i].ravel(), R[i].T.ravel())[0, 1] for i in (1, 2)]
            return log

        results["BP"] = run_case(None, True)
        for eps in (0.0, 0.25, 0.5, 1.0):
            results[f"eps={eps:g}"] = run_case(eps, False)
        checkpoints = [c for c in (0, 50, 100, 200, 400, 600, 800, 1000, 1500, 2000) if c <= args.iters]
        print(f"# run {run}: log10 relative error |T - W3W2W1|^2/|T|^2 at iterations {checkpoints} (dt = {dt:.3g})")
        for name, log in results.items():
            vals = [f"{log[c]:7.2f}" if c < len(log) else "    nan" for c in checkpoints]
            first = next((i for i, v in enumerate(log) if v < -3), None)
            print(f"{name:9s} " + " ".join(vals) + f"   first iteration below 1e-3: {first}")
        print("final corr(W_l, R_l^t), layers 2 and 3: " + "; ".join(f"eps={e:g}: {c[0]:.2f} {c[1]:.2f}" for e, c in corr.items()))


# ------------------------------------------------------------------ timing
def _torch_weights(params):
    """The Network's weights as leaf tensors, conv filters channels first (O, I, kh, kw)."""
    import torch

    return {
        k: torch.tensor(v).permute(3, 2, 0, 1).contiguous().requires_grad_(True) if v.ndim == 4 else torch.tensor(v).requires_grad_(True)
        for k, v in params.items()
        if k.startswith("W")
    }


def _torch_layer(layer, i, ins, Ws, scale):
    """Layer ``i``'s output through plain torch ops (NCHW), differentiable by autograd."""
    import torch
    import torch.nn.functional as F

    from sklhebb.nn import Conv, Dense, Dropout, MaxPool, Sum, UntiedConv

    if isinstance(layer, Dense):
        h = ins[0].reshape(ins[0].shape[0], -1) @ Ws[f"W{i}"]
    elif isinstance(layer, Conv) and not isinstance(layer, UntiedConv):
        k = layer.size
        a, b = (k - 1) // 2, k - 1 - (k - 1) // 2
        h = F.conv2d(ins[0], Ws[f"W{i}"], padding=a) if a == b else F.conv2d(F.pad(ins[0], (a, b, a, b)), Ws[f"W{i}"])
    elif isinstance(layer, MaxPool):
        H, W = ins[0].shape[2:]
        h = F.max_pool2d(F.pad(ins[0], (0, layer.Wp - W, 0, layer.Hp - H)), layer.size, layer.stride)
    elif isinstance(layer, Dropout):
        h = F.dropout(ins[0], layer.rate, training=True)
    elif isinstance(layer, Sum):
        h = ins[0] + ins[1]
    else:
        raise NotImplementedError(f"no autograd reference for {layer.describe()}")
    if layer.has_weights and layer.activation:
        h = torch.clamp(scale * h, -1.0, 1.0)
    return h


def _autograd_step_fn(net, params, lr, mu, scale):
    """Plain torch back-propagation of the Network's function (channels first)."""
    import torch
    import torch.nn.functional as F

    Ws = _torch_weights(params)

    def step(X, y):
        x = X.permute(0, 3, 1, 2)  # NCHW view of the same batch
        outs = []
        for i, layer in enumerate(net.layers):
            h = _torch_layer(layer, i, [x if j < 0 else outs[j] for j in net.parents[i]], Ws, scale)
            outs.append(h)
        o = outs[-1]
        Y = F.one_hot(y, o.shape[1]).to(o.dtype)
        L = (Y * torch.relu(1 - o) + mu * (1 - Y) * torch.relu(1 + o)).sum(1).mean()
        for w in Ws.values():
            w.grad = None
        L.backward()
        with torch.no_grad():
            for w in Ws.values():
                w -= lr * w.grad

    return step


def timing(args):
    import torch

    from sklhebb._backend import resolve
    from sklhebb.classifiers.urfb import URFBClassifier
    from sklhebb.nn import Network, build_layers

    torch.set_num_threads(args.threads)
    n = args.n_train
    Xtr, ytr, _, _ = _load(n, 10)
    print(
        f"# timing: arch={args.arch}, {n} images = {n // args.batch} batches of {args.batch}, "
        f"threads={args.threads}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, best of {args.repeat}"
    )
    net = Network(build_layers(args.arch, 10), (28, 28, 1))
    host, _ = net.init_params(np.random.RandomState(0), "float32", feedback=None)
    tb = resolve("torch")
    Xt, yt = tb.asarray(Xtr[..., None]), torch.tensor(ytr.astype(np.int64))
    ag = _autograd_step_fn(net, host, 0.1, 1 / 9, 0.5)

    def autograd_epoch():
        perm = torch.randperm(n)
        for s in range(0, n, args.batch):
            idx = perm[s : s + args.batch]
            ag(Xt[idx], yt[idx])

    def ours(backend, fb):
        clf = URFBClassifier(args.arch, feedback=fb, loss="hinge", ramp_scale=0.5, max_iter=1, batch_size=args.batch, backend=backend, random_state=0)
        return lambda: clf.fit(Xtr, ytr)

    cases = [("torch autograd bp", autograd_epoch)]
    for backend in args.backend:
        for fb in ("bp", "urfb"):
            cases.append((f"{backend} URFBClassifier {fb}", ours(backend, fb)))
    best = {name: np.inf for name, _ in cases}
    for f in [f for _, f in cases]:
        f()  # warm-up
    for _ in range(args.repeat):  # alternate, so that load from other users hits all alike
        for name, f in cases:
            t0 = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t0)
    ref = best["torch autograd bp"]
    for name, _ in cases:
        print(f"{name:32s} {best[name]:7.2f} s/epoch   ratio to torch autograd {best[name] / ref:5.2f}")


def per_step(args):
    """One batch: forward + feedback + update of the Network (no estimator) against autograd."""
    import torch

    from sklhebb import rules
    from sklhebb._backend import resolve
    from sklhebb.nn import Network, build_layers

    torch.set_num_threads(args.threads)
    B = args.batch
    bk = resolve("torch")
    net = Network(build_layers(args.arch, 10), (28, 28, 1))
    host, _ = net.init_params(np.random.RandomState(0), "float32", feedback="random")
    p = {k: bk.asarray(v.copy()) for k, v in host.items()}
    rng = np.random.RandomState(0)
    X = bk.asarray(rng.rand(B, 28, 28, 1).astype(np.float32))
    y = torch.tensor(rng.randint(0, 10, B))
    ag = _autograd_step_fn(net, {k: v for k, v in host.items() if k[0] == "W"}, 0.1, 1 / 9, 0.5)
    gen = np.random.default_rng(0)

    def ours(use):
        masks = {i: bk.asarray(m) for i, m in net.draw_masks(gen, B, "float32").items()}
        out, caches = net.forward(bk, p, X, train=True, masks=masks)

        def apply(i, inc):
            dW, dR = rules.urfb_update(inc["W"], 0.1, 0.1 if use == "R" else 0.0)
            p[f"W{i}"] += dW
            if dR is not None:
                p[f"R{i}"] += dR

        net.feedback(bk, p, caches, rules.hinge_error(out, y, 1 / 9), use=use, on_increment=apply)

    cases = [("torch autograd bp", lambda: ag(X, y)), ("nn bp", lambda: ours("W")), ("nn urfb", lambda: ours("R"))]
    best = {name: np.inf for name, _ in cases}
    for _, f in cases:
        f()
    for _ in range(args.repeat):
        for name, f in cases:
            t0 = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"# per step: arch={args.arch}, batch {B}, torch CPU, threads={args.threads}, best of {args.repeat}")
    for name, _ in cases:
        print(f"{name:20s} {best[name] * 1000:7.0f} ms   ratio {best[name] / best['torch autograd bp']:5.2f}")


def per_layer(args):
    """Median time per layer and step of one batch: the Network's forward, error,
    increment and propagate on each backend, autograd's forward per layer and its
    backward pass (``loss.backward()`` plus the SGD update) as a whole."""
    import torch
    import torch.nn.functional as F

    from sklhebb import rules
    from sklhebb._backend import resolve
    from sklhebb.nn import Network, build_layers

    torch.set_num_threads(args.threads)
    B, n = args.batch, max(args.repeat, 3)
    rng = np.random.RandomState(0)
    X = rng.rand(B, 28, 28, 1).astype(np.float32)
    y = rng.randint(0, 10, B)
    print(f"# per layer: arch={args.arch}, batch {B}, threads={args.threads}, median of {n} batches (after one), ms")
    for backend in args.backend:
        bk = resolve(backend)
        net = Network(build_layers(args.arch, 10), (28, 28, 1))
        host, _ = net.init_params(np.random.RandomState(0), "float32", feedback="random")
        p = {k: bk.asarray(v.copy()) for k, v in host.items()}
        times = {}

        def timed(layer, i, name):
            f = getattr(layer, name)

            def g(*a, **k):
                t0 = time.perf_counter()
                r = f(*a, **k)
                times.setdefault((i, name), []).append(time.perf_counter() - t0)
                return r

            setattr(layer, name, g)

        for i, layer in enumerate(net.layers):
            for name in ("forward", "error", "increment", "propagate"):
                if hasattr(layer, name):
                    timed(layer, i, name)
        gen = np.random.default_rng(0)
        Xb, yb, steps = bk.asarray(X), bk.asarray(y), []
        for rep in range(n + 1):
            if rep == 1:
                times.clear()
            t0 = time.perf_counter()
            masks = {i: bk.asarray(m) for i, m in net.draw_masks(gen, B, "float32").items()}
            out, caches = net.forward(bk, p, Xb, train=True, masks=masks)

            def apply(i, inc):
                dW, dR = rules.urfb_update(inc["W"], 0.1, 0.1)
                p[f"W{i}"] += dW
                p[f"R{i}"] += dR

            net.feedback(bk, p, caches, rules.hinge_error(out, yb, 1 / 9), use="R", on_increment=apply)
            steps.append(time.perf_counter() - t0)
        print(f"{backend} nn urfb: step {np.median(steps[1:]) * 1000:.0f}")
        for i, layer in enumerate(net.layers):
            cells = [
                f"{name} {np.median(times[(i, name)]) * 1000:6.1f}" for name in ("forward", "error", "increment", "propagate") if (i, name) in times
            ]
            print(f"  {i:2d} {layer.describe():22s} " + "  ".join(cells))

    # autograd: the same function as _autograd_step_fn, timed layer by layer
    Ws = _torch_weights(host)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    fwd, bwd, steps = {}, [], []
    for rep in range(n + 1):
        t_step = time.perf_counter()
        x, outs = Xt.permute(0, 3, 1, 2), []
        for i, layer in enumerate(net.layers):
            t0 = time.perf_counter()
            h = _torch_layer(layer, i, [x if j < 0 else outs[j] for j in net.parents[i]], Ws, 0.5)
            outs.append(h)
            if rep:
                fwd.setdefault(i, []).append(time.perf_counter() - t0)
        o = outs[-1]
        Y = F.one_hot(yt, o.shape[1]).to(o.dtype)
        L = (Y * torch.relu(1 - o) + (1 / 9) * (1 - Y) * torch.relu(1 + o)).sum(1).mean()
        t0 = time.perf_counter()
        for w in Ws.values():
            w.grad = None
        L.backward()
        with torch.no_grad():
            for w in Ws.values():
                w -= 0.1 * w.grad
        if rep:
            bwd.append(time.perf_counter() - t0)
            steps.append(time.perf_counter() - t_step)
    print(f"torch autograd bp: step {np.median(steps) * 1000:.0f}, backward + update {np.median(bwd) * 1000:.0f}")
    for i, layer in enumerate(net.layers):
        print(f"  {i:2d} {layer.describe():22s} forward {np.median(fwd[i]) * 1000:6.1f}")


# -------------------------------------------------------------------- grid
def grid(args):
    """The defaults' grid (issue 15): every combination on bench_defaults' split, the data as it ships."""
    import itertools
    import warnings

    from bench_defaults import load

    from sklhebb.classifiers.urfb import URFBClassifier

    warnings.filterwarnings("ignore", category=UserWarning)
    for data in args.data:
        (Xtr, Xte, ytr, yte), _ = load(data, args.n_train)
        combos = itertools.product(args.hidden, args.batch, args.ramp, args.lr, args.epochs, args.schedule, args.loss, args.seeds)
        for hidden, batch, ramp, lr, epochs, schedule, loss, seed in combos:
            batch = batch if batch == "auto" else int(batch)
            sizes = tuple(int(h) for h in hidden.split(","))
            clf = URFBClassifier(
                sizes,
                batch_size=batch,
                ramp_scale=ramp,
                learning_rate=lr,
                max_iter=epochs,
                schedule=schedule,
                loss=loss,
                backend=args.backend,
                random_state=seed,
            )
            t0 = time.perf_counter()
            clf.fit(Xtr, ytr)
            fit_s = time.perf_counter() - t0
            print(
                f"| {data} | {sizes} | {batch} | {ramp} | {lr} | {epochs} | {schedule} | {loss} | seed {seed} "
                f"| {clf.score(Xte, yte):.4f} | {fit_s:.1f} s "
                f"| load {os.getloadavg()[0]:.1f} |",
                flush=True,
            )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fashion")
    f.add_argument("--quick", action="store_true")
    f.add_argument("--arch", default="simpnet")
    f.add_argument("--n-train", type=int, default=10000)
    f.add_argument("--n-test", type=int, default=2000)
    f.add_argument("--epochs", type=int, default=5)
    f.add_argument("--lr", type=float, default=0.1)
    f.add_argument("--batch", type=int, default=500)
    f.add_argument("--ramp", type=float, default=0.5)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--backend", default="torch")
    f.add_argument("--feedback", nargs="+", default=["bp", "urfb", "frfb"])
    f.add_argument("--train-error", action="store_true")
    lin = sub.add_parser("linear")
    lin.add_argument("--quick", action="store_true")
    lin.add_argument("--runs", type=int, default=3)
    lin.add_argument("--iters", type=int, default=1000)
    lin.add_argument("--dt", type=float, default=0.3)
    lin.add_argument("--init-sd", type=float, default=0.1)
    t = sub.add_parser("timing")
    t.add_argument("--quick", action="store_true")
    t.add_argument("--arch", default="simpnet")
    t.add_argument("--n-train", type=int, default=5000)
    t.add_argument("--batch", type=int, default=500)
    t.add_argument("--repeat", type=int, default=3)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--backend", nargs="+", default=["torch", "numpy"])
    t.add_argument("--per-step", action="store_true", help="time one batch of the Network against autograd")
    t.add_argument("--per-layer", action="store_true", help="where one batch's time goes, layer by layer")
    g = sub.add_parser("grid")
    g.add_argument("--data", nargs="+", default=["digits"])
    g.add_argument("--n-train", type=int, default=10000)
    g.add_argument("--hidden", nargs="+", default=["500"], help="comma-separated layer sizes, e.g. 500 or 256,256")
    g.add_argument("--batch", nargs="+", default=["auto"])
    g.add_argument("--ramp", nargs="+", type=float, default=[1.0])
    g.add_argument("--lr", nargs="+", type=float, default=[0.1])
    g.add_argument("--epochs", nargs="+", type=int, default=[50])
    g.add_argument("--schedule", nargs="+", default=["linear"])
    g.add_argument("--loss", nargs="+", default=["softmax"])
    g.add_argument("--seeds", nargs="+", type=int, default=[0])
    g.add_argument("--backend", default="numpy")
    args = p.parse_args(argv)
    if getattr(args, "quick", False):
        if args.cmd == "fashion":
            args.n_train, args.n_test, args.epochs = 2000, 1000, 2
        elif args.cmd == "linear":
            args.runs, args.iters = 1, 300
        else:
            args.n_train, args.repeat = 1000, 1
    if args.cmd == "timing" and args.per_step:
        return per_step(args)
    if args.cmd == "timing" and args.per_layer:
        return per_layer(args)
    {"fashion": fashion, "linear": linear, "timing": timing, "grid": grid}[args.cmd](args)


if __name__ == "__main__":
    main()
