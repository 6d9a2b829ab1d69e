"""Compiled fit step of Eq. (1)-(2), and the NNL-CONV transform's passes, for the NumPy backend (numba, optional).

Imported only when numba is installed; :mod:`sklhebb._numba` decides when it
runs. One call does a whole minibatch: cut and normalise the patches,
currents, rank selection, the sparse Hebbian sum, decay, normalisation and
the weight update, on ``T`` threads. The transform cuts its patches with the
same code (:func:`cut_patches`) and pools the cosines and applies ReLU^n in
one pass (:func:`pool_activation`); both release the GIL, so that a
transform's chunks on several Python threads (:meth:`sklhebb._threads.FitThreads.map`)
run in parallel between their products.

Why a compiled kernel: with two threads, letting BLAS split the currents
product while NumPy ranks them on one thread is slower than one thread on
this kind of machine (measured: the 2-thread product of a (1000, 48) x
(48, 400) minibatch takes 0.27 ms alone and 0.7 ms when another core reads
its output between calls, because every cache line of the currents then
moves between cores). Here each thread cuts its own rows of the minibatch,
computes their currents with a one-thread BLAS call and ranks them where they
were computed; the threads only exchange the (K, N) sums and the updated
weights.

The currents are formed transposed (unit by patch), so that the ranking is one
pass whose inner loop runs over patches and vectorises, and the cut, the
ranking and the Hebbian sums are separate compiled functions called from the
parallel loop: inlined into it, LLVM left their loops scalar (the ranking of
1,000 x 400 currents: 0.58 ms inlined against 0.16 ms called, one thread).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._numba import launch_lock
from ..image import pooled_size

__all__ = ["fit_step", "KrotovStepper", "cut_patches", "pool_activation"]


# ------------------------------------------------------------ rank selection
@njit(inline="always")
def _rank(x, k, m1, a1, m2, a2):
    """One unit's current ``x`` (unit ``k``) against a patch's ranks 1 and 2 so far (currents m, units a)."""
    g1 = x > m1
    g2 = x > m2
    m2 = m1 if g1 else (x if g2 else m2)
    a2 = a1 if g1 else (k if g2 else a2)
    m1 = x if g1 else m1
    a1 = k if g1 else a1
    return m1, a1, m2, a2


@njit(nogil=True, cache=True)
def _top2(It, a1, m1, a2, m2):
    """Units of ranks 1 and 2 of each patch (column of ``It``), and their currents.

    ``It`` holds the currents transposed, one unit per row, so the pass walks
    the units once and keeps, for every patch at once, the largest current seen
    and the largest of the others; the patch loop is elementwise and
    vectorises. Strict comparisons in unit order give NumPy's order: larger
    value first and, among equal values, the smaller unit (a unit equal to the
    winner that comes later is second, as with argmax, mask, argmax).

    Four units are ranked per visit of a patch, so that its ranks stay in
    registers between them: the patches' ranks are loaded and stored once for
    four units instead of once per unit (1,000 x 400 float32 currents, one
    thread: 42-47 us against 58-76 us one unit at a time).
    """
    K, n = It.shape
    for j in range(n):
        m1[j] = -np.inf
        m2[j] = -np.inf
        a1[j] = 0
        a2[j] = 0
    k0 = 0
    while k0 < K:
        if k0 + 4 <= K:
            r0, r1, r2, r3 = It[k0], It[k0 + 1], It[k0 + 2], It[k0 + 3]
            k = a1.dtype.type(k0)
            for j in range(n):
                s1, b1, s2, b2 = _rank(r0[j], k, m1[j], a1[j], m2[j], a2[j])
                s1, b1, s2, b2 = _rank(r1[j], k + 1, s1, b1, s2, b2)
                s1, b1, s2, b2 = _rank(r2[j], k + 2, s1, b1, s2, b2)
                m1[j], a1[j], m2[j], a2[j] = _rank(r3[j], k + 3, s1, b1, s2, b2)
            k0 += 4
        else:  # the last K % 4 units
            r0 = It[k0]
            k = a1.dtype.type(k0)
            for j in range(n):
                m1[j], a1[j], m2[j], a2[j] = _rank(r0[j], k, m1[j], a1[j], m2[j], a2[j])
            k0 += 1


# ------------------------------------------------------------------ patches
@njit(nogil=True, cache=True, fastmath={"reassoc"})
def _cut_rows(images, index, V, lo, hi, wy, wx, center):
    """V[r] = patch index[r] of ``images``, centred (optional) and unit-normalised.

    The patch order inside a window is (row, column, channel), as in
    :func:`sklhebb.image.extract_patches`; a row whose norm is below the
    smallest normal float becomes exact zeros, as in ``normalize_rows``.
    Compiled with re-association allowed, so that the sums over a row
    vectorise: the rows equal ``normalize_rows``'s within float rounding.
    """
    H, W, C = images.shape[1], images.shape[2], images.shape[3]
    ow = np.uint64(W - wx + 1)
    per = np.uint64(H - wy + 1) * ow
    N = V.shape[1]
    run = wx * C  # one window row: contiguous in the image
    flat = images.reshape(-1)
    tiny = np.finfo(V.dtype).tiny
    for r in range(lo, hi):
        q = np.uint64(index[r])
        i = q // per
        y = (q % per) // ow
        x = (q % per) % ow
        first = ((i * np.uint64(H) + y) * np.uint64(W) + x) * np.uint64(C)
        # centred: shifted by the first entry as it is copied, as normalize_rows shifts (constant rows give zeros)
        v0 = flat[first] if center else flat[first] * 0
        for dy in range(wy):
            start = first + np.uint64(dy) * np.uint64(W) * np.uint64(C)
            for e in range(run):
                V[r, dy * run + e] = flat[start + np.uint64(e)] - v0
        ss = V[r, 0] * 0
        if center:
            s = V[r, 0] * 0
            for j in range(N):
                s += V[r, j]
            mean = s / N
            for j in range(N):
                e = V[r, j] - mean
                V[r, j] = e
                ss += e * e
        else:
            for j in range(N):
                ss += V[r, j] * V[r, j]
        norm = np.sqrt(ss)
        inv = 1 / norm if norm > tiny else norm * 0
        for j in range(N):
            V[r, j] *= inv


@njit(nogil=True, cache=True)
def _hebbian_sums(V, a1, m1, a2, m2, d, S, c):
    """S += g^T V and c += sum of g * currents, with g = 1 at rank 1 and -delta at rank 2.

    Row r of ``V`` adds to unit ``a1[r]`` (current ``m1[r]``) and, times
    -delta, to unit ``a2[r]`` (``m2[r]``); the sparse form of Eq. (2)'s sum.
    """
    N = V.shape[1]
    for r in range(V.shape[0]):
        top, anti = a1[r], a2[r]
        for j in range(N):
            S[top, j] += V[r, j]
        for j in range(N):
            S[anti, j] -= d * V[r, j]
        c[top] += m1[r]
        c[anti] -= d * m2[r]


# ---------------------------------------------------------------- the step
@njit(parallel=True, nogil=True, cache=True)
def fit_step(images, index, cut, first, center, wy, wx, V, B, M, Wp, p, rank, delta, lr, normalize, I, won, cur, S, c, dM, rowmax):
    """One minibatch of Eq. (1)-(2); updates ``M`` and ``Wp`` in place.

    images, index : the chunk (n, H, W, C) and the flat patch indices of
        rows ``first:B`` of the minibatch (``cut=True``); rows ``:first``
        (the part of a minibatch that began in the previous chunk), and with
        ``cut=False`` all B rows, are already normalised in ``V``.
    M : (K, N) synapses; Wp : (K, N) sign(M)|M|^(p-1), the currents' operand,
        kept in step with M (M itself at p = 2).
    I : (T, K * ceil(B/T)) per-block currents, transposed (unit by patch).
    won, cur : (T, 2, ceil(B/T)) per-block units of ranks 1 and 2 and their currents.
    S, c : (T, K, N) and (T, K) per-block Hebbian sums and decay coefficients.
    dM, rowmax : (K, N) and (K,) scratch.

    Block t holds rows [t*b, (t+1)*b) of the minibatch (b = ceil(B/T)) and
    units [t*k, (t+1)*k) of the update; numba runs the T blocks on as many
    threads as it is set to, and the blocks' sums add up in block order, so
    the result does not depend on that number.
    """
    T = S.shape[0]
    K, N = M.shape
    b = (B + T - 1) // T
    d = M.dtype.type(delta)
    lrt = M.dtype.type(lr)
    # rows: cut, currents, ranks, Hebbian sums (thread-local)
    for t in prange(T):
        lo = t * b
        hi = min(B, lo + b)
        for k in range(K):
            c[t, k] = 0
            for j in range(N):
                S[t, k, j] = 0
        if hi > lo:
            n = hi - lo
            if cut and hi > max(lo, first):
                _cut_rows(images, index, V[first:], max(lo, first) - first, hi - first, wy, wx, center)
            It = I[t, : K * n].reshape(K, n)
            np.dot(Wp, V[lo:hi].T, It)
            a1, a2, m1, m2 = won[t, 0], won[t, 1], cur[t, 0], cur[t, 1]
            _top2(It, a1, m1, a2, m2)
            if rank == 1:
                a2, m2 = a1, m1
            _hebbian_sums(V[lo:hi], a1, m1, a2, m2, d, S[t], c[t])
    # units: dM = sum_t S_t - (sum_t c_t) M, and each unit's largest |dM|
    kb = (K + T - 1) // T
    for t in prange(T):
        for k in range(t * kb, min(K, (t + 1) * kb)):
            ck = c[0, k]
            for j in range(N):
                dM[k, j] = S[0, k, j]
            for s in range(1, T):
                ck += c[s, k]
                for j in range(N):
                    dM[k, j] += S[s, k, j]
            mk = M.dtype.type(0)
            for j in range(N):
                e = dM[k, j] - ck * M[k, j]
                dM[k, j] = e
                mk = max(mk, abs(e))
            rowmax[k] = mk
    # the reference code's normalisation: largest change = learning rate
    scale = M.dtype.type(1)
    if normalize:
        mx = rowmax.max()
        if mx > 1e-30:
            scale = mx
    for t in prange(T):
        for k in range(t * kb, min(K, (t + 1) * kb)):
            for j in range(N):
                w = M[k, j] + lrt * (dM[k, j] / scale)
                M[k, j] = w
                if p != 2:
                    Wp[k, j] = np.sign(w) * np.abs(w) ** (p - 1)


def _read_only(a):
    """A read-only view: the one array type the kernel is compiled for (no copy)."""
    v = a.view()
    v.flags.writeable = False
    return v


class KrotovStepper:
    """Buffers for :func:`fit_step` over one fit: a minibatch at a time, in place.

    ``M`` is the caller's (K, N) C-contiguous array, updated in place.
    ``n_threads`` is the most threads the step will run on: each minibatch
    is cut into that many blocks, and any number of numba threads up to it
    gives the same weights.
    """

    def __init__(self, M, *, batch_size, n_threads, p, rank, delta, normalize, center, window):
        K, N = M.shape
        if rank not in (1, 2) or rank > K:
            raise ValueError(f"the compiled step handles rank 1 or 2 with rank <= n_components; got rank={rank}, {K} units")
        if M.dtype not in (np.float32, np.float64) or not M.flags.c_contiguous:
            raise ValueError("M must be a C-contiguous float32 or float64 array")
        T = max(1, int(n_threads))
        b = -(-int(batch_size) // T)
        dt = M.dtype
        self.M = M
        # the currents' operand: M itself at p = 2 (the kernel then writes it once)
        self.Wp = M if p == 2 else np.ascontiguousarray(np.sign(M) * np.abs(M) ** (p - 1))
        self.V = np.empty((int(batch_size), N), dt)
        self.I = np.empty((T, K * b), dt)
        # unit indices as wide as the currents, so that the ranking pass vectorises
        self.won = np.empty((T, 2, b), np.int32 if dt == np.float32 else np.int64)
        self.cur = np.empty((T, 2, b), dt)
        self.S = np.empty((T, K, N), dt)
        self.c = np.empty((T, K), dt)
        self.dM = np.empty((K, N), dt)
        self.rowmax = np.empty(K, dt)
        self.p, self.rank, self.delta, self.normalize, self.center = float(p), int(rank), float(delta), bool(normalize), bool(center)
        self.window = window  # (wy, wx)
        self._no_images = _read_only(np.zeros((1, 1, 1, 1), dt))
        self._no_index = np.zeros(1, np.int64)
        self._chunk = (None, None)  # (the stream's chunk, its C-contiguous read-only form)

    def warm_up(self):
        """Compile (or load) the kernel for these buffers' types; leaves M unchanged."""
        self._run(self._no_images, self._no_index, False, 0, 0, 0.0)

    def step_patches(self, images, index, lr):
        """Cut patches ``index`` (flat, see PatchStream) of ``images`` and learn from them."""
        self.step_pieces([(images, index)], lr)

    def step_pieces(self, pieces, lr):
        """Learn from one minibatch given as ``(images, index)`` pieces, in row order.

        A minibatch that spans chunks comes as several pieces: those before the
        last are cut here on one thread, the last by the step's threads.
        """
        first = 0
        for images, index in pieces[:-1]:
            n = self._check_rows(first + len(index))
            _cut_rows(self._images(images), np.asarray(index, dtype=np.int64), self.V[first:n], 0, n - first, *self.window, self.center)
            first = n
        images, index = pieces[-1]
        self._run(self._images(images), np.asarray(index, dtype=np.int64), True, first, first + len(index), lr)

    def step_rows(self, V, lr):
        """Learn from already normalised rows ``V``."""
        B = self._check_rows(V.shape[0])
        self.V[:B] = V
        self._run(self._no_images, self._no_index, False, 0, B, lr)

    def _images(self, images):
        if self._chunk[0] is not images:
            # once per chunk, not per minibatch (column-major input, a pandas frame,
            # would otherwise be copied whole for every minibatch); always read-only,
            # so that read-only memmaps compile no second signature in mid-fit
            self._chunk = (images, _read_only(np.ascontiguousarray(images, dtype=self.M.dtype)))
        return self._chunk[1]

    def _check_rows(self, B):
        if B > self.V.shape[0]:  # the kernel does not check bounds
            raise ValueError(f"{B} rows in a minibatch of at most {self.V.shape[0]}")
        return B

    def _run(self, images, index, cut, first, B, lr):
        self._check_rows(B)
        wy, wx = self.window
        with launch_lock:
            fit_step(
                images,
                index,
                cut,
                first,
                self.center,
                wy,
                wx,
                self.V,
                B,
                self.M,
                self.Wp,
                self.p,
                self.rank,
                self.delta,
                float(lr),
                self.normalize,
                self.I,
                self.won,
                self.cur,
                self.S,
                self.c,
                self.dM,
                self.rowmax,
            )


