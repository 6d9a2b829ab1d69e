"""Compiled fit step of Eq. (1)-(2) for the NumPy backend (numba, optional).

Imported only when numba is installed; :mod:`sklhebb._numba` decides when it
runs. One call does a whole minibatch: cut and normalise the patches,
currents, rank selection, the sparse Hebbian sum, decay, normalisation and
the weight update, on ``T`` threads.

Why a compiled kernel: with two threads, letting BLAS split the currents
product while NumPy ranks them on one thread is slower than one thread on
this kind of machine (measured: the 2-thread product of a (1000, 48) x
(48, 400) minibatch takes 0.27 ms alone and 0.7 ms when another core reads
its output between calls, because every cache line of the currents then
moves between cores). Here each thread cuts its own rows of the minibatch,
computes their currents with a one-thread BLAS call and ranks them where they
were computed; the threads only exchange the (K, N) sums and the updated
weights.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.extending import overload

from .._numba import launch_lock

__all__ = ["fit_step", "KrotovStepper"]


# ------------------------------------------------------------ rank selection
def _key(bits):
    """An integer that orders like the float whose bits are ``bits``.

    Non-negative floats order like their bit patterns, negative ones in
    reverse; flipping the low bits of the negative ones fixes that, and
    adding one to every negative key makes -0.0 tie with +0.0 as in NumPy.
    Integer max/min reductions vectorise where float ones do not. (Python
    reference; numba compiles the overload below, with constant shifts.)
    """
    k = bits ^ ((bits >> (8 * bits.itemsize - 1)) & np.iinfo(bits.dtype).max)
    return k + ((k >> (8 * bits.itemsize - 1)) & 1)


@overload(_key, inline="always")
def _key_numba(bits):
    if bits.bitwidth == 32:
        s, m, one = np.int32(31), np.int32(0x7FFFFFFF), np.int32(1)
    else:
        s, m, one = np.int64(63), np.int64(0x7FFFFFFFFFFFFFFF), np.int64(1)

    def impl(bits):
        k = bits ^ ((bits >> s) & m)
        return k + ((k >> s) & one)

    return impl


@njit(inline="always")
def _top2(bits, r, K, lowest):
    """Columns of ranks 1 and 2 of row r, as NumPy's argmax, masking, argmax.

    The order is larger value first and, among equal values, the smaller
    column. Three vectorised passes: the largest key; then, together, its first
    column, how often it occurs and the largest smaller key; then that key's
    first column. A tie for the largest value (rare) takes one more pass.
    """
    m1 = lowest
    for k in range(K):
        m1 = max(m1, _key(bits[r, k]))
    top = K
    n1 = 0
    m2 = lowest
    for k in range(K):
        key = _key(bits[r, k])
        top = min(top, k if key == m1 else K)
        n1 += key == m1
        m2 = max(m2, key if key < m1 else lowest)
    if n1 > 1:  # the value of rank 2 equals the winner's: its next column
        for k in range(top + 1, K):
            if _key(bits[r, k]) == m1:
                return top, k
    anti = K
    for k in range(K):
        anti = min(anti, k if _key(bits[r, k]) == m2 else K)
    return top, anti


# ------------------------------------------------------------------ patches
@njit(inline="always")
def _cut_rows(images, index, V, lo, hi, wy, wx, center):
    """V[r] = patch index[r] of ``images``, centred (optional) and unit-normalised.

    The patch order inside a window is (row, column, channel), as in
    :func:`sklhebb.image.extract_patches`; a row whose norm is below the
    smallest normal float becomes exact zeros, as in ``normalize_rows``.
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
        for dy in range(wy):
            start = ((i * np.uint64(H) + y + np.uint64(dy)) * np.uint64(W) + x) * np.uint64(C)
            for e in range(run):
                V[r, dy * run + e] = flat[start + np.uint64(e)]
        if center:  # shifted by the first entry, as normalize_rows: constant rows give zeros
            v0 = V[r, 0]
            for j in range(N):
                V[r, j] -= v0
            s = V[r, 0] * 0
            for j in range(N):
                s += V[r, j]
            mean = s / N
            for j in range(N):
                V[r, j] -= mean
        ss = V[r, 0] * 0
        for j in range(N):
            ss += V[r, j] * V[r, j]
        norm = np.sqrt(ss)
        inv = 1 / norm if norm > tiny else norm * 0
        for j in range(N):
            V[r, j] *= inv


