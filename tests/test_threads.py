"""Fits cap their thread pools at the free cores (sklhebb/_threads.py) without changing results or user settings."""

import itertools
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from sklhebb import KrotovPatchEncoder, LocalCompetitiveEncoder, _threads


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_free_cores_counts_other_processes_busy_time_but_not_our_own(monkeypatch):
    tick = os.sysconf("SC_CLK_TCK")
    cores = sorted(os.sched_getaffinity(0))
    n = len(cores)

    def readings(*steps):
        it = iter([(0.0, dict.fromkeys(cores, 0), 0.0), *steps])
        monkeypatch.setattr(_threads, "_read", lambda: next(it))
        monkeypatch.setattr(_threads, "_last", None)
        monkeypatch.setattr(_threads.time, "sleep", lambda s: None)

    # one second: every core busy all the time, and all of it was this process's own work
    readings((1.0, dict.fromkeys(cores, tick), float(n)))
    assert _threads.free_cores() == n
    # one core's worth of that was another process
    readings((1.0, dict.fromkeys(cores, tick), float(n - 1)))
    assert _threads.free_cores() == max(1, n - 1)
    # another process at 40 % of a core takes it; at 10 % it does not
    readings((1.0, dict.fromkeys(cores, 0), 0.0), (2.0, {c: int(0.4 * tick) if c == cores[0] else 0 for c in cores}, 0.0))
    _threads.free_cores()  # the first window: 0 to 1 s
    assert _threads.free_cores() == max(1, n - 1)
    readings((1.0, {c: int(0.1 * tick) if c == cores[0] else 0 for c in cores}, 0.0))
    assert _threads.free_cores() == n


def test_free_cores_within_a_window_of_a_reading_returns_its_count_without_waiting(monkeypatch):
    tick = os.sysconf("SC_CLK_TCK")
    cores = sorted(os.sched_getaffinity(0))
    n = len(cores)
    sleeps = []
    it = iter([(0.0, dict.fromkeys(cores, 0), 0.0), (1.0, dict.fromkeys(cores, tick), float(n - 1)), (1.01, dict.fromkeys(cores, 0), 0.0)])
    monkeypatch.setattr(_threads, "_read", lambda: next(it))
    monkeypatch.setattr(_threads, "_last", None)
    monkeypatch.setattr(_threads.time, "sleep", sleeps.append)
    monkeypatch.setattr(_threads.time, "monotonic", lambda: 1.01)  # the clock of the readings
    assert _threads.free_cores() == max(1, n - 1)  # no reading yet: waits for a window (0 to 1 s)
    assert len(sleeps) == 1
    assert _threads.free_cores() == max(1, n - 1)  # 10 ms later: that window's count, no wait
    assert len(sleeps) == 1
    assert _threads._last[0] == 1.0  # the window goes on from the last reading


def test_a_partial_fit_loop_waits_for_the_free_cores_once(monkeypatch):
    """Many quick calls (a stream of small batches) measure the free cores without sleeping in each call."""
    sleeps = []
    real_sleep = _threads.time.sleep

    def sleep(s):
        sleeps.append(s)
        real_sleep(s)

    monkeypatch.setattr(_threads, "_last", None)
    monkeypatch.setattr(_threads.time, "sleep", sleep)
    X = np.random.default_rng(0).random((400, 16))
    enc = LocalCompetitiveEncoder(n_components=8, random_state=0)
    with threadpool_limits(limits=2, user_api="blas"):
        for i in range(0, 400, 10):
            enc.partial_fit(X[i : i + 10])
    assert len(sleeps) <= 1, sleeps


def test_fit_caps_blas_at_the_free_cores_and_restores_the_user_limit(monkeypatch):
    seen = []
    monkeypatch.setattr(_threads, "free_cores", lambda: 1)
    enc = LocalCompetitiveEncoder(n_components=8, max_iter=2, random_state=0)
    real_step = enc._step

    def step(*args):
        seen.append(max(_blas_threads()))
        return real_step(*args)

    monkeypatch.setattr(enc, "_step", step)
    X = np.random.default_rng(0).random((60, 16))
    with threadpool_limits(limits=2, user_api="blas"):
        enc.fit(X)
        assert max(_blas_threads()) == 2  # the user's limit is back
    assert seen and set(seen) == {1}


