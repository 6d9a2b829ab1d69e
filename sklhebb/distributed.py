"""Training beyond one machine: dask-ml's ``Incremental`` with a row-chunk check.

``dask_ml.wrappers.Incremental`` feeds the blocks of a dask array to
``partial_fit`` one after another (possibly on different workers). It only
feeds block (i, 0) of each row of blocks, so a dask array chunked along its
columns is silently truncated (a 16-column array in chunks of 8 trains on 8
columns). :class:`Incremental` here refuses that with a clear error, or
rechunks when asked to.

Recipe for a real cluster (one worker per GPU)::

    # on each GPU machine, one worker per GPU, one thread each:
    #   CUDA_VISIBLE_DEVICES=0 dask worker tcp://scheduler:8786 --nthreads 1 --nworkers 1
    from distributed import Client
    from sklhebb.distributed import Incremental
    client = Client("tcp://scheduler:8786")
    inc = Incremental(KrotovPatchEncoder(backend="torch", device="cuda", image_shape=(32, 32, 3)),
                      scoring=None, shuffle_blocks=True, random_state=0)
    inc.fit(X_dask)          # X_dask chunked along rows only: X.rechunk({1: -1})

The estimator travels between workers as a pickle; sklhebb keeps fitted state
as NumPy, so it moves freely between GPU and CPU workers.
"""

from __future__ import annotations

__all__ = ["Incremental", "check_row_chunks"]  # noqa: F822 - Incremental is built by __getattr__ (PEP 562)


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
