"""The compiled (numba) fit step and transform passes of KrotovPatchEncoder against the paper's equations and the NumPy path."""

import multiprocessing
import os
import threading

import numpy as np
import pytest

pytest.importorskip("numba")

from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from sklhebb import DivergenceError, KrotovPatchEncoder, _numba, rules  # noqa: E402
from sklhebb._backend import resolve  # noqa: E402
from sklhebb.image import PatchStream, gather_patches, normalize_rows  # noqa: E402
from sklhebb.rules._krotov_numba import KrotovStepper, pool_activation  # noqa: E402

from ._oracles import oracle_krotov_update, oracle_max_pool  # noqa: E402

bk = resolve("numpy")


def _stepper(M, B, T, **kw):
    args = dict(p=2.0, rank=2, delta=0.3, normalize=True, center=False, window=(3, 3))
    args.update(kw)
    return KrotovStepper(M, batch_size=B, n_threads=T, **args)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("p", [2.0, 3.0])
@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_compiled_step_matches_the_equation(dtype, normalize, p, rank, n_threads):
    """One minibatch: M + lr dM with dM from a float64 loop transcription of Eq. (1)-(2)."""
    rng = np.random.default_rng(rank + 10 * n_threads + int(p))
    K, N, B = 7, 5, 11
    M = rng.standard_normal((K, N))
    V = rng.standard_normal((B, N))
    want = M + 0.05 * oracle_krotov_update(M, V, rank, 0.3, p, normalize)
    got = M.astype(dtype)  # updated in place
    _stepper(got, B, n_threads, p=p, rank=rank, normalize=normalize).step_rows(V.astype(dtype), 0.05)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_compiled_step_breaks_ties_as_numpy_argmax(n_threads):
    """Integer currents with many ties: the same units win as with argmax/mask/argmax."""
    rng = np.random.default_rng(1)
    M = rng.integers(-2, 3, (30, 4)).astype(np.float64)
    V = rng.integers(-1, 2, (200, 4)).astype(np.float64)
    V[:5] = 0.0  # all currents equal (zero): unit 0 wins, unit 1 is second
    I = V @ M.T
    assert any(len(np.unique(row)) < len(row) for row in I)
    for rank in (1, 2):
        want = M + 0.1 * rules.krotov_update(M, V, rank=rank, delta=0.4)
        got = M.copy()
        _stepper(got, 200, n_threads, rank=rank, delta=0.4).step_rows(V, 0.1)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [2, 3, 4, 5, 7, 8, 9, 30])  # the ranking takes four units at a time: K % 4 = 0-3
def test_ranking_pass_is_argmax_mask_argmax(K, dtype):
    """The compiled ranking of transposed currents, ties everywhere: the units of argmax, then argmax with the winner masked."""
    from sklhebb.rules._krotov_numba import _top2

    rng = np.random.default_rng(K)
    It = rng.integers(-2, 3, (K, 300)).astype(dtype)  # (units, patches)
    It[:, :5] = 1.0  # all equal: unit 0 first, unit 1 second
    won = np.empty((2, 300), np.int32 if dtype == np.float32 else np.int64)
    cur = np.empty((2, 300), dtype)
    _top2(It, won[0], cur[0], won[1], cur[1])
    cols = np.arange(300)
    first = np.argmax(It, axis=0)
    masked = It.copy()
    masked[first, cols] = -np.inf
    second = np.argmax(masked, axis=0)
    np.testing.assert_array_equal(won[0], first)
    np.testing.assert_array_equal(won[1], second)
    np.testing.assert_array_equal(cur[0], It[first, cols])
    np.testing.assert_array_equal(cur[1], It[second, cols])


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("window", [(3, 3), (9, 8)])  # (9, 8): one patch = the whole image
def test_compiled_step_cuts_patches_as_the_stream(center, window):
    rng = np.random.default_rng(2)
    images = rng.random((5, 9, 8, 3)).astype(np.float32)
    images[1] = 0.5  # constant image: centred patches are exact zeros
    n_p = 5 * (9 - window[0] + 1) * (8 - window[1] + 1)
    index = rng.permutation(n_p)[: min(40, n_p)]
    win = window[0] if window[0] == window[1] else None
    if win is None:
        P = normalize_rows(bk, images.reshape(5, -1)[index], center=center)
    else:
        P = normalize_rows(bk, gather_patches(bk, images, win, index), center=center)
    M = rng.standard_normal((12, P.shape[1])).astype(np.float32)
    want = M + 0.05 * rules.krotov_update(M, P, rank=2, delta=0.3)
    st = _stepper(M, len(index), 2, center=center, window=window)
    st.step_patches(images, index, 0.05)
    np.testing.assert_allclose(st.V[: len(index)], P, rtol=1e-5, atol=1e-6)
    assert np.isfinite(st.V).all()
    np.testing.assert_allclose(M, want, rtol=2e-5, atol=2e-5)
    assert st.Wp is M  # at p = 2 the currents' operand is M itself


