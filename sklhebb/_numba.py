"""When the optional compiled kernels (numba) run, and on how many threads.

The kernels serve the NumPy backend only; torch and CuPy keep their own
threads. They run when numba is installed (``pip install sklhebb[fast]``)
unless ``SKLHEBB_DISABLE_NUMBA=1`` is set; otherwise the same fit runs on
the plain NumPy path, which gives the same weights within float rounding.

Threads: a compiled fit uses as many threads as BLAS has when it starts (so
``threadpoolctl.threadpool_limits``, ``OMP_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` keep their meaning) and holds BLAS itself at one
thread meanwhile, because each kernel thread makes its own BLAS calls.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

__all__ = ["available", "give_up", "kernel_threads", "launch_lock"]

#: tests switch the kernels off to exercise the plain NumPy path
ENABLED = True

_state_lock = threading.Lock()
#: numba's workqueue threading layer (used when neither OpenMP nor TBB is
#: present) aborts on concurrent launches; launches hold this lock
launch_lock = threading.Lock()
_users = 0
_limiter = None
_n_threads = 1
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


@contextlib.contextmanager
def kernel_threads():
    """Run compiled kernels on the BLAS thread budget, with BLAS at one thread.

    Yields the number of kernel threads. Fits that overlap in several Python
    threads share one setting: the first sets it, the last restores BLAS.
    """
    global _users, _limiter, _n_threads, _pid, _controller
    import numba
    import scipy.linalg.cython_blas  # noqa: F401 - the BLAS numba calls, loaded so that threadpoolctl limits it
    from threadpoolctl import ThreadpoolController

    with _state_lock:
        if _users == 0:
            if _controller is None:
                _controller = ThreadpoolController()
            ctl = _controller
            blas = [lib.num_threads for lib in ctl.select(user_api="blas").lib_controllers]
            budget = min(blas) if blas else numba.config.NUMBA_NUM_THREADS
            _n_threads = max(1, min(int(budget), numba.config.NUMBA_NUM_THREADS))
            _limiter = ctl.limit(limits=1, user_api="blas")
        _users += 1
        n = _n_threads
        _pid = os.getpid()
    before = numba.get_num_threads()
    numba.set_num_threads(n)  # per calling thread
    try:
        yield n
    finally:
        numba.set_num_threads(before)
        with _state_lock:
            _users -= 1
            if _users == 0:
                _limiter.restore_original_limits()
                _limiter = None


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