# ------------------------------------------------------------ the transform
@njit(nogil=True, cache=True, fastmath={"nnan", "ninf", "nsz"})
def _pool_activation(cos, oh, ow, size_y, size_x, stride, int_power, power, rows, out):
    """out[i, py, px] = ReLU(max of ``cos`` over window (py, px) of image i)^power.

    ``cos``: (n * oh * ow, K), one row per position of each image in C order.
    Separable: the maximum over ``size_y`` rows for every column first (into
    ``rows``, (ph, ow, K)), then over ``size_x`` columns of that; the inner
    loops run over the K contiguous units and vectorise. ReLU commutes with
    the max, so it is applied once per pooled value. ``int_power`` > 0: the
    power as repeated products (``power`` is that integer), else ``**``.
    """
    K = cos.shape[1]
    n, ph, pw = out.shape[0], out.shape[1], out.shape[2]
    span = (pw - 1) * stride + size_x  # the columns some window reads
    for i in range(n):
        base = i * oh * ow
        for py in range(ph):
            for x in range(span):
                r = rows[py, x]
                c = cos[base + py * stride * ow + x]
                for k in range(K):
                    r[k] = c[k]
                for dy in range(1, size_y):
                    c = cos[base + (py * stride + dy) * ow + x]
                    for k in range(K):
                        r[k] = max(r[k], c[k])
        for py in range(ph):
            for px in range(pw):
                o = out[i, py, px]
                r = rows[py, px * stride]
                for k in range(K):
                    o[k] = max(r[k], 0)
                for dx in range(1, size_x):
                    r = rows[py, px * stride + dx]
                    for k in range(K):
                        o[k] = max(o[k], r[k])
                if int_power > 1:
                    for k in range(K):
                        v = o[k]
                        for _ in range(int_power - 1):
                            o[k] *= v
                elif int_power == 0:
                    for k in range(K):
                        o[k] = o[k] ** power