@pytest.mark.parametrize("n_threads", [1, 3])
def test_a_minibatch_across_chunks_is_the_step_on_its_rows(n_threads):
    """Pieces from several chunks: the earlier ones cut ahead, the last by the step's blocks."""
    rng = np.random.default_rng(5)
    chunks = [rng.random((n, 7, 7, 2)).astype(np.float32) for n in (2, 1, 3)]
    pieces = [(chunks[0], np.array([49, 3, 27])), (chunks[1], np.arange(25)[::-2]), (chunks[2], rng.permutation(75)[:9])]
    rows = np.concatenate([normalize_rows(bk, gather_patches(bk, c, 3, i), center=True) for c, i in pieces])
    M0 = rng.standard_normal((10, 18)).astype(np.float32)
    want = M0.copy()
    _stepper(want, 40, n_threads, center=True, window=(3, 3)).step_rows(rows, 0.05)
    st = _stepper(M0, 40, n_threads, center=True, window=(3, 3))
    st.step_pieces(pieces, 0.05)
    np.testing.assert_allclose(st.V[: len(rows)], rows, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(M0, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="rows in a minibatch"):
        st.step_pieces(pieces + [(chunks[0], np.arange(20))], 0.05)


def test_compiled_step_refuses_what_it_does_not_handle():
    M = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="rank"):
        _stepper(M, 10, 1, rank=3)
    with pytest.raises(ValueError, match="rank"):
        _stepper(np.zeros((1, 4), np.float32), 10, 1, rank=2)
    with pytest.raises(ValueError, match="C-contiguous"):
        _stepper(np.zeros((4, 3), np.float32).T, 10, 1)
    with pytest.raises(ValueError, match="rows in a minibatch"):
        _stepper(M, 2, 1, window=(1, 2)).step_patches(np.ones((1, 3, 2, 2), np.float32), np.arange(3), 0.1)


def test_epoch_indices_are_the_epoch_minibatches():
    """The kernel's stream gives the same minibatches as the row stream, across chunk seams."""
    rng = np.random.default_rng(3)
    X = rng.random((7, 6, 6, 2)).astype(np.float32)
    spans = set()
    for chunk, batch, shuffle in [(2, 37, True), (3, 16, False), (7, 1000, True), (1, 5, True)]:
        stream = PatchStream(bk, X, 3, batch, chunk, "float32", center=True)
        rows = list(stream.epoch(np.random.RandomState(0) if shuffle else None))
        items = list(stream.epoch_indices(np.random.RandomState(0) if shuffle else None))
        assert len(rows) == len(items)
        for r, (pieces, cut) in zip(rows, items):
            assert cut is None  # an unwhitened stream leaves every minibatch to the kernel
            cut = np.concatenate([normalize_rows(bk, gather_patches(bk, images, 3, index), center=True) for images, index in pieces])
            np.testing.assert_allclose(cut, r, rtol=1e-6, atol=1e-7)
        spans.update(len(pieces) for pieces, _ in items)
    assert spans == {1, 2}  # minibatches inside a chunk and across a seam were both checked


