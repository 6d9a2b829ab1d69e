"""Data-parallel KrotovPatchEncoder (issue 18): 1 rank x 2 threads against 2 ranks x 1 thread.

    python benchmarks/bench_distributed.py [--repeats 2] [--flips]

The same fit, K = 400 units, W = 4 (N = 48), one epoch, CIFAR-shaped 32 x 32 x 3 uint8 images cut
from scikit-learn's two sample photos (load_sample_images) in tiles at a stride of 16 pixels
(``--flips`` adds their mirror images), on this machine's CPU:

* 1 rank x 2 threads, batch 1000: the compiled (numba) step, and the plain NumPy step (what a rank
  runs under data_parallel);
* 2 ranks x 1 thread over gloo (localhost), each with half the images: per-rank batch 500 (the
  same minibatches of 1000 patches as the single process) and per-rank batch 1000 (minibatches of
  2000).

For each data-parallel run: the epoch's wall time, its steps, the bytes and the time per step
spent in the all-reduce (which includes waiting for the other rank), and the rest of the step;
and, alone, the time of back-to-back all-reduces of the same K x N float32 buffer (the
communication without any wait). Prints one table; ranks are processes started with
torch.multiprocessing (spawn) on a free localhost port.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import tempfile
import time

import numpy as np

K, WINDOW = 400, 4


def make_images(flips=False, limit=None):
    """32 x 32 x 3 uint8 tiles of scikit-learn's sample photos, stride 16 (and their mirrors); the first ``limit``."""
    from sklearn.datasets import load_sample_images

    tiles = []
    for img in load_sample_images().images:
        H, W, _ = img.shape
        for i in range(0, H - 32 + 1, 16):
            for j in range(0, W - 32 + 1, 16):
                tiles.append(img[i : i + 32, j : j + 32])
    X = np.stack(tiles)
    return (np.concatenate([X, X[:, :, ::-1]]) if flips else X)[:limit]


def _encoder(batch_size):
    from sklhebb import KrotovPatchEncoder

    return KrotovPatchEncoder(n_components=K, window=WINDOW, max_iter=1, batch_size=batch_size, random_state=0)


def single(X, *, compiled):
    """One process, 2 threads: seconds for one epoch, and the steps."""
    from threadpoolctl import threadpool_limits

    from sklhebb import _numba

    _numba.ENABLED = compiled
    try:
        with threadpool_limits(limits=2):
            enc = _encoder(1000)
            t0 = time.perf_counter()
            enc.fit(X)
            return time.perf_counter() - t0, enc.n_steps_
    finally:
        _numba.ENABLED = True


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank, world, port, batch_size, flips, limit, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch
    import torch.distributed as dist
    from threadpoolctl import threadpool_limits

    from sklhebb import _ranks
    from sklhebb.distributed import data_parallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    X = make_images(flips, limit)[rank::world]
    spent = {"time": 0.0, "bytes": 0, "calls": 0}
    reduce_ = _ranks.Ranks.allreduce_

    def timed(self, tensor, op="sum"):
        t0 = time.perf_counter()
        out = reduce_(self, tensor, op)
        if tensor.numel() == K * WINDOW * WINDOW * 3:  # a step's (not the setup's) all-reduce
            spent["time"] += time.perf_counter() - t0
            spent["bytes"] += tensor.numel() * tensor.element_size()
            spent["calls"] += 1
        return out

    _ranks.Ranks.allreduce_ = timed
    with threadpool_limits(limits=1):
        with data_parallel():
            enc = _encoder(batch_size)
            dist.barrier()
            t0 = time.perf_counter()
            enc.fit(X)
            dist.barrier()
            wall = time.perf_counter() - t0
        # communication alone: back-to-back all-reduces of the step's buffer
        buf = torch.zeros(K * WINDOW * WINDOW * 3, dtype=torch.float32)
        for _ in range(20):
            dist.all_reduce(buf)
        n = 500
        t0 = time.perf_counter()
        for _ in range(n):
            dist.all_reduce(buf)
        alone = (time.perf_counter() - t0) / n
    np.save(os.path.join(out, f"{rank}.npy"), np.array([wall, enc.n_steps_, spent["time"], spent["bytes"], spent["calls"], alone]))
    dist.destroy_process_group()


def parallel(batch_size, flips, limit, world=2):
    """``world`` ranks x 1 thread: per-rank figures (wall, steps, all-reduce s, bytes, calls, alone s)."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(_rank, args=(world, _free_port(), batch_size, flips, limit, out), nprocs=world, join=True, start_method="spawn")
        return [np.load(os.path.join(out, f"{r}.npy")) for r in range(world)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--flips", action="store_true", help="add the tiles' mirror images (twice the data)")
    ap.add_argument("--limit", type=int, default=None, help="the first LIMIT images only (a quick check)")
    args = ap.parse_args()
    X = make_images(args.flips, args.limit)
    n_patches = X.shape[0] * (32 - WINDOW + 1) ** 2
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average {open('/proc/loadavg').read().split()[:3]}")
    print(f"{X.shape[0]} images 32x32x3 (uint8, float32 compute), {n_patches} patches per epoch, K={K}, W={WINDOW}")
    _encoder(1000).fit(X[:50])  # compile / load the numba kernel once
    rows = []
    for r in range(args.repeats):
        for name, run in [
            ("1 rank x 2 threads, compiled step, batch 1000", lambda: single(X, compiled=True)),
            ("1 rank x 2 threads, plain NumPy step, batch 1000", lambda: single(X, compiled=False)),
        ]:
            wall, steps = run()
            rows.append((r, name, wall, steps, None))
        for batch in (500, 1000):
            res = parallel(batch, args.flips, args.limit)
            wall = max(x[0] for x in res)
            rows.append((r, f"2 ranks x 1 thread, batch {batch} per rank ({2 * batch} per step)", wall, int(res[0][1]), res))
    print(f"load average after: {open('/proc/loadavg').read().split()[:3]}")
    print(f"{'repeat':>6}  {'configuration':<62} {'epoch s':>8} {'steps':>6} {'patches/s':>10}  all-reduce per step (rank 0 / rank 1)")
    for r, name, wall, steps, res in rows:
        line = f"{r:>6}  {name:<62} {wall:8.2f} {steps:6d} {n_patches / wall:10.3g}"
        if res is not None:
            per = [(x[2] / x[4], x[3] / x[4], (x[0] - x[2]) / x[1], x[5]) for x in res]
            line += "  " + " / ".join(f"{t * 1e3:.3f} ms, {b / 1e3:.1f} kB, rest {c * 1e3:.2f} ms, alone {a * 1e3:.3f} ms" for t, b, c, a in per)
        print(line)


if __name__ == "__main__":
    main()
