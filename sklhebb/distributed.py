"""Training beyond one machine: data parallelism on torch.distributed, and dask-ml's ``Incremental``.

:func:`data_parallel` spreads the work: every rank (process, GPU, machine) passes its own shard of
the data to ``fit`` / ``partial_fit`` and each minibatch step's sums are all-reduced, so that R
ranks with minibatches of B rows train exactly as one process with minibatches of R * B rows.
Launch it with ``torchrun`` (README, "Beyond one machine")::

    # torchrun --nproc-per-node 2 train.py   (one machine; add --nnodes/--rdzv-endpoint for several)
    import torch.distributed as dist
    from sklhebb import KrotovPatchEncoder
    from sklhebb.distributed import data_parallel
    dist.init_process_group("gloo")          # "nccl" for backend="torch", device="cuda:<local rank>"
    X_shard = X[dist.get_rank()::dist.get_world_size()]
    with data_parallel():
        enc = KrotovPatchEncoder(n_components=400, window=4, random_state=0).fit(X_shard)
    # every rank now holds the same components_

``dask_ml.wrappers.Incremental`` spreads the data, not the work: it feeds the blocks of a dask
array to ``partial_fit`` one after another (possibly on different workers), which suits data that
already lives in dask. It only feeds block (i, 0) of each row of blocks, so a dask array chunked
along its columns is silently truncated (a 16-column array in chunks of 8 trains on 8 columns).
:class:`Incremental` here refuses that with a clear error, or rechunks when asked to.

Recipe for a real cluster (one worker per GPU)::

    # on each GPU machine, one worker per GPU, one thread each:
    #   CUDA_VISIBLE_DEVICES=0 dask worker tcp://scheduler:8786 --nthreads 1 --nworkers 1
    from distributed import Client
    from sklhebb.distributed import Incremental
    client = Client("tcp://scheduler:8786")

    def mean_feature(est, X, y=None):    # a scorer for an encoder, which has no score()
        return float(est.transform(X).mean())

    inc = Incremental(KrotovPatchEncoder(backend="torch", device="cuda", image_shape=(32, 32, 3)),
                      scoring=mean_feature, shuffle_blocks=True, random_state=0)
    inc.fit(X_dask)          # X_dask chunked along rows only: X.rechunk({1: -1})

(A classifier can keep ``scoring=None``: dask-ml then calls its ``score``.) The estimator travels
between workers as a pickle; sklhebb keeps fitted state as NumPy, so it moves freely between GPU
and CPU workers.
"""

from __future__ import annotations

__all__ = ["data_parallel", "Incremental", "check_row_chunks"]  # noqa: F822 - Incremental is built by __getattr__ (PEP 562)


import contextlib