def _fit(X, enabled, monkeypatch, **kw):
    monkeypatch.setattr(_numba, "ENABLED", enabled)
    args = dict(n_components=16, window=3, batch_size=50, max_iter=2, learning_rate=0.05, random_state=0)
    args.update(kw)
    return KrotovPatchEncoder(**args).fit(X)


@pytest.mark.parametrize(
    "kw", [{}, {"p": 3.0, "rank": 1, "center": False}, {"normalize_update": False, "learning_rate": 1e-3}, {"window": None, "n_components": 6}]
)
def test_fit_with_and_without_the_compiled_step_agree(monkeypatch, kw):
    X = np.random.default_rng(4).random((30, 7, 7, 2))  # float64: no rank flips from rounding
    fast = _fit(X, True, monkeypatch, **kw)
    plain = _fit(X, False, monkeypatch, **kw)
    np.testing.assert_allclose(fast.components_, plain.components_, rtol=1e-9, atol=1e-10)
    assert fast.n_steps_ == plain.n_steps_


def test_compiled_fit_is_used_and_leaves_blas_threads_as_it_found_them(monkeypatch):
    import sklhebb.rules._krotov_numba as kn

    calls = []
    real = kn.fit_step

    def spy(*args):
        calls.append(args[16].shape[0])  # S: one block per kernel thread
        return real(*args)

    monkeypatch.setattr(kn, "fit_step", spy)
    X = np.random.default_rng(5).random((12, 7, 7, 1)).astype(np.float32)
    before = [(i["filepath"], i["num_threads"]) for i in threadpool_info()]
    with threadpool_limits(limits=1):
        KrotovPatchEncoder(n_components=8, window=3, max_iter=1, random_state=0).fit(X)
    assert calls and set(calls) == {1}  # a one-thread budget gives a one-thread kernel
    assert [(i["filepath"], i["num_threads"]) for i in threadpool_info()] == before


def test_partial_fit_with_the_compiled_step_keeps_the_old_filters_on_divergence(monkeypatch):
    monkeypatch.setattr(_numba, "ENABLED", True)
    X = np.random.default_rng(6).random((20, 8, 8, 1)).astype(np.float32)
    enc = KrotovPatchEncoder(n_components=10, window=3, normalize_update=False, learning_rate=1e-3, batch_size=20, random_state=0)
    enc.partial_fit(X)
    old = enc.components_
    kept = old.copy()
    enc.set_params(learning_rate=1e6)
    with pytest.raises(DivergenceError):
        enc.partial_fit(X)
    np.testing.assert_array_equal(enc.components_, kept)
    np.testing.assert_array_equal(old, kept)  # the kernel updated its own copy, not the fitted filters


def test_disable_switch_and_forked_children_use_plain_numpy(monkeypatch):
    monkeypatch.setenv("SKLHEBB_DISABLE_NUMBA", "1")
    assert not _numba.available()
    monkeypatch.delenv("SKLHEBB_DISABLE_NUMBA")
    assert _numba.available()
    monkeypatch.setattr(_numba, "_pid", os.getpid() + 1)  # as seen from a child forked after a compiled fit
    assert not _numba.available()


def _child_fit(q):
    X = np.random.default_rng(7).random((6, 6, 6, 1)).astype(np.float32)
    enc = KrotovPatchEncoder(n_components=4, window=3, max_iter=1, random_state=0).fit(X)
    q.put((_numba.available(), enc.components_))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_child_forked_after_a_compiled_fit_fits_without_openmp():
    X = np.random.default_rng(7).random((6, 6, 6, 1)).astype(np.float32)
    parent = KrotovPatchEncoder(n_components=4, window=3, max_iter=1, random_state=0).fit(X)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_child_fit, args=(q,))
    proc.start()
    used_kernel, components = q.get(timeout=60)
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert not used_kernel
    np.testing.assert_allclose(components, parent.components_, rtol=1e-5, atol=1e-6)