def test_one_thread_settings_are_not_measured(monkeypatch):
    def boom():
        raise AssertionError("free_cores called under a one-thread limit")

    monkeypatch.setattr(_threads, "free_cores", boom)
    with threadpool_limits(limits=1):
        KrotovPatchEncoder(n_components=4, window=3, max_iter=1, random_state=0).fit(np.random.default_rng(0).random((5, 8, 8)))


def test_compiled_fit_gives_the_same_weights_when_free_cores_change_mid_fit(monkeypatch):
    numba = pytest.importorskip("numba")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here")
    from sklhebb.rules._krotov_numba import KrotovStepper

    X = np.random.default_rng(0).random((40, 12, 12)).astype(np.float32)
    kw = dict(n_components=12, window=3, max_iter=2, batch_size=50, random_state=0)
    with threadpool_limits(limits=2, user_api="blas"):
        monkeypatch.setattr(_threads, "free_cores", lambda: 2)
        fixed = KrotovPatchEncoder(**kw).fit(X).components_
        flips = itertools.cycle([1, 2, 2, 1])
        monkeypatch.setattr(_threads, "free_cores", lambda: next(flips))
        monkeypatch.setattr(_threads, "_RECHECK", 0.0)  # measure before every step
        threads = []
        real = KrotovStepper.step_pieces
        monkeypatch.setattr(KrotovStepper, "step_pieces", lambda self, *a: (threads.append(numba.get_num_threads()), real(self, *a)))
        varied = KrotovPatchEncoder(**kw).fit(X).components_
    assert set(threads) == {1, 2}  # the kernel did run on one and on two threads
    np.testing.assert_array_equal(varied, fixed)


