"""When the optional compiled kernels (numba) run, and on how many threads.

The kernels serve the NumPy backend only; torch and CuPy keep their own
threads. They run when numba is installed (``pip install sklhebb[fast]``)
unless ``SKLHEBB_DISABLE_NUMBA=1`` is set; otherwise the same fit runs on
the plain NumPy path, which gives the same weights within float rounding.

Threads: a compiled fit uses as many threads as BLAS has when it starts (so
``threadpoolctl.threadpool_limits``, ``OMP_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` keep their meaning; a fit first caps BLAS at the
cores other processes leave free, :mod:`sklhebb._threads`) and holds BLAS
itself at one thread meanwhile, because each kernel thread makes its own
BLAS calls.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

__all__ = ["available", "give_up", "kernel_threads", "launch_lock", "thread_controller"]

#: tests switch the kernels off to exercise the plain NumPy path
ENABLED = True

#: compiled fits run one at a time: each sets BLAS to one thread and restores it in
#: its own thread (threadpoolctl lets only the thread that set an OpenBLAS limit
#: change it again until its ``with`` block ends)
_fit_lock = threading.RLock()
#: numba's workqueue threading layer (used when neither OpenMP nor TBB is
#: present) aborts on concurrent launches; launches hold this lock
launch_lock = threading.Lock()
_pid = None  # the process that started numba's (GNU OpenMP) threads
_controller = None  # threadpoolctl's view of the loaded libraries (2 ms to build)
_failed = False  # a kernel could not be loaded or compiled in this process


def available() -> bool:
    """True when the compiled kernels can run in this process."""
    if not ENABLED or _failed or os.environ.get("SKLHEBB_DISABLE_NUMBA", "").strip() not in ("", "0"):
        return False
    if _pid is not None and _pid != os.getpid():
        # a child forked after the parent ran numba's OpenMP threads: GNU
        # OpenMP is not fork-safe, so the child keeps to plain NumPy
        return False
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def thread_controller():
    """threadpoolctl's view of the loaded thread pools, numba's BLAS included (built once)."""
    global _controller
    import scipy.linalg.cython_blas  # noqa: F401 - the BLAS numba calls, loaded so that threadpoolctl limits it
    from threadpoolctl import ThreadpoolController

    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def kernel_threads(budget=None):
    """Run compiled kernels on the BLAS thread budget, with BLAS at one thread.

    Yields the number of threads the user's settings allow (capped at
    numba's; ``budget``: the threads of the pool the fit would otherwise run
    on, torch's intra-op threads for torch CPU tensors; None: BLAS's limit):
    a step cuts its work into that many blocks and sums them in a
    fixed order. It runs on the threads BLAS has now, fewer where a fit has
    capped BLAS at the free cores (:func:`sklhebb._threads.fit_threads`), and
    gives the same result on any number of them. Compiled fits in several
    Python threads take turns (each uses every thread it is allowed anyway);
    BLAS is limited and restored by the thread that runs the fit. If the
    limit does not take (another thread holds threadpoolctl's OpenBLAS
    control), the kernel runs on one thread, so that threads never multiply.
    """
    global _pid
    import numba

    from ._threads import current_fit

    fit = current_fit()
    most = numba.config.NUMBA_NUM_THREADS
    with _fit_lock:
        controller = thread_controller()
        blas = controller.select(user_api="blas")
        if budget is None:
            budget = min((lib.num_threads for lib in blas.lib_controllers), default=most)
        n = max(1, min(int(budget), most))
        blocks = n if fit is None else max(n, min(fit.requested, most))
        _pid = os.getpid()
        with controller.limit(limits=1, user_api="blas"):
            if any(lib.num_threads > 1 for lib in blas.lib_controllers):
                n = blocks = 1
            before = numba.get_num_threads()
            numba.set_num_threads(n)  # per calling thread
            try:
                if fit is None or blocks == 1:
                    yield blocks
                else:
                    with fit.applying(lambda k: numba.set_num_threads(max(1, min(k, blocks)))):
                        yield blocks
            finally:
                numba.set_num_threads(before)


def give_up(exc: BaseException) -> None:
    """A kernel failed to load or compile: warn once, and use plain NumPy from now on."""
    global _failed
    if not _failed:
        warnings.warn(
            f"sklhebb's compiled (numba) kernels are unavailable ({type(exc).__name__}: {exc}); "
            "fitting on the plain NumPy path instead. Set SKLHEBB_DISABLE_NUMBA=1 to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )
    _failed = True