def cut_patches(images, index, window, center, dtype):
    """Rows: patches ``index`` (flat, stride-1 grid) of ``images``, centred (optional), unit-normalised.

    The rows of :func:`sklhebb.image.extract_patches` followed by
    ``normalize_rows`` (within float rounding), cut straight from the images.
    """
    images = _read_only(np.ascontiguousarray(images, dtype=dtype))  # the fit's signature: compiled once
    wy, wx = window
    V = np.empty((len(index), wy * wx * images.shape[3]), dtype)
    _cut_rows(images, np.asarray(index, dtype=np.int64), V, 0, len(index), wy, wx, bool(center))
    return V


def pool_activation(cos, grid, size, stride, power):
    """ReLU(max-pooled ``cos``)^power, (n, ph, pw, K), from the (n * oh * ow, K) cosines of a ``grid`` (n, oh, ow).

    The numbers of :func:`sklhebb.image.max_pool`, then ``maximum(., 0) ** power``
    (an integer power as repeated products: within float rounding of ``**``).
    """
    n, oh, ow = grid
    K = cos.shape[1]
    ph, pw = pooled_size(oh, size, stride), pooled_size(ow, size, stride)
    out = np.empty((n, ph, pw, K), cos.dtype)
    rows = np.empty((ph, ow, K), cos.dtype)
    power = float(power)
    int_power = int(power) if power.is_integer() and power <= 16 else 0
    _pool_activation(np.ascontiguousarray(cos), oh, ow, min(size, oh), min(size, ow), stride, int_power, power, rows, out)
    return out
