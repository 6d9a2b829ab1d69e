"""The reductions over the ranks of data-parallel training; each is the identity in one process.

:func:`sklhebb.distributed.data_parallel` makes a torch.distributed process group current
(:func:`joined`); until then every function here returns its input and nothing imports torch. The
rules and steps call them where they form a minibatch sum or mean, so that with R ranks a step's
sums run over the rows of all ranks:

* :func:`sum_over_ranks`: sums (Krotov's Eq. 1 change, before its max-normalisation);
* :func:`mean_over_ranks`: each rank's means over its own ``count`` rows in, the means over all
  ranks' rows out (sum_r count_r mean_r / sum_r count_r); exact for every change that is a
  minibatch mean plus a term the same on every rank (NSM, the local competitive rule, URFB's
  Hebbian increment, the running statistics of std_abs);
* :func:`total`, :func:`largest`, :func:`union`, :func:`largest_each`: setup-time agreement (data
  counts, scales chosen from the data, ``classes_``) and per-epoch statistics.

Several arrays passed to one call travel in one all-reduce. :func:`epoch` keeps the ranks in step:
see its docstring.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import warnings

import numpy as np

__all__ = [
    "joined",
    "active",
    "world",
    "sum_over_ranks",
    "mean_over_ranks",
    "total",
    "largest",
    "largest_each",
    "union",
    "epoch_rng",
    "epoch",
    "rows_in_step",
]

_CURRENT = contextvars.ContextVar("sklhebb_ranks", default=None)


class Ranks:
    """A torch.distributed process group as the reductions use it (built by ``data_parallel``)."""

    def __init__(self, dist, group):
        import torch

        self.torch, self.dist, self.group = torch, dist, group
        self.rank = dist.get_rank(group)
        self.size = dist.get_world_size(group)
        # where host numbers travel: the CPU under gloo, the current GPU under NCCL alone
        self.backend = str(dist.get_backend(group)).lower()
        self.nccl_only = "nccl" in self.backend and "gloo" not in self.backend
        self.host_device = torch.device("cuda", torch.cuda.current_device()) if self.nccl_only else torch.device("cpu")
        self.step = (0, 0)  # (first row of this rank, rows of all ranks) in the current minibatch

    def allreduce_(self, tensor, op="sum"):
        ops = {"sum": self.dist.ReduceOp.SUM, "max": self.dist.ReduceOp.MAX}
        self.dist.all_reduce(tensor, op=ops[op], group=self.group)
        return tensor

    def host(self, values, dtype, op="sum"):
        """A list of host numbers reduced over the ranks, as a NumPy array."""
        t = self.torch.tensor(values, dtype=getattr(self.torch, dtype), device=self.host_device)
        return self.allreduce_(t, op).cpu().numpy()


@contextlib.contextmanager
def joined(ranks):
    """Make ``ranks`` the group that the reductions use, in this context."""
    token = _CURRENT.set(ranks)
    try:
        yield ranks
    finally:
        _CURRENT.reset(token)


def active():
    """The current :class:`Ranks`, or None in one process."""
    return _CURRENT.get()


def _allreduce_arrays(bk, ranks, arrays):
    """Sum ``arrays`` (same dtype) over the ranks in one all-reduce; arrays of the same shapes.

    Several arrays are packed into one buffer (one copy); a single C-contiguous array is reduced in
    place (NumPy memory reaches gloo through ``torch.from_numpy``, which shares it).
    """
    xp = bk.xp
    flat = xp.concat([xp.reshape(a, (-1,)) for a in arrays]) if len(arrays) > 1 else xp.reshape(arrays[0], (-1,))
    if bk.name == "numpy":
        tensor = ranks.torch.from_numpy(flat)  # shares the buffer
    elif bk.name == "cupy":
        tensor = ranks.torch.from_dlpack(flat)
    else:
        tensor = flat
    if ranks.nccl_only and tensor.device.type != "cuda":
        raise ValueError(
            f"data_parallel's process group has the {ranks.backend!r} backend, which reduces CUDA tensors only, but this "
            f"estimator computes on {bk.name} ({tensor.device}). Use a gloo group (init_process_group('gloo'), or "
            "'cpu:gloo,cuda:nccl' for both) for the CPU, or backend='torch', device='cuda:<local rank>'."
        )
    ranks.allreduce_(tensor)
    out, start = [], 0
    for a in arrays:
        n = math.prod(a.shape)
        out.append(xp.reshape(flat[start : start + n], tuple(a.shape)))
        start += n
    return out


def sum_over_ranks(bk, *arrays):
    """Sums of every rank's ``arrays`` (one all-reduce); ``arrays`` themselves in one process.

    Returns one array for one argument, else a tuple. One contiguous array is overwritten with the
    sums (pass an array of your own, as the rules do).
    """
    ranks = active()
    if ranks is None:
        return arrays[0] if len(arrays) == 1 else arrays
    out = _allreduce_arrays(bk, ranks, arrays)
    return out[0] if len(out) == 1 else tuple(out)


def mean_over_ranks(bk, *means, count):
    """Means over the rows of all ranks from each rank's ``means`` over its own ``count`` rows.

    One all-reduce carries count_r * mean_r and count_r; a rank with no rows (``count`` 0)
    contributes zeros, whatever its means hold (NaN from an empty mean). ``means`` themselves in
    one process. Returns one array for one argument, else a tuple.
    """
    ranks = active()
    if ranks is None:
        return means[0] if len(means) == 1 else means
    xp = bk.xp
    weighted = [m * count if count else xp.zeros_like(m) for m in means]
    n = xp.zeros_like(xp.reshape(means[0], (-1,))[:1]) + count
    *sums, n = _allreduce_arrays(bk, ranks, weighted + [n])
    out = [s / n[0] for s in sums]
    return out[0] if len(out) == 1 else tuple(out)


def world():
    """The number of ranks: 1 in one process."""
    ranks = active()
    return 1 if ranks is None else ranks.size


def total(n):
    """The sum of ``n`` (a count) over the ranks; ``n`` in one process."""
    ranks = active()
    return n if ranks is None else type(n)(ranks.host([n], "float64")[0])


def largest(value):
    """The largest ``value`` (a number) over the ranks; ``value`` in one process."""
    ranks = active()
    return value if ranks is None else type(value)(ranks.host([value], "float64", op="max")[0])


def largest_each(values):
    """Element-wise largest of a list of numbers (the same length on every rank)."""
    ranks = active()
    if ranks is None or not len(values):
        return list(values)
    return [type(v)(m) for v, m in zip(values, ranks.host(list(values), "float64", op="max"))]


def union(labels):
    """The sorted union of every rank's ``labels`` (a 1-D NumPy array); ``labels`` in one process."""
    ranks = active()
    if ranks is None:
        return labels
    gathered = [None] * ranks.size
    ranks.dist.all_gather_object(gathered, np.asarray(labels), group=ranks.group)
    return np.unique(np.concatenate(gathered))