# ---------------------------------------------------------------- the step
@njit(parallel=True, nogil=True, cache=True)
def fit_step(images, index, cut, center, wy, wx, V, B, M, Wt, p, rank, delta, lr, normalize, I, bits, S, c, dM, rowmax, lowest):
    """One minibatch of Eq. (1)-(2); updates ``M`` and ``Wt`` in place.

    images, index : the chunk (n, H, W, C) and the B flat patch indices of
        the minibatch (``cut=True``); with ``cut=False`` the normalised rows
        are already in ``V[:B]``.
    M : (K, N) synapses; Wt : (N, K) contiguous sign(M)|M|^(p-1) transposed,
        the currents' operand (M^T at p = 2), kept in step with M.
    I, bits : (T, ceil(B/T), K) per-block currents and their integer view.
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
            if cut:
                _cut_rows(images, index, V, lo, hi, wy, wx, center)
            It, bt = I[t], bits[t]
            np.dot(V[lo:hi], Wt, It[: hi - lo])
            for r in range(hi - lo):
                top, anti = _top2(bt, r, K, lowest)
                if rank == 1:
                    anti = top
                i_top, i_anti = It[r, top], It[r, anti]
                # g = 1 at rank 1 and -delta at rank m: Hebbian sum and decay coefficient
                for j in range(N):
                    S[t, top, j] += V[lo + r, j]
                for j in range(N):
                    S[t, anti, j] -= d * V[lo + r, j]
                c[t, top] += i_top
                c[t, anti] -= d * i_anti
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
                Wt[j, k] = w if p == 2 else np.sign(w) * np.abs(w) ** (p - 1)


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
        ibits = np.int32 if dt == np.float32 else np.int64
        self.lowest = ibits(np.iinfo(ibits).min)
        self.M = M
        self.Wt = np.empty((N, K), dt)
        self.Wt[...] = (M if p == 2 else np.sign(M) * np.abs(M) ** (p - 1)).T
        self.V = np.empty((int(batch_size), N), dt)
        self.I = np.empty((T, b, K), dt)
        self.bits = self.I.view(ibits)
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
        self._run(self._no_images, self._no_index, False, 0, 0.0)

    def step_patches(self, images, index, lr):
        """Cut patches ``index`` (flat, see PatchStream) of ``images`` and learn from them."""
        if self._chunk[0] is not images:
            # once per chunk, not per minibatch (column-major input, a pandas frame,
            # would otherwise be copied whole for every minibatch); always read-only,
            # so that read-only memmaps compile no second signature in mid-fit
            self._chunk = (images, _read_only(np.ascontiguousarray(images, dtype=self.M.dtype)))
        self._run(self._chunk[1], np.asarray(index, dtype=np.int64), True, len(index), lr)

    def step_rows(self, V, lr):
        """Learn from already normalised rows ``V``."""
        B = V.shape[0]
        self.V[:B] = V
        self._run(self._no_images, self._no_index, False, B, lr)

    def _run(self, images, index, cut, B, lr):
        if B > self.V.shape[0]:  # the kernel does not check bounds
            raise ValueError(f"{B} rows in a minibatch of at most {self.V.shape[0]}")
        wy, wx = self.window
        with launch_lock:
            fit_step(
                images,
                index,
                cut,
                self.center,
                wy,
                wx,
                self.V,
                B,
                self.M,
                self.Wt,
                self.p,
                self.rank,
                self.delta,
                float(lr),
                self.normalize,
                self.I,
                self.bits,
                self.S,
                self.c,
                self.dM,
                self.rowmax,
                self.lowest,
            )
