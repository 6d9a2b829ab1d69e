"""How many threads a fit runs on: the user's thread settings, capped by the cores actually free.

A fit (and a transform of more than one chunk, checked chunk by chunk) runs its thread pools (BLAS, numba's kernels, torch's intra-op pool)
on at most as many threads as the user allows (``threadpoolctl``,
``OMP_NUM_THREADS``, ``torch.set_num_threads``) and, within that, on no more
threads than there are cores that other processes leave free, measured
when the fit starts and again every quarter of a second while it runs. Why (benchmarks/bench_contention.py, RESULTS.md, issue 16): the pools'
idle threads spin while they wait for each other, so a thread that shares its
core with another process holds up every parallel region until the scheduler
gives it a time slice, while the spinning threads keep the free core busy;
with one competing process on a 2-core machine the default fits took 6-10x
the time of one thread. A single-threaded user setting skips the measurement.

Free cores are read from ``/proc/stat``: the time the cores this process may
use spent on other work (not counting this process's own threads) over a
short window. ``nice``-d processes count as busy: /proc/stat does not say how
nice, and one at nice 5 still takes a quarter of a core from a thread beside
it (with nice time counted as free, the Krotov fit of bench_contention.py
took 7x its one-thread time, median of 5, beside another session's nice-5
job and a test run). Where that file does not exist every allowed core
counts as free.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import math
import os
import sys
import threading
import time

__all__ = ["free_cores", "fit_threads", "current_fit"]

#: a window shorter than this is too coarse for /proc/stat's 10 ms ticks: sleep to lengthen it
_MIN_WINDOW = 0.05
#: a previous reading older than this says nothing about now: start a fresh window
_MAX_WINDOW = 2.0
#: seconds between two measurements during a fit
_RECHECK = 0.25
#: a core counts as taken when other processes kept it busy more than this share of the time
_TAKEN = 0.25
_last = None  # (time.monotonic(), {cpu: busy ticks}, process CPU seconds) of the last reading
_count = None  # the free cores that reading found (None before the first full window)
_current = contextvars.ContextVar("sklhebb_fit_threads", default=None)


def _allowed_cores():
    """The cores this process may run on (all of them where the OS has no affinity call: macOS, Windows)."""
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))


def _read():
    """(now, busy ticks of each allowed core (all but idle and iowait), this process's CPU seconds)."""
    allowed = _allowed_cores()
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *ticks = line.split()
            cpu = int(name[3:])
            if cpu in allowed:
                user, nice, system, _idle, _iowait, irq, softirq, steal = (int(t) for t in ticks[:8])
                busy[cpu] = user + nice + system + irq + softirq + steal
    t = os.times()
    return time.monotonic(), busy, t.user + t.system


def free_cores() -> int:
    """Cores this process may use that other processes left (mostly) idle lately; at least 1.

    Lately: since the last reading when that was 0.05-2 s ago. Within 0.05 s
    of a reading its count is returned again, without a new one, so that
    calls in quick succession (a ``partial_fit`` loop, small fits) do not
    wait; the window then keeps growing until the next call that reads. With
    no reading in the last 2 s the call measures the next 0.05 s (it sleeps
    that long).
    """
    global _last, _count
    n_allowed = len(_allowed_cores())
    if _last is not None and _count is not None and time.monotonic() - _last[0] < _MIN_WINDOW:  # measured lately
        return max(1, min(n_allowed, _count))
    try:
        now = _read()
        if _last is None or now[0] - _last[0] > _MAX_WINDOW:
            _last, _count = now, None
        if now[0] - _last[0] < _MIN_WINDOW:
            time.sleep(_MIN_WINDOW - (now[0] - _last[0]))
            now = _read()
    except (OSError, ValueError):  # no /proc (not Linux), or a format this code does not know
        return n_allowed
    (t0, busy0, own0), (t1, busy1, own1) = _last, now
    ticks = os.sysconf("SC_CLK_TCK")
    others = (sum(busy1[c] - busy0.get(c, busy1[c]) for c in busy1) / ticks - (own1 - own0)) / (t1 - t0)
    _last, _count = now, max(1, min(n_allowed, n_allowed - math.ceil(others - _TAKEN)))
    return _count


class FitThreads:
    """The thread count of one running fit: ``requested`` (the user's settings) capped at the free cores.

    ``apply(n)`` sets the pool that does the fit's work to ``n`` threads; a
    compiled kernel replaces it for its part of the fit (:meth:`applying`).
    :meth:`paced` wraps a step function so that the count follows the load.
    """

    def __init__(self, requested, apply):
        self.requested = int(requested)
        self._apply = apply
        self.n = self.requested
        self._next = 0.0
        self.check()

    def check(self):
        """Measure the free cores again if it is time to, and apply a changed count."""
        if self.requested <= 1:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + _RECHECK
        n = min(self.requested, free_cores())
        if n != self.n:
            self._apply(n)
            self.n = n

    @contextlib.contextmanager
    def applying(self, apply):
        """Route changes of the count to ``apply`` inside the block (applied now); then back to the old pool."""
        (before, self._apply), n_before = (self._apply, apply), self.n
        apply(self.n)
        try:
            yield
        finally:
            self._apply, self.n = before, n_before  # what the old pool was last set to

    def map(self, fn, items):
        """``[fn(item) for item in items]`` on the free cores' worth of Python threads, in order.

        For NumPy work split into independent pieces (a transform's chunks): each
        piece runs on one thread with BLAS at one thread inside it, so that the
        elementwise passes around the products run in parallel too, not only
        the products. The free cores are measured again every quarter of a
        second (:meth:`check`); a worker whose number reaches the count stops,
        so a machine that gets busy runs fewer pieces at once.
        """
        self.check()
        if self.n <= 1:
            return [self.paced(fn)(item) for item in items]
        items = list(items)
        results = [None] * len(items)
        todo = iter(range(len(items)))
        lock = threading.Lock()
        failed = threading.Event()

        def worker(slot):
            while not failed.is_set():
                with lock:
                    self.check()  # under applying() below: updates the count, sets no pool
                    i = next(todo, None) if slot < self.n else None
                if i is None:
                    return
                try:
                    results[i] = fn(items[i])
                except BaseException:
                    failed.set()
                    raise

        n = self.n
        self._apply(1)  # BLAS on one thread inside each piece
        try:
            with self.applying(lambda _: None), concurrent.futures.ThreadPoolExecutor(n) as pool:
                futures = [pool.submit(worker, slot) for slot in range(n)]
                try:
                    for future in futures:
                        future.result()
                except BaseException:  # a piece failed, or the caller was interrupted: no new pieces
                    failed.set()
                    raise
        finally:
            self._apply(n)  # applying() has set the count back to n
        return results

    def paced(self, step_fn):
        def step(*args):
            self.check()
            return step_fn(*args)

        return step


def current_fit():
    """The :class:`FitThreads` of the fit running in this thread, or None."""
    return _current.get()


@contextlib.contextmanager
def fit_threads(bk):
    """A :class:`FitThreads` for the ``with`` block: BLAS (NumPy) or torch's intra-op threads (torch CPU).

    Only ever lowers the user's setting, and restores it afterwards. Yields
    None on other backends. Fits (and transforms) in several Python threads of
    one process hold these process-wide pools one at a time.
    """
    if not (bk.name == "numpy" or (bk.name == "torch" and not bk.is_gpu)):
        yield None
        return
    from . import _numba

    # the pools are the process's: fits in several Python threads take turns at setting and restoring
    # them, so that each reads the user's setting and restores what it found (overlapping compiled
    # fits in two threads beside a busy core left BLAS at one thread in 4 of 20 runs without this)
    with _numba._fit_lock:
        if bk.name == "numpy":
            controller = _numba.thread_controller()
            blas = controller.select(user_api="blas")
            requested = max((lib.num_threads for lib in blas.lib_controllers), default=1)
            limits = contextlib.ExitStack()

            def apply(n):
                limits.close()
                if n < requested:
                    limits.enter_context(controller.limit(limits=n, user_api="blas"))

            undo = limits.close
        else:
            torch = sys.modules["torch"]
            requested = torch.get_num_threads()
            apply = torch.set_num_threads

            def undo():
                torch.set_num_threads(requested)

        threads = FitThreads(requested, apply)
        token = _current.set(threads)
        try:
            yield threads
        finally:
            _current.reset(token)
            if threads.n != requested:
                undo()