def test_fits_in_parallel_threads_equal_serial_fits():
    X = np.random.default_rng(8).random((16, 7, 7, 1))
    kws = [dict(n_components=8, window=3, max_iter=2, random_state=s) for s in range(4)]
    serial = [KrotovPatchEncoder(**kw).fit(X).components_ for kw in kws]
    out = [None] * 4

    def work(i):
        out[i] = KrotovPatchEncoder(**kws[i]).fit(X).components_

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(serial, out):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_epoch_snapshots_given_to_callbacks_are_not_updated_later():
    """The compiled step updates its weights in place; a callback's per-epoch model must not follow."""
    pytest.importorskip("sklearn.callback")

    class Keep:
        def __init__(self):
            self.snaps = []

        def setup(self, estimator, context):
            pass

        def on_fit_task_begin(self, estimator, context, **kwargs):
            pass

        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, metadata=None):
            if context.task_name == "epoch":
                self.snaps.append((fitted_estimator.components_, fitted_estimator.components_.copy()))
            return False

        def teardown(self, estimator, context):
            pass

    keep = Keep()
    X = np.random.default_rng(9).random((8, 8, 8, 1)).astype(np.float32)
    KrotovPatchEncoder(n_components=6, window=3, max_iter=3, batch_size=20, random_state=0).set_callbacks(keep).fit(X)
    assert len(keep.snaps) == 3
    for live, at_the_time in keep.snaps:
        np.testing.assert_array_equal(live, at_the_time)
    assert not np.array_equal(keep.snaps[0][1], keep.snaps[2][1])


def test_a_huge_batch_size_allocates_only_the_patches_there_are(monkeypatch):
    import sklhebb.rules._krotov_numba as kn

    sizes = []
    real = kn.KrotovStepper.__init__

    def spy(self, M, *, batch_size, **kw):
        sizes.append(batch_size)
        real(self, M, batch_size=batch_size, **kw)

    monkeypatch.setattr(kn.KrotovStepper, "__init__", spy)
    X = np.random.default_rng(10).random((3, 6, 6, 1)).astype(np.float32)
    enc = KrotovPatchEncoder(n_components=5, window=3, batch_size=10**9, max_iter=1, random_state=0).fit(X)
    assert sizes == [3 * 4 * 4]  # 48 patches: buffers of 48 rows, not 10**9
    assert enc.n_steps_ == 1


def test_a_kernel_that_fails_to_load_falls_back_to_plain_numpy_with_a_warning(monkeypatch):
    import sklhebb.rules._krotov_numba as kn

    def broken(self):
        raise RuntimeError("cannot cache function 'fit_step': no locator available")

    monkeypatch.setattr(kn.KrotovStepper, "warm_up", broken)
    monkeypatch.setattr(_numba, "_failed", False)
    X = np.random.default_rng(11).random((10, 7, 7, 1))
    before = [(i["filepath"], i["num_threads"]) for i in threadpool_info()]
    with pytest.warns(RuntimeWarning, match="no locator available"):
        got = KrotovPatchEncoder(n_components=6, window=3, max_iter=1, random_state=0).fit(X)
    assert not _numba.available()  # from now on, no more tries (and no more warnings)
    assert [(i["filepath"], i["num_threads"]) for i in threadpool_info()] == before
    monkeypatch.setattr(_numba, "ENABLED", False)
    want = KrotovPatchEncoder(n_components=6, window=3, max_iter=1, random_state=0).fit(X)
    np.testing.assert_array_equal(got.components_, want.components_)


def test_warm_up_leaves_the_weights_unchanged():
    M = np.random.default_rng(12).standard_normal((9, 4)).astype(np.float32)
    for p in (2.0, 3.0):
        st = _stepper(M.copy(), 5, 2, p=p)
        st.warm_up()
        np.testing.assert_array_equal(st.M, M)