@contextlib.contextmanager
def data_parallel(group=None, *, timeout=None):
    """Train data-parallel over a torch.distributed process group, in this context.

    Every rank calls ``fit`` / ``partial_fit`` of the same estimator (same parameters, same
    ``random_state``) on its own shard of the data. Each minibatch step, every rank computes its
    part of the rule's sums over its own rows, one all-reduce combines them (where a rule averages
    over the minibatch, over the rows of all ranks) and every rank applies the same update, so all
    ranks end with identical fitted attributes. R ranks with minibatches of B rows (or patches)
    train as one process would with minibatches of R * B rows, step k's minibatch being, in rank
    order, every rank's k-th minibatch (exact up to rounding; tested in float64 to 1e-9).

    * Unequal shards: at the start of each epoch one all-reduce tells every rank every rank's
      number of rows, so all take as many steps as the largest shard needs; a rank whose shard has
      run out steps with an empty minibatch (zero sums, no rows) until the others are done.
    * Shuffling (``shuffle=True``): each epoch every rank draws one seed from the shared random
      state and shuffles its own shard with (seed, rank): reproducible from ``random_state``.
    * What an estimator fixes from the data at its first fit agrees across ranks: ``classes_``
      (the union of the ranks' labels), the number of samples behind a schedule or a default
      (their sum, e.g. ActivationLearningClassifier's ``max_iter=None`` and ``gap_slope="auto"``),
      and the scales and sizes chosen by "auto" (KrotovPatchEncoder and URFBClassifier
      ``batch_size="auto"``, URFBClassifier ``input_scale="auto"``: the largest over the ranks;
      NSMEncoder ``input_scale="auto"``: the root-mean-square norm over the first rows of every
      rank).
    * The max-normalisation of KrotovPatchEncoder, the divergence checks and the per-epoch
      statistics (URFBClassifier's loss, NSMEncoder's dynamics steps) use the combined values.
      KrotovPatchEncoder computes with the plain NumPy step here, not its compiled (numba) one,
      whose fused kernel leaves no place for the all-reduce.
    * All-reduces per step: one, except where a step has parts that depend on each other:
      ActivationLearningClassifier's accuracy feedback (the batch mean of gamma, then each
      learning pass) and URFBClassifier with ``propagate_with="post_update"`` (one per layer).

    Parameters
    ----------
    group : torch.distributed ProcessGroup, optional
        The ranks to train over; default: the default group (``init_process_group``). Its backend
        must reach the arrays: gloo for NumPy and CPU torch arrays, NCCL for CUDA tensors (or
        ``"cpu:gloo,cuda:nccl"`` for both); under NCCL each rank calls
        ``torch.cuda.set_device(local_rank)`` first and computes on that device.
    timeout : float, optional
        Seconds a collective may wait for the other ranks before it raises (a new group with this
        timeout is made over the ranks of ``group``): a rank that fails makes the others raise
        instead of waiting for it forever. Default: the group's own timeout (torch's default: 10
        or 30 minutes). When an exception leaves the context, the group made here is destroyed, so
        that peers still waiting in a collective fail at once.

    Outside this context (and in a process without an initialised group) nothing changes: no
    torch.distributed call is made.
    """
    import datetime

    import torch.distributed as dist

    from . import _ranks

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "data_parallel needs an initialised torch.distributed process group: call "
            "torch.distributed.init_process_group(...) first (torchrun sets its environment)."
        )
    own = None
    if timeout is not None:
        ranks = None if group is None else dist.get_process_group_ranks(group)
        own = dist.new_group(ranks=ranks, timeout=datetime.timedelta(seconds=float(timeout)), backend=dist.get_backend(group))
    try:
        with _ranks.joined(_ranks.Ranks(dist, own if own is not None else (group or dist.group.WORLD))):
            yield
    except BaseException:
        if own is not None:
            dist.destroy_process_group(own)
            own = None
        raise
    finally:
        if own is not None:
            dist.destroy_process_group(own)


def check_row_chunks(X, *, rechunk=False):
    """Return ``X`` if it is chunked along rows only; else rechunk or raise."""
    numblocks = getattr(X, "numblocks", None)
    if numblocks is None or len(numblocks) < 2 or all(n == 1 for n in numblocks[1:]):
        return X
    if rechunk:
        return X.rechunk({i: -1 for i in range(1, X.ndim)})
    raise ValueError(
        f"X is a dask array chunked along its columns too (chunks={X.chunks}); dask-ml's Incremental "
        "would train on the first column block only. Rechunk along rows only, e.g. "
        "X = X.rechunk({1: -1}), or pass rechunk=True."
    )


def _incremental_base():
    from dask_ml.wrappers import Incremental as _Incremental

    return _Incremental


def __getattr__(name):  # PEP 562: build Incremental on first access
    if name != "Incremental":
        raise AttributeError(name)
    base = _incremental_base()

    class Incremental(base):
        """``dask_ml.wrappers.Incremental`` that checks that X is chunked along rows only.

        Parameters are those of dask-ml's ``Incremental`` plus ``rechunk``
        (default False: raise a clear error for column chunks; True: rechunk
        to rows-only blocks before training).
        """

        def __init__(
            self,
            estimator=None,
            scoring=None,
            shuffle_blocks=True,
            random_state=None,
            assume_equal_chunks=True,
            predict_meta=None,
            predict_proba_meta=None,
            transform_meta=None,
            rechunk=False,
        ):
            super().__init__(
                estimator=estimator,
                scoring=scoring,
                shuffle_blocks=shuffle_blocks,
                random_state=random_state,
                assume_equal_chunks=assume_equal_chunks,
                predict_meta=predict_meta,
                predict_proba_meta=predict_proba_meta,
                transform_meta=transform_meta,
            )
            self.rechunk = rechunk

        def fit(self, X, y=None, **fit_kwargs):
            return super().fit(check_row_chunks(X, rechunk=self.rechunk), y, **fit_kwargs)

        def partial_fit(self, X, y=None, **fit_kwargs):
            return super().partial_fit(check_row_chunks(X, rechunk=self.rechunk), y, **fit_kwargs)

    Incremental.__module__ = __name__
    globals()["Incremental"] = Incremental
    return Incremental