def epoch_rng(rng):
    """The generator of one epoch's shuffle: ``rng`` itself in one process.

    Under data parallelism every rank draws one seed from the shared ``rng`` (the same draw on
    every rank, so that ``rng`` stays in step whatever the shard sizes) and shuffles its own shard
    with ``RandomState([seed, rank])``: reproducible from ``random_state`` and the rank.
    """
    ranks = active()
    if ranks is None or rng is None:
        return rng
    seed = int(rng.randint(np.iinfo(np.int32).max))
    return np.random.RandomState([seed, ranks.rank])


def epoch(batches, n_items, batch_size, empty):
    """One epoch's minibatches, in step with the other ranks; ``batches`` in one process.

    ``n_items`` is this rank's number of rows (or patches) in the epoch and ``batch_size`` the
    minibatch size; every rank learns every rank's ``n_items`` in one all-reduce at the epoch's
    start, so all take max_r ceil(n_r / batch_size) steps: a rank whose shard ends early steps with
    ``empty`` (a minibatch of no rows: zero sums, count 0) until the others are done. Step k's
    minibatch of all ranks is, in rank order, the rows k * batch_size ... of every rank; the
    position of this rank's rows in it is :func:`rows_in_step`.
    """
    ranks = active()
    if ranks is None:
        yield from batches
        return
    counts = np.zeros(ranks.size)
    counts[ranks.rank] = n_items
    counts = ranks.host(counts.tolist(), "float64").astype(np.int64)
    n_steps = int(max(-(-c // batch_size) for c in counts))
    it = iter(batches)
    for k in range(n_steps):
        rows = np.clip(counts - k * batch_size, 0, batch_size)
        ranks.step = (int(rows[: ranks.rank].sum()), int(rows.sum()))
        if rows[ranks.rank]:
            yield next(it)
        else:
            with warnings.catch_warnings():  # means of no rows: their NaN never leaves the rank
                warnings.simplefilter("ignore", RuntimeWarning)
                yield empty()


def rows_in_step(n_rows):
    """(first, total): where this rank's ``n_rows`` rows sit in the current minibatch of all ranks, and
    its size; (0, ``n_rows``) in one process. For per-row random draws (dropout masks): draw ``total``
    rows from the shared generator, keep ``first : first + n_rows``."""
    ranks = active()
    return (0, n_rows) if ranks is None else ranks.step