def test_torch_threads_are_capped_during_the_fit_and_restored(monkeypatch):
    torch = pytest.importorskip("torch")
    from sklhebb import _numba

    monkeypatch.setattr(_numba, "ENABLED", False)  # the array-API step (a torch CPU fit otherwise runs the compiled one)
    monkeypatch.setattr(_threads, "free_cores", lambda: 1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        enc = KrotovPatchEncoder(n_components=4, window=3, max_iter=1, random_state=0, backend="torch")
        real_step = enc._step

        def step(*args):
            seen.append(torch.get_num_threads())
            return real_step(*args)

        monkeypatch.setattr(enc, "_step", step)
        enc.fit(np.random.default_rng(0).random((5, 8, 8)))
        assert set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("free", [1, 2])
def test_torch_cpu_fit_runs_the_compiled_step_on_torchs_threads(monkeypatch, free):
    """A torch CPU fit runs the compiled kernel with torch's intra-op threads (capped at the free
    cores) as its budget, gives the NumPy fit's filters, and leaves torch's setting as it was."""
    torch = pytest.importorskip("torch")
    from sklhebb import _numba

    if not _numba.available():
        pytest.skip("numba is not available")
    budgets = []
    real = _numba.kernel_threads

    def kernel_threads(budget=None):
        budgets.append(budget)
        return real(budget)

    monkeypatch.setattr(_numba, "kernel_threads", kernel_threads)
    monkeypatch.setattr(_threads, "free_cores", lambda: free)
    X = np.random.default_rng(0).random((30, 9, 9)).astype(np.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        enc = KrotovPatchEncoder(n_components=6, window=3, max_iter=2, random_state=0, backend="torch").fit(torch.as_tensor(X))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert budgets == [free]
    ref = KrotovPatchEncoder(n_components=6, window=3, max_iter=2, random_state=0).fit(X)
    assert isinstance(enc.components_, np.ndarray)
    np.testing.assert_allclose(enc.components_, ref.components_, rtol=0, atol=1e-6)


def _spy_on_encode(monkeypatch, enc, before=None):
    """Replace ``enc._encode`` by one that records BLAS's thread count at each chunk (after ``before()``)."""
    seen = []
    real_encode = enc._encode

    def encode(*args):
        if before is not None:
            before()
        seen.append(max(_blas_threads()))
        return real_encode(*args)

    monkeypatch.setattr(enc, "_encode", encode)
    return seen


def test_transform_of_several_chunks_caps_blas_and_one_chunk_is_not_measured(monkeypatch):
    X = np.random.default_rng(0).random((12, 8, 8))
    enc = KrotovPatchEncoder(n_components=4, window=3, max_iter=1, chunk_size=4, random_state=0).fit(X)
    real_encode = enc._encode
    seen = _spy_on_encode(monkeypatch, enc)
    monkeypatch.setattr(_threads, "free_cores", lambda: 1)
    with threadpool_limits(limits=2, user_api="blas"):
        capped = enc.transform(X)  # 3 chunks
        assert max(_blas_threads()) == 2
        assert seen == [1, 1, 1]
        monkeypatch.setattr(_threads, "free_cores", lambda: (_ for _ in ()).throw(AssertionError("measured")))
        enc.transform(X[:4])  # one chunk: no measurement
    monkeypatch.setattr(enc, "_encode", real_encode)
    monkeypatch.setattr(_threads, "free_cores", lambda: 2)  # uncapped (a fresh reading, whatever the user's threads)
    np.testing.assert_array_equal(capped, enc.transform(X))


def test_transform_encodes_chunks_on_python_threads_with_blas_at_one_thread(monkeypatch):
    """Two free cores: the first chunk runs alone (it fixes the output's shape), the others on two
    Python threads with BLAS on one thread inside each, in order, the same numbers as one thread;
    the user's BLAS limit is back afterwards."""
    import threading

    X = np.random.default_rng(0).random((40, 8, 8))
    enc = KrotovPatchEncoder(n_components=4, window=3, max_iter=1, chunk_size=3, random_state=0).fit(X)
    with threadpool_limits(limits=1):
        one = enc.transform(X)
    names = set()
    both = threading.Barrier(2, timeout=10)

    def meet():
        if len(names) < 2 and threading.current_thread() is not threading.main_thread():
            both.wait()  # two workers are inside encode at the same moment
        names.add(threading.current_thread().name)

    seen = _spy_on_encode(monkeypatch, enc, meet)
    monkeypatch.setattr(_threads, "free_cores", lambda: 2)
    with threadpool_limits(limits=2, user_api="blas"):
        got = enc.transform(X)  # 14 chunks
        assert max(_blas_threads()) == 2
    assert len(seen) == 14 and seen[0] == 2 and set(seen[1:]) == {1}
    assert len(names - {threading.main_thread().name}) == 2
    np.testing.assert_array_equal(got, one)


def test_fit_threads_map_stops_on_the_first_error_and_raises_it(monkeypatch):
    monkeypatch.setattr(_threads, "free_cores", lambda: 2)
    done = []

    def piece(i):
        if i == 3:
            raise ValueError("piece 3")
        done.append(i)
        return i

    with threadpool_limits(limits=2, user_api="blas"), _threads.fit_threads(_numpy_backend()) as threads:
        assert threads.map(lambda i: i * i, range(7)) == [0, 1, 4, 9, 16, 25, 36]
        with pytest.raises(ValueError, match="piece 3"):
            threads.map(piece, range(200))
        assert max(_blas_threads()) == 2
    assert len(done) < 199


def _numpy_backend():
    from sklhebb._backend import resolve

    return resolve("numpy")


def test_free_cores_without_affinity_or_proc_counts_every_core(monkeypatch):
    """macOS and Windows have no os.sched_getaffinity and no /proc/stat: every core counts as free."""
    import sklhebb._threads as threads

    monkeypatch.delattr(threads.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(threads, "_last", None)  # no recent reading whose count would be returned again
    monkeypatch.setattr(threads, "_read", lambda: (_ for _ in ()).throw(OSError("no /proc/stat")))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 6)
    assert threads.free_cores() == 6