def _blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_blas_limits_keep_working_in_other_threads_after_compiled_fits():
    """threadpoolctl lets only the thread that set an OpenBLAS limit change it until its block ends."""
    from concurrent.futures import ThreadPoolExecutor

    X = np.random.default_rng(13).random((30, 8, 8, 1)).astype(np.float32)
    before = _blas_threads()
    KrotovPatchEncoder(n_components=6, window=3, max_iter=1, random_state=0).fit(X)
    seen = []

    def limited():
        with threadpool_limits(limits=1, user_api="blas"):
            seen.append(_blas_threads())

    t = threading.Thread(target=limited)
    t.start()
    t.join()
    assert seen == [[1] * len(before)]
    # overlapping compiled fits in a pool: BLAS ends as it began
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(KrotovPatchEncoder(n_components=6, window=3, max_iter=m, random_state=0).fit, X) for m in (1, 4)]
        [f.result() for f in futures]
    assert _blas_threads() == before


def test_a_chunk_is_made_contiguous_once_not_per_minibatch(monkeypatch):
    import sklhebb.rules._krotov_numba as kn

    calls = []
    real = kn._read_only
    monkeypatch.setattr(kn, "_read_only", lambda a: calls.append(a.shape) or real(a))
    X = np.asfortranarray(np.random.default_rng(14).random((40, 36)).astype(np.float32))  # a column-major table
    enc = KrotovPatchEncoder(n_components=5, window=None, batch_size=4, max_iter=1, shuffle=False, chunk_size=20, random_state=0).fit(X)
    assert enc.n_steps_ == 10
    assert calls.count((20, 1, 1, 36)) == 2  # two chunks of 20 rows, ten minibatches


def test_read_only_memmap_compiles_no_second_kernel(tmp_path):
    import sklhebb.rules._krotov_numba as kn

    X = np.random.default_rng(15).random((12, 7, 7, 2)).astype(np.float32)
    KrotovPatchEncoder(n_components=5, window=3, max_iter=1, random_state=0).fit(X)
    np.save(tmp_path / "x.npy", X)
    compiled = set(kn.fit_step.signatures)
    Xr = np.load(tmp_path / "x.npy", mmap_mode="r")
    a = KrotovPatchEncoder(n_components=5, window=3, max_iter=1, shuffle=False, random_state=0).fit(Xr)
    assert set(kn.fit_step.signatures) == compiled
    b = KrotovPatchEncoder(n_components=5, window=3, max_iter=1, shuffle=False, random_state=0).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)


def test_constant_patches_centre_to_exact_zeros_on_both_paths(monkeypatch):
    """Values like k/255 do not centre exactly by x - mean(x); normalised, the rounding noise became
    a unit vector, and a different one on each path."""
    k = np.arange(1, 255, dtype=np.float64) / 255
    for dt in (np.float32, np.float64):
        P = np.repeat(k.astype(dt)[:, None], 48, axis=1)
        np.testing.assert_array_equal(normalize_rows(bk, P, center=True), 0)
        images = np.repeat(np.repeat(k.astype(dt)[:, None, None, None], 4, 1), 4, 2)[..., [0, 0, 0]]  # (254, 4, 4, 3)
        st = _stepper(np.ones((3, 48), dt), 254, 2, center=True, window=(4, 4))
        st.step_patches(images, np.arange(254), 0.1)
        np.testing.assert_array_equal(st.V, 0)
    # piecewise-constant images on the 1/255 grid: both paths learn the same filters
    rng = np.random.default_rng(16)
    X = np.kron(rng.integers(0, 256, (12, 3, 3, 1)) / 255, np.ones((1, 4, 4, 1)))  # (12, 12, 12, 1)
    fast = _fit(X, True, monkeypatch, window=4, n_components=10, shuffle=False)
    plain = _fit(X, False, monkeypatch, window=4, n_components=10, shuffle=False)
    np.testing.assert_allclose(fast.components_, plain.components_, rtol=1e-9, atol=1e-10)


# ------------------------------------------------------------ the transform
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("power", [1, 2, 3, 0.5, 2.5])
@pytest.mark.parametrize(
    ("grid", "size", "stride"), [((2, 6, 5), 3, 2), ((1, 9, 9), 3, 3), ((2, 7, 5), 2, 2), ((1, 11, 10), 4, 6), ((1, 5, 6), 9, 1), ((2, 4, 4), 1, 1)]
)
def test_pool_activation_matches_a_loop_over_windows(grid, size, stride, power, dtype):
    """ReLU(max over each window)^power (Eq. 3 after the pooling), a float64 loop over windows."""
    n, oh, ow = grid
    K = 5
    cos = np.random.default_rng(16).uniform(-1, 1, (n * oh * ow, K)).astype(dtype)
    cos[:, 0] = -0.5  # a unit below zero everywhere: exact zeros after the ReLU
    got = pool_activation(cos, grid, size, stride, power)
    want = np.maximum(oracle_max_pool(cos.astype(np.float64).reshape(n, oh, ow, K), size, stride), 0.0) ** power
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-13, atol=0)
    assert (got[..., 0] == 0).all()


@pytest.mark.parametrize(
    ("shape", "params"),
    [
        ((9, 12, 14, 1), {}),
        ((9, 12, 14, 1), {"stride": 2, "power": 3}),
        ((9, 12, 14, 1), {"power": 0.5, "pool_size": 40, "pool_stride": 1}),
        ((9, 11, 9, 3), {"window": 3, "pool_size": 3, "pool_stride": 2, "center": False}),
        ((9, 11, 9, 3), {"whiten": 0.1}),
        ((9, 12, 14, 1), {"output_layout": "image", "pool_size": 1, "pool_stride": 1}),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_transform_gives_the_numpy_paths_features(monkeypatch, shape, params, dtype):
    import sklhebb.rules._krotov_numba as kn

    pooled = []
    real = kn.pool_activation
    monkeypatch.setattr(kn, "pool_activation", lambda *a: pooled.append(a[1]) or real(*a))
    X = np.random.default_rng(17).random(shape).astype(dtype)
    X[0, :6, :6] = 0.0  # black patches: zeros, not NaN, on both paths
    enc = KrotovPatchEncoder(n_components=6, **{"window": 5, **params}, max_iter=1, random_state=0).fit(X)
    monkeypatch.setattr(_numba, "ENABLED", True)
    got = enc.transform(X)
    assert pooled[0] == (1, 1, 1) and len(pooled) > 1  # the warm-up, then the chunks: the compiled passes ran
    monkeypatch.setattr(_numba, "ENABLED", False)
    n_calls = len(pooled)
    want = enc.transform(X)
    assert len(pooled) == n_calls  # the array path
    assert got.dtype == want.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6 if dtype == np.float32 else 1e-14)


def test_a_transform_kernel_that_fails_to_load_falls_back_to_plain_numpy_with_a_warning(monkeypatch):
    import sklhebb.rules._krotov_numba as kn

    X = np.random.default_rng(18).random((6, 9, 9, 1))
    enc = KrotovPatchEncoder(n_components=4, window=3, max_iter=1, random_state=0).fit(X)
    monkeypatch.setattr(_numba, "ENABLED", False)
    want = enc.transform(X)
    monkeypatch.setattr(_numba, "ENABLED", True)

    def broken(*args):
        raise RuntimeError("cannot cache function '_pool_activation': no locator available")

    monkeypatch.setattr(kn, "pool_activation", broken)
    monkeypatch.setattr(_numba, "_failed", False)
    with pytest.warns(RuntimeWarning, match="no locator available"):
        got = enc.transform(X)
    assert not _numba.available()
    np.testing.assert_array_equal(got, want)
