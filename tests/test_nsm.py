"""NSMEncoder and the similarity matching rules (Obeid et al. 2019; Bahroun et al. 2023).

Oracles are literal loop-based float64 transcriptions of the papers' equations,
written here independently of sklhebb/rules/nsm.py.
"""

import math
import pickle
import warnings

import numpy as np
import pytest

from sklhebb import rules
from sklhebb.encoders.nsm import NSMEncoder
from sklhebb.rules.structure import local_structure

ACTIVATIONS = ["relu", "capped_relu", "tanh", "linear"]


# ------------------------------------------------------------------ oracles
def f_scalar(u, activation, lam=0.0, b=1.0):
    if activation == "relu":
        return max(u - lam, 0.0)
    if activation == "capped_relu":
        return min(max(u - lam, 0.0), b)
    if activation == "tanh":
        return math.tanh(u)
    return u


def fixed_point_residual_loop(W, L, X, R, activation, lam=0.0, b=1.0):
    """max over t of max_i |f(sum_j W_ij x_j - sum_k (L_ik - delta_ik) r_k) - r_i| / max(1, max_i |W x|_i)."""
    worst = 0.0
    for t in range(X.shape[0]):
        drive = [sum(W[i, j] * X[t, j] for j in range(W.shape[1])) for i in range(W.shape[0])]
        scale = max(1.0, max(abs(d) for d in drive))
        for i in range(W.shape[0]):
            u = drive[i] - sum((L[i, k] - (1.0 if i == k else 0.0)) * R[t, k] for k in range(L.shape[0]))
            worst = max(worst, abs(f_scalar(u, activation, lam, b) - R[t, i]) / scale)
    return worst


def random_pd(rng, n, scale=0.5):
    A = rng.standard_normal((n, n)) * scale / math.sqrt(n)
    return np.eye(n) + A @ A.T


def lowrank_data(rng, n, d, rank=5, noise=0.05, nonneg=True):
    A = np.abs(rng.standard_normal((rank, d)))
    Z = rng.standard_normal((n, rank))
    Z = np.abs(Z) if nonneg else Z
    X = Z @ A / rank + noise * rng.standard_normal((n, d))
    return (X / np.linalg.norm(X, axis=1).mean()).astype(np.float32)


# ------------------------------------------------------------ rule oracles
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_matches_scalar_formula(activation):
    rng = np.random.RandomState(0)
    u = rng.standard_normal((5, 7)) * 2
    got = rules.nsm_activation(u, activation, threshold=0.3, cap=0.8)
    lam = 0.0 if activation in ("tanh", "linear") else 0.3
    want = np.array([[f_scalar(v, activation, lam, 0.8) for v in row] for row in u])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dynamics_reach_fixed_point_oracle(activation):
    """Obeid Eq. (1): the returned r satisfies r = f(W x - (L - I) r) within tol."""
    rng = np.random.RandomState(1)
    K, N, B = 6, 5, 8
    W = rng.standard_normal((N, K))
    L = random_pd(rng, N)
    X = rng.standard_normal((B, K))
    lam = 0.1 if activation in ("relu", "capped_relu") else 0.0
    tol = 1e-7
    R, k = rules.nsm_fixed_point(X @ W.T, L, activation=activation, threshold=lam, cap=0.7, tol=tol, max_iter=10000)
    assert k < 10000
    assert fixed_point_residual_loop(W, L, X, R, activation, lam, 0.7) <= tol * (1 + 1e-6)
    if activation in ("relu", "capped_relu"):
        assert R.min() >= 0
    if activation == "capped_relu":
        assert R.max() <= 0.7
    if activation == "linear":  # the principal subspace fixed point r = L^-1 W x
        np.testing.assert_allclose(R, np.linalg.solve(L, W @ X.T).T, atol=1e-5)


def test_dynamics_row_independent_and_counts_steps():
    rng = np.random.RandomState(2)
    W, L = rng.standard_normal((5, 6)), random_pd(rng, 5, scale=2.0)
    X = rng.standard_normal((10, 6))
    R, k = rules.nsm_fixed_point(X @ W.T, L, tol=1e-6, max_iter=500)
    R3, k3 = rules.nsm_fixed_point(X[3:4] @ W.T, L, tol=1e-6, max_iter=500)
    np.testing.assert_allclose(R3, R[3:4], rtol=1e-12, atol=1e-12)
    assert 1 <= k3 <= k < 500
    _, k1 = rules.nsm_fixed_point(X @ W.T, L, tol=1e-6, max_iter=1)
    assert k1 == 1


@pytest.mark.parametrize("accelerate", [False, True])
@pytest.mark.parametrize("start", ["linear", "zero"])
@pytest.mark.parametrize("check_every", [1, 3])
@pytest.mark.parametrize("activation", ["relu", "capped_relu", "linear"])
def test_sparse_checks_and_starts_keep_the_per_row_guarantee(activation, check_every, start, accelerate):
    """Testing every k steps, freezing rows and dropping them in groups, from either start: every row
    still satisfies the fixed-point bound, its result does not depend on the other rows, and the
    step count is a multiple of check_every (or max_iter)."""
    rng = np.random.RandomState(31)
    K, N, B = 6, 5, 60
    W = rng.standard_normal((N, K))
    A = rng.standard_normal((N, N))
    L = A @ A.T / N + 0.05 * np.eye(N)  # ill-conditioned: rows converge at very different steps
    X = rng.standard_normal((B, K)) * rng.uniform(0.01, 3.0, (B, 1))
    lam = 0.1 if activation != "linear" else 0.0
    tol = 1e-7
    kw = dict(activation=activation, threshold=lam, cap=0.7, tol=tol, max_iter=20000, accelerate=accelerate, check_every=check_every, start=start)
    R, k = rules.nsm_fixed_point(X @ W.T, L, **kw)
    assert k < 20000 and k % check_every == 0
    for t in range(B):
        assert fixed_point_residual_loop(W, L, X[t : t + 1], R[t : t + 1], activation, lam, 0.7) <= tol * (1 + 1e-6)
    for t in (0, 17, 59):
        Rt, kt = rules.nsm_fixed_point(X[t : t + 1] @ W.T, L, **kw)
        np.testing.assert_allclose(Rt, R[t : t + 1], rtol=1e-12, atol=1e-12)
        assert kt <= k
    R1, _ = rules.nsm_fixed_point(X @ W.T, L, **{**kw, "check_every": 1, "start": "zero", "accelerate": False})
    np.testing.assert_allclose(R, R1, atol=1e-4)  # the same (unique) fixed point


def test_linear_start_is_the_linear_fixed_point_and_falls_back_on_a_singular_L():
    rng = np.random.RandomState(32)
    W, L = rng.standard_normal((5, 6)), random_pd(rng, 5, scale=2.0)
    X = rng.standard_normal((10, 6))
    R, k = rules.nsm_fixed_point(X @ W.T, L, activation="linear", tol=1e-9, max_iter=500, check_every=1)
    assert k == 1  # the start is already the fixed point r = L^-1 W x
    np.testing.assert_allclose(R, np.linalg.solve(L, W @ X.T).T, rtol=1e-10, atol=1e-10)
    _, k0 = rules.nsm_fixed_point(X @ W.T, L, activation="linear", tol=1e-9, max_iter=500, check_every=1, start="zero")
    assert k0 > 1
    S = np.diag([1.0, 0.5, 0.0, 0.0, 0.0])  # singular: inv raises, the dynamics start from P(c)
    Rs, ks = rules.nsm_fixed_point(X @ W.T, S, max_iter=7)
    Rz, kz = rules.nsm_fixed_point(X @ W.T, S, max_iter=7, start="zero")
    np.testing.assert_array_equal(Rs, Rz)
    assert ks == kz
    with pytest.raises(ValueError, match="start"):
        rules.nsm_fixed_point(X @ W.T, L, start="ones")


def test_update_matches_loop_transcription_of_eq2_and_eq19():
    """Obeid Eq. (2): dW_ij = r_i x_j - W_ij, dL_ij = (r_i r_j - L_ij)/2, minibatch mean;
    Eq. (19) with c in {0, 1}: the Hebbian term only where c_ij != 0."""
    rng = np.random.RandomState(3)
    N, K, B = 4, 6, 5
    W, L = rng.standard_normal((N, K)), rng.standard_normal((N, N))
    X, R = rng.standard_normal((B, K)), rng.standard_normal((B, N))
    cW = (rng.uniform(size=(N, K)) > 0.4).astype(float)
    cL = (rng.uniform(size=(N, N)) > 0.4).astype(float)
    for masked in (False, True):
        dW, dL = rules.nsm_update(W, L, X, R, W_mask=cW if masked else None, L_mask=cL if masked else None)
        for i in range(N):
            for j in range(K):
                hebb = sum(R[t, i] * X[t, j] for t in range(B)) / B
                c = cW[i, j] if masked else 1.0
                assert abs(dW[i, j] - (c * hebb - W[i, j])) < 1e-12
            for j in range(N):
                anti = sum(R[t, i] * R[t, j] for t in range(B)) / B
                c = cL[i, j] if masked else 1.0
                assert abs(dL[i, j] - 0.5 * (c * anti - L[i, j])) < 1e-12


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_cost_matches_double_sum_of_eq3(activation):
    rng = np.random.RandomState(4)
    T, K, N = 7, 4, 3
    X = rng.standard_normal((T, K))
    R = np.tanh(rng.standard_normal((T, N))) if activation == "tanh" else np.abs(rng.standard_normal((T, N)))
    lam = 0.2 if activation in ("relu", "capped_relu") else 0.0

    def F(r):
        if activation in ("relu", "capped_relu"):
            return lam * r
        if activation == "tanh":  # F'(r) = artanh(r) - r, F(0) = 0
            return r * math.atanh(r) + 0.5 * math.log(1 - r * r) - 0.5 * r * r
        return 0.0

    sim = sum((X[t] @ X[s] - R[t] @ R[s]) ** 2 for t in range(T) for s in range(T)) / (2 * T * T)
    reg = 2.0 / T * sum(abs(F(R[t, i])) for t in range(T) for i in range(N))
    reg_sum = rules.nsm_regularizer(R, activation, threshold=lam).sum()
    got = rules.sm_cost_from_grams(*rules.sm_gram_terms(X, R), T, reg_sum)
    assert got == pytest.approx(sim + reg, rel=1e-9)


def test_structured_cost_matches_eq11():
    rng = np.random.RandomState(5)
    T, K, N = 6, 5, 4
    X, R = rng.standard_normal((T, K)), rng.standard_normal((T, N))
    cW = (rng.uniform(size=(N, K)) > 0.5).astype(float)
    cL = (rng.uniform(size=(N, N)) > 0.5).astype(float)
    cost = 0.0
    for t in range(T):
        for s in range(T):
            cost -= sum(X[t, i] * X[s, i] * R[t, j] * R[s, j] * cW[j, i] for i in range(K) for j in range(N))
            cost += 0.5 * sum(R[t, i] * R[s, i] * R[t, j] * R[s, j] * cL[i, j] for i in range(N) for j in range(N))
            cost += 0.5 * (X[t] @ X[s]) ** 2  # the input-only term Eq. (11) drops
    cost /= T * T
    got = rules.sm_cost_from_grams(*rules.sm_gram_terms(X, R), T, W_mask=cW, L_mask=cL)
    assert got == pytest.approx(cost, rel=1e-9)


# ------------------------------------------------------------- estimator
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fitted_transform_is_a_fixed_point(activation):
    X = lowrank_data(np.random.RandomState(6), 300, 12)
    enc = NSMEncoder(n_components=6, activation=activation, max_iter=2, tol=1e-5, max_iter_dynamics=2000, random_state=0, input_scale=1.0)
    R = enc.fit(X).transform(X[:20])
    assert R.dtype == np.float32 and R.shape == (20, 6)
    W, L = enc.components_.astype(np.float64), enc.lateral_.astype(np.float64)
    # float32 arithmetic adds rounding on top of the tolerance
    assert fixed_point_residual_loop(W, L, X[:20].astype(np.float64), R.astype(np.float64), activation) <= 1e-5 + 1e-5
    assert np.allclose(L, L.T, atol=1e-6) and np.linalg.eigvalsh(L).min() > 0  # L stays positive definite
    assert enc.n_dynamics_steps_ >= 1 and enc.n_steps_ == 2 * 3 and enc.n_iter_ == 2


@pytest.mark.parametrize("activation", ["relu", "linear", "tanh"])
def test_cost_falls_on_held_out_data(activation):
    rng = np.random.RandomState(7)
    X = lowrank_data(rng, 2500, 30, nonneg=activation == "relu")
    train, test = X[:2000], X[2000:]
    enc = NSMEncoder(n_components=8, activation=activation, learning_rate=0.02, shuffle=False, random_state=0, input_scale=1.0)
    enc.partial_fit(train[:100])
    costs = [-enc.score(test)]
    for _ in range(3):
        enc.partial_fit(train)
        costs.append(-enc.score(test))
    # tanh saturates and pays the regulariser F, so its cost falls more slowly
    assert costs[-1] < (0.85 if activation == "tanh" else 0.5) * costs[0], costs
    assert all(b < a * 1.05 for a, b in zip(costs, costs[1:])), costs


def test_s2m_alpha_zero_equals_nsm_and_alpha_changes_it():
    rng = np.random.RandomState(8)
    X = lowrank_data(rng, 400, 10)
    y = rng.randint(0, 3, 400)
    kw = dict(n_components=5, max_iter=2, random_state=0)
    nsm = NSMEncoder(**kw).fit(X)
    s2m0 = NSMEncoder(alpha=0.0, **kw).fit(X, y)
    np.testing.assert_array_equal(nsm.components_, s2m0.components_)
    np.testing.assert_array_equal(nsm.lateral_, s2m0.lateral_)
    assert not hasattr(s2m0, "label_components_")
    s2m = NSMEncoder(alpha=1.0, **kw).fit(X, y)
    assert s2m.label_components_.shape == (5, 3) and list(s2m.classes_) == [0, 1, 2]
    assert np.abs(s2m.components_ - nsm.components_).max() > 1e-4


def test_s2m_is_similarity_matching_of_x_and_scaled_labels():
    """Bahroun Eq. (5)-(8): S^2M on (x, y) is NSM on the input [x, sqrt(alpha) onehot(y)]
    with W_aug = [W, V]; unlabelled samples (-1) contribute a zero label part."""
    rng = np.random.RandomState(18)
    n, alpha = 300, 2.5
    X = lowrank_data(rng, n, 7)
    y = rng.randint(0, 3, n)
    y_semi = np.where(rng.uniform(size=n) < 0.5, y, -1)
    onehot = np.where(y_semi[:, None] == np.arange(3)[None, :], math.sqrt(alpha), 0.0).astype(np.float32)
    Xaug = np.hstack([X, onehot])
    kw = dict(n_components=4, batch_size=30, shuffle=False, random_state=0, input_scale=1.0)
    s2m = NSMEncoder(alpha=alpha, **kw).partial_fit(X[:30], y[:30], classes=[0, 1, 2])
    nsm = NSMEncoder(**kw).partial_fit(Xaug[:30])
    W0, L0 = nsm.components_.copy(), nsm.lateral_.copy()
    s2m.components_, s2m.label_components_, s2m.lateral_ = W0[:, :7].copy(), W0[:, 7:].copy(), L0.copy()
    s2m.partial_fit(X, y_semi)
    nsm.partial_fit(Xaug)
    np.testing.assert_allclose(s2m.components_, nsm.components_[:, :7], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s2m.label_components_, nsm.components_[:, 7:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s2m.lateral_, nsm.lateral_, rtol=1e-5, atol=1e-6)


def test_s2m_all_unlabelled_equals_unsupervised():
    rng = np.random.RandomState(9)
    n = 300
    X = lowrank_data(rng, n, 10)
    kw = dict(n_components=6, max_iter=3, random_state=0)
    unsup = NSMEncoder(**kw).fit(X)
    semi = NSMEncoder(alpha=1.0, **kw).fit(X, np.full(n, -1))
    np.testing.assert_array_equal(unsup.components_, semi.components_)
    np.testing.assert_array_equal(unsup.lateral_, semi.lateral_)
    np.testing.assert_array_equal(unsup.transform(X), semi.transform(X))


def test_structured_masks_hold_exact_zeros():
    rng = np.random.RandomState(10)
    X = rng.uniform(size=(60, 8, 8)).astype(np.float32)
    X -= X.mean(axis=0)
    enc = NSMEncoder(
        n_components=2, structure="local", site_stride=2, radius=2.0, lateral_radius=2.0, activation="tanh", max_iter=2, batch_size=20, random_state=0
    ).fit(X)
    cW, cL = enc.feedforward_mask_, enc.lateral_mask_
    assert enc.components_.shape == (16 * 2, 64) and enc.lateral_.shape == (32, 32)
    assert np.all(enc.components_[~cW] == 0.0) and np.all(enc.lateral_[~cL] == 0.0)
    assert np.all(enc.components_[cW] != 0.0)
    assert (~cW).sum() > 0 and (~cL).sum() > 0
    # the geometry, by a loop: site (a, b) at ((2a + 0.5), (2b + 0.5)); pixel within radius 2
    for n in range(32):
        site = n // 2
        sy, sx = 2 * (site // 4) + 0.5, 2 * (site % 4) + 0.5
        for p in range(64):
            assert cW[n, p] == ((p // 8 - sy) ** 2 + (p % 8 - sx) ** 2 <= 4.0)
        for m in range(32):
            oy, ox = 2 * ((m // 2) // 4) + 0.5, 2 * ((m // 2) % 4) + 0.5
            assert cL[n, m] == ((oy - sy) ** 2 + (ox - sx) ** 2 <= 4.0)
    assert enc.transform(X).shape == (60, 32)
    assert np.isfinite(enc.score(X))


def test_local_structure_same_site_lateral_is_block_diagonal():
    W_mask, L_mask = local_structure((6, 6, 2), 3, 3, 1.5, 0.0)
    assert W_mask.shape == (4 * 3, 72)
    np.testing.assert_array_equal(L_mask, np.kron(np.eye(4), np.ones((3, 3))))


def test_local_structure_matches_a_loop_transcription_of_fig1a():
    """c^W and c^L by loops (Obeid Fig. 1A): site (a, b) at (s a + (s - 1) / 2, s b + (s - 1) / 2), its n
    neurons see every channel of the pixels within the radius and inhibit the neurons of the sites within the
    lateral radius; neurons ordered (site row, site column, neuron), inputs (row, column, channel)."""
    H, W, C, n, s, radius, lat = 7, 5, 2, 2, 3, 1.7, 3.1
    cW, cL = local_structure((H, W, C), n, s, radius, lat)
    ny, nx = -(-H // s), -(-W // s)
    assert cW.shape == (ny * nx * n, H * W * C) and cL.shape == (ny * nx * n, ny * nx * n)
    site = lambda i: (s * ((i // n) // nx) + (s - 1) / 2, s * ((i // n) % nx) + (s - 1) / 2)  # noqa: E731
    for i in range(cW.shape[0]):
        sy, sx = site(i)
        for j in range(H * W * C):
            py, px = (j // C) // W, (j // C) % W
            assert cW[i, j] == float((py - sy) ** 2 + (px - sx) ** 2 <= radius**2)
        for k in range(cL.shape[1]):
            oy, ox = site(k)
            assert cL[i, k] == float((oy - sy) ** 2 + (ox - sx) ** 2 <= lat**2)
    assert local_structure((H, W, C), n, s, radius, lat, dense_lateral=False)[1] is None


def test_structured_layers_stack_site_grids_and_store_same_site_laterals_as_blocks():
    """Layer p's input grid is layer p-1's site grid with its neurons as channels (Obeid Eq. 13); a layer
    whose lateral radius is below its stride has a block-diagonal c^L, stored as one block per site."""
    from sklhebb.rules.structure import lateral_identity, structured_layers

    layers = structured_layers((8, 6, 1), [2, 3], site_stride=(2, 3), radius=(2.0, 1.0), lateral_radius=(2.0, 0.5))
    assert [(la.n_units, la.n_inputs) for la in layers] == [(4 * 3 * 2, 48), (2 * 1 * 3, 24)]
    np.testing.assert_array_equal(layers[0].W_mask, local_structure((8, 6, 1), 2, 2, 2.0, 2.0)[0].astype(bool))
    np.testing.assert_array_equal(layers[0].L_mask, local_structure((8, 6, 1), 2, 2, 2.0, 2.0)[1].astype(bool))
    np.testing.assert_array_equal(layers[1].W_mask, local_structure((4, 3, 2), 3, 3, 1.0, 0.5)[0].astype(bool))
    assert layers[0].n_blocks is None and layers[1].n_blocks == 2 and layers[1].L_mask is None
    np.testing.assert_array_equal(lateral_identity(layers[1], "float32"), np.stack([np.eye(3)] * 2))
    dense = structured_layers((8, 6, 1), [2, 3], (2, 3), (2.0, 1.0), (2.0, 0.5), blocks=False)
    assert dense[1].n_blocks is None
    np.testing.assert_array_equal(dense[1].L_mask, np.kron(np.eye(2), np.ones((3, 3))).astype(bool))


def test_one_layer_deep_fixed_point_is_the_single_layer_fixed_point():
    """A single layer is the deep network with one layer: deep_fixed_point of one layer is nsm_fixed_point on
    the drive W x (+ V y), the same computation, accelerated or not."""
    rng = np.random.RandomState(43)
    W, L = rng.standard_normal((5, 6)), random_pd(rng, 5)
    X, top = rng.standard_normal((9, 6)), rng.standard_normal((9, 5))
    for activation in ACTIVATIONS:
        for accelerate in (False, True):
            kw = dict(activation=activation, threshold=0.1, cap=0.8, tol=1e-8, max_iter=3000, accelerate=accelerate)
            Rs, k = rules.deep_fixed_point(X, [W], [L], top_drive=top, **kw)
            R, k1 = rules.nsm_fixed_point(X @ W.T + top, L, **kw)
            assert len(Rs) == 1 and k == k1
            np.testing.assert_array_equal(Rs[0], R)


def test_label_weights_start_random_in_fit_and_partial_fit_alike():
    """One initialisation: the first partial_fit starts V where fit does (random, not zero), and a network
    started without labels refuses them later instead of ignoring them."""
    rng = np.random.RandomState(44)
    X = lowrank_data(rng, 200, 8)
    y = rng.randint(0, 3, 200)
    kw = dict(n_components=3, alpha=1.0, learning_rate=1e-9, max_iter=1, random_state=0)
    fitted = NSMEncoder(**kw).fit(X, y)
    partial = NSMEncoder(**kw).partial_fit(X, y)
    np.testing.assert_array_equal(fitted.label_components_, partial.label_components_)
    np.testing.assert_array_equal(fitted.components_, partial.components_)
    assert np.abs(partial.label_components_).min() > 1e-4
    with pytest.warns(UserWarning, match="alpha=1.0 has no effect without labels"):
        unlabelled = NSMEncoder(**kw).partial_fit(X)
    assert not hasattr(unlabelled, "label_components_") and not hasattr(unlabelled, "classes_")
    unlabelled.partial_fit(X, np.full(200, -1))  # nothing to learn the labels of: fine
    with pytest.raises(ValueError, match="started without labels"):
        unlabelled.partial_fit(X, y)
    assert not hasattr(NSMEncoder(**kw).fit(X, np.full(200, -1)), "classes_")


@pytest.mark.parametrize("chunk_size,batch_size", [(1, 7), (3, 50), (2, 200), (5, 36)])
def test_patch_stream_labels_travel_with_their_patches(chunk_size, batch_size):
    """PatchStream(y=...) yields (patches, labels): the same patches as without labels, each with its own
    image's label, in order and shuffled, for minibatches inside a chunk and across chunks."""
    from sklhebb._backend import resolve
    from sklhebb.image import PatchStream

    bk = resolve("numpy")
    rng = np.random.RandomState(45)
    X = rng.uniform(size=(9, 6, 5, 2)).astype(np.float32)
    X[..., 0] = np.arange(9)[:, None, None]  # channel 0 holds the image index: raw patches name their image
    y = rng.randint(-1, 4, 9)
    plain = PatchStream(bk, X, 3, batch_size, chunk_size, "float32", normalize=False)
    labelled = PatchStream(bk, X, 3, batch_size, chunk_size, "float32", normalize=False, y=y)
    for seed in (None, 0):
        batches = list(labelled.epoch(None if seed is None else np.random.RandomState(seed)))
        for (P, lab), Q in zip(batches, plain.epoch(None if seed is None else np.random.RandomState(seed))):
            np.testing.assert_array_equal(P, Q)
            assert lab.dtype == np.int64 and lab.shape == (P.shape[0],)
            np.testing.assert_array_equal(lab, y[P[:, 0].astype(int)])
        assert sum(P.shape[0] for P, _ in batches) == 9 * 4 * 3
    with pytest.raises(ValueError, match="labels"):
        PatchStream(bk, X, 3, batch_size, chunk_size, "float32", y=y[:5])
    with pytest.raises(ValueError, match="epoch"):
        next(labelled.epoch_indices(None))


def test_numpy_and_torch_agree():
    torch = pytest.importorskip("torch")
    X = lowrank_data(np.random.RandomState(11), 300, 12)
    kw = dict(n_components=5, max_iter=2, batch_size=50, random_state=0, tol=1e-6, max_iter_dynamics=500)
    a = NSMEncoder(**kw).fit(X)
    b = NSMEncoder(backend="torch", **kw).fit(X)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(a.lateral_, b.lateral_, rtol=1e-3, atol=1e-4)
    Rt = a.transform(torch.from_numpy(X[:30]))
    assert isinstance(Rt, torch.Tensor)
    np.testing.assert_allclose(Rt.numpy(), a.transform(X[:30]), rtol=1e-4, atol=1e-5)


def test_torch_tensor_fit_conv_mode():
    torch = pytest.importorskip("torch")
    X = np.random.RandomState(12).uniform(size=(20, 10, 10)).astype(np.float32)
    kw = dict(n_components=4, window=3, max_iter=1, batch_size=200, random_state=0)
    a = NSMEncoder(**kw).fit(X)
    b = NSMEncoder(**kw).fit(torch.from_numpy(X))
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("pool", ["max", "sum"])
def test_convolutional_shapes_pooling_and_black_images(pool):
    rng = np.random.RandomState(13)
    X = rng.uniform(size=(30, 12, 12)).astype(np.float32)
    enc = NSMEncoder(n_components=5, window=4, pool=pool, max_iter=1, batch_size=500, random_state=0).fit(X)
    assert enc.components_.shape == (5, 16) and enc.lateral_.shape == (5, 5)
    Z = enc.transform(X)
    assert Z.shape == (30, 2 * 2 * 5)  # 9 x 9 map, quadrant windows of 5 with stride 4
    # pooling oracle on one image: per-patch fixed points, then quadrant pooling
    P = np.lib.stride_tricks.sliding_window_view(X[0], (4, 4)).reshape(81, 16)
    P = P / np.linalg.norm(P, axis=1, keepdims=True)
    R, _ = rules.nsm_fixed_point(P @ enc.components_.T, enc.lateral_, tol=enc.tol, max_iter=enc.max_iter_dynamics)
    R = R.reshape(9, 9, 5)
    red = np.max if pool == "max" else np.sum
    want = np.stack([red(R[a : a + 5, b : b + 5], axis=(0, 1)) for a in (0, 4) for b in (0, 4)])
    np.testing.assert_allclose(Z[0].reshape(4, 5), want, rtol=1e-4, atol=1e-5)
    black = enc.transform(np.zeros((2, 12, 12), dtype=np.float32))
    assert np.all(black == 0)
    assert enc.get_feature_names_out().shape == (20,)
    enc2 = NSMEncoder(n_components=5, window=4, pool=pool, pool_size=3, pool_stride=2, max_iter=1, batch_size=500, random_state=0).fit(X)
    assert enc2.transform(X[:2]).shape == (2, 4 * 4 * 5)


def test_partial_fit_chunks_equal_one_epoch_of_fit():
    X = lowrank_data(np.random.RandomState(14), 300, 8)
    kw = dict(n_components=4, batch_size=50, shuffle=False, random_state=0, input_scale=1.0)
    full = NSMEncoder(max_iter=1, **kw).fit(X)
    inc = NSMEncoder(**kw)
    for chunk in (X[:100], X[100:250], X[250:]):  # unequal chunks on batch boundaries
        assert inc.partial_fit(chunk) is inc
    np.testing.assert_allclose(inc.components_, full.components_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(inc.lateral_, full.lateral_, rtol=1e-6, atol=1e-7)
    assert inc.n_iter_ == 3 and inc.n_steps_ == full.n_steps_ == 6


def test_partial_fit_s2m_with_classes_and_pickle():
    rng = np.random.RandomState(15)
    X = lowrank_data(rng, 200, 8)
    y = rng.randint(0, 4, 200)
    enc = NSMEncoder(n_components=3, alpha=0.5, random_state=0)
    enc.partial_fit(X[:100], y[:100] % 2, classes=[0, 1, 2, 3])
    enc.partial_fit(X[100:], y[100:])
    enc.partial_fit(X[:50])  # unlabelled chunk
    assert list(enc.classes_) == [0, 1, 2, 3] and enc.label_components_.shape == (3, 4)
    with pytest.raises(ValueError, match="labels not in classes_"):
        enc.partial_fit(X[:10], np.full(10, 7))
    clone = pickle.loads(pickle.dumps(enc))
    np.testing.assert_array_equal(clone.transform(X), enc.transform(X))


def test_float64_is_preserved():
    X = lowrank_data(np.random.RandomState(16), 100, 6).astype(np.float64)
    enc = NSMEncoder(n_components=3, max_iter=1, random_state=0).fit(X)
    assert enc.components_.dtype == np.float64 and enc.transform(X).dtype == np.float64


def test_invalid_combinations():
    X = np.random.RandomState(0).uniform(size=(10, 8, 8))
    with pytest.raises(ValueError, match="exclusive"):
        NSMEncoder(structure="local", window=3).fit(X)
    with pytest.raises(ValueError, match="larger than the images"):
        NSMEncoder(window=9).fit(X)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    X = lowrank_data(np.random.RandomState(17), 300, 12)
    kw = dict(n_components=5, max_iter=2, batch_size=50, random_state=0, tol=1e-6, max_iter_dynamics=500)
    a = NSMEncoder(**kw).fit(X)
    b = NSMEncoder(backend="torch", device="cuda", **kw).fit(X)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------ deep
def deep_residual_loop(X, Ws, Ls, Rs, gamma, activation, scales=None):
    """Obeid Eq. (17) at a fixed point, per layer p and unit i, by loops (scaled as the rule's tolerance).

    ``scales``: c_p of ``layer_input_scale``, bottom first (c_1 = 1): layer p's input is c_p r^(p-1), in its drive
    and in the feedback gamma c_p W^(p)^T r^(p) onto the layer below."""
    worst = 0.0
    P = len(Ws)
    scales = [1.0] * P if scales is None else scales
    for t in range(X.shape[0]):
        below = list(X[t])
        for p in range(P):
            W, L, r = Ws[p], Ls[p], Rs[p][t]
            drive = [sum(W[i, j] * below[j] for j in range(W.shape[1])) for i in range(W.shape[0])]
            scale = max(1.0, max(abs(d) for d in drive))
            for i in range(W.shape[0]):
                u = drive[i] - sum((L[i, k] - (i == k)) * r[k] for k in range(L.shape[0]))
                if p < P - 1:
                    Wn, rn = Ws[p + 1], Rs[p + 1][t]
                    u += gamma * scales[p + 1] * sum(Wn[k, i] * rn[k] for k in range(Wn.shape[0]))
                worst = max(worst, abs(f_scalar(u, activation) - r[i]) / scale)
            below = [scales[p + 1] * v for v in r] if p < P - 1 else list(r)
    return worst


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_deep_dynamics_reach_fixed_point_of_eq17(activation, gamma):
    rng = np.random.RandomState(19)
    sizes = [6, 5, 4]
    Ws = [rng.standard_normal((sizes[p + 1], sizes[p])) / 2 for p in range(2)]
    Ls = [random_pd(rng, n) for n in sizes[1:]]
    X = rng.standard_normal((6, 6))
    tol = 1e-7
    Rs, k = rules.deep_fixed_point(X, Ws, Ls, gamma=gamma, activation=activation, tol=tol, max_iter=20000)
    assert k < 20000
    assert deep_residual_loop(X, Ws, Ls, Rs, gamma, activation) <= tol * (1 + 1e-6)
    if gamma == 0:  # bottom-up only: each layer is the single-layer network on the layer below
        R1, _ = rules.nsm_fixed_point(X @ Ws[0].T, Ls[0], activation=activation, tol=1e-9, max_iter=20000)
        R2, _ = rules.nsm_fixed_point(R1 @ Ws[1].T, Ls[1], activation=activation, tol=1e-9, max_iter=20000)
        np.testing.assert_allclose(Rs[0], R1, atol=1e-5)
        np.testing.assert_allclose(Rs[1], R2, atol=1e-5)


def test_deep_lateral_decay_matches_eq19():
    rng = np.random.RandomState(20)
    W, L = rng.standard_normal((3, 4)), rng.standard_normal((3, 3))
    X, R = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    gamma = 0.7
    _, dL = rules.nsm_update(W, L, X, R, lateral_decay=1 / (1 + gamma))
    for i in range(3):
        for j in range(3):
            want = 0.5 * (sum(R[t, i] * R[t, j] for t in range(5)) / 5 - L[i, j] / (1 + gamma))
            assert abs(dL[i, j] - want) < 1e-12


def test_deep_encoder_learns_and_returns_layers():
    rng = np.random.RandomState(21)
    X = lowrank_data(rng, 1500, 20)
    train, test = X[:1200], X[1200:]
    enc = NSMEncoder(n_components=4, hidden_layer_sizes=(8,), gamma=0.3, learning_rate=0.02, shuffle=False, random_state=0, input_scale=1.0)
    enc.partial_fit(train[:100])
    c0 = -enc.score(test)
    for _ in range(3):
        enc.partial_fit(train)
    assert -enc.score(test) < 0.8 * c0
    assert [W.shape for W in enc.layer_components_] == [(8, 20), (4, 8)]
    np.testing.assert_array_equal(enc.layer_components_[-1], enc.components_)
    assert enc.transform(test).shape == (300, 4)
    Z = enc.set_params(return_layers="all").transform(test)
    assert Z.shape == (300, 12) and enc.get_feature_names_out().shape == (12,)
    with pytest.raises(ValueError, match="not convolutional"):
        NSMEncoder(hidden_layer_sizes=(4,), window=3).fit(rng.uniform(size=(10, 8, 8)))


@pytest.mark.parametrize("activation", ["relu", "capped_relu", "linear"])
def test_accelerated_dynamics_reach_the_same_fixed_point(activation):
    rng = np.random.RandomState(22)
    K, N, B = 6, 5, 8
    W = rng.standard_normal((N, K))
    A = rng.standard_normal((N, N))
    L = A @ A.T / N + 0.01 * np.eye(N)  # ill-conditioned, positive definite
    X = rng.standard_normal((B, K))
    tol = 1e-7
    # from the zero start: the default linear start is already the fixed point of the linear network
    R, k = rules.nsm_fixed_point(X @ W.T, L, activation=activation, cap=0.7, tol=tol, max_iter=50000, accelerate=True, start="zero")
    R0, k0 = rules.nsm_fixed_point(X @ W.T, L, activation=activation, cap=0.7, tol=tol, max_iter=50000, start="zero")
    assert fixed_point_residual_loop(W, L, X, R, activation, 0.0, 0.7) <= tol * (1 + 1e-6)
    if activation == "linear":  # unconstrained and ill-conditioned: momentum must pay off
        assert k < k0
    np.testing.assert_allclose(R, R0, atol=1e-4)


@pytest.mark.parametrize("scale", [1e-6, 1e6])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_tiny_and_huge_inputs_stay_finite(scale, activation):
    """The step 1 / lambda_max(L) follows the scale of L (which grows as x^2), so neither the dynamics
    nor the step-size estimate overflow; the cost is summed in float64."""
    X = np.abs(np.random.RandomState(23).standard_normal((200, 8))).astype(np.float32) * scale
    enc = NSMEncoder(n_components=3, activation=activation, max_iter=2, random_state=0, input_scale=1.0).fit(X)
    Z = enc.transform(X)
    assert np.all(np.isfinite(Z)) and np.all(np.isfinite(enc.components_)) and np.all(np.isfinite(enc.lateral_))
    assert np.isfinite(enc.score(X))
    if activation in ("relu", "linear"):  # the outputs scale with the inputs
        assert 0.01 * scale < np.abs(Z).max() < 100 * scale


def test_block_diagonal_lateral_equals_dense_masked_network():
    """Same-site lateral inhibition stored as (S, n, n) blocks gives the network that the dense,
    masked (N, N) lateral matrix gives."""
    rng = np.random.RandomState(24)
    X = rng.uniform(size=(80, 8, 8)).astype(np.float32)
    X -= X.mean(axis=0)
    kw = dict(
        n_components=3,
        structure="local",
        site_stride=2,
        radius=2.5,
        activation="tanh",
        max_iter=2,
        batch_size=20,
        tol=1e-7,
        max_iter_dynamics=2000,
        random_state=0,
    )
    blocks = NSMEncoder(lateral_radius=0.0, **kw).fit(X)
    dense = NSMEncoder(lateral_radius=0.0, **kw)
    dense._block_laterals = False  # force the dense, masked storage
    dense.fit(X)
    assert blocks.lateral_.shape == (16, 3, 3) and dense.lateral_.shape == (48, 48)
    assert blocks.lateral_mask_ is None
    from scipy.linalg import block_diag

    np.testing.assert_allclose(block_diag(*blocks.lateral_), dense.lateral_, atol=2e-5)
    np.testing.assert_allclose(blocks.components_, dense.components_, atol=2e-5)
    np.testing.assert_allclose(blocks.transform(X), dense.transform(X), atol=1e-4)
    assert blocks.score(X) == pytest.approx(dense.score(X), rel=1e-4)
    # rule level: the blockwise lateral product, update and step size equal the dense ones
    Lb = np.stack([random_pd(rng, 3) for _ in range(4)])
    Ld = block_diag(*Lb)
    D, R = rng.standard_normal((5, 12)), rng.standard_normal((5, 12))
    Rb_fp, _ = rules.nsm_fixed_point(D, Lb, tol=1e-10, max_iter=10000)
    Rd_fp, _ = rules.nsm_fixed_point(D, Ld, tol=1e-10, max_iter=10000)
    np.testing.assert_allclose(Rb_fp, Rd_fp, atol=1e-7)
    _, dLb = rules.nsm_update(np.zeros((12, 2)), Lb, np.zeros((5, 2)), R)
    _, dLd = rules.nsm_update(np.zeros((12, 2)), Ld, np.zeros((5, 2)), R, L_mask=(Ld != 0).astype(float))
    np.testing.assert_allclose(block_diag(*dLb), dLd, atol=1e-12)
    assert rules.nsm_step_size(Lb) == pytest.approx(1 / max(np.linalg.eigvalsh(B).max() for B in Lb), rel=0.05)


def test_block_lateral_numpy_and_torch_agree():
    torch = pytest.importorskip("torch")
    X = np.random.RandomState(25).uniform(size=(60, 8, 8)).astype(np.float32)
    X -= X.mean(axis=0)
    kw = dict(n_components=3, structure="local", site_stride=2, radius=2.5, activation="tanh", max_iter=2, batch_size=20, tol=1e-6, random_state=0)
    a = NSMEncoder(**kw).fit(X)
    b = NSMEncoder(backend="torch", **kw).fit(X)
    np.testing.assert_allclose(a.lateral_, b.lateral_, atol=1e-5)
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-5)
    np.testing.assert_allclose(a.transform(torch.from_numpy(X)).numpy(), a.transform(X), atol=1e-5)


def test_convolutional_s2m():
    """Every patch takes its image's label: alpha = 0 and all-unlabelled equal the unsupervised
    convolutional network; labels change W; shuffled patches keep their own image's label."""
    rng = np.random.RandomState(26)
    X = rng.uniform(size=(24, 9, 9)).astype(np.float32)
    y = rng.randint(0, 3, 24)
    kw = dict(n_components=4, window=3, max_iter=2, batch_size=300, random_state=0)
    unsup = NSMEncoder(**kw).fit(X)
    np.testing.assert_array_equal(NSMEncoder(alpha=0.0, **kw).fit(X, y).components_, unsup.components_)
    none = NSMEncoder(alpha=1.0, **kw).fit(X, np.full(24, -1))
    np.testing.assert_array_equal(none.components_, unsup.components_)
    sup = NSMEncoder(alpha=1.0, **kw).fit(X, y)
    assert sup.label_components_.shape == (4, 3)
    assert np.abs(sup.components_ - unsup.components_).max() > 1e-4
    assert sup.transform(X).shape == unsup.transform(X).shape
    # the labels travel with their patches through the chunked, shuffled patch stream
    from sklhebb._backend import resolve
    from sklhebb.image import PatchStream

    enc = NSMEncoder(alpha=1.0, chunk_size=5, **kw)
    enc.image_shape_ = (9, 9, 1)
    codes = np.where(np.arange(24) % 4 == 0, -1, y)
    stream = enc._stream(resolve(), X[..., None], codes, "float32")
    assert isinstance(stream, PatchStream)
    # find each patch's image by matching it against all unit-normalised patches of all images
    allp = np.lib.stride_tricks.sliding_window_view(X, (3, 3), axis=(1, 2)).reshape(24, 49, 9)
    allp = allp / np.linalg.norm(allp, axis=2, keepdims=True)
    n_batches = 0
    for Xp, cp in stream.epoch(np.random.RandomState(0)):
        norms = np.linalg.norm(Xp, axis=1)
        assert np.allclose(norms[norms > 0], 1, atol=1e-5)
        for v, c in zip(Xp[::15], cp[::15]):
            img = np.argmin(np.abs(allp - v).max(axis=2).min(axis=1))
            assert c == codes[img]
        n_batches += 1
    assert n_batches == -(-24 * 49 // 300)


def test_convolutional_s2m_is_s2m_on_its_labelled_patches():
    """Convolutional S^2M (Bahroun Sec. 3-4) is S^2M on the stream of the images' normalised patches, each
    labelled with its image's label: in order (shuffle=False), with chunks that cut minibatches in two, it
    learns what the fully connected network learns from those patch rows (the same initial weights: same
    fan-in)."""
    rng = np.random.RandomState(41)
    X = rng.uniform(size=(30, 8, 8)).astype(np.float32)
    y = np.where(np.arange(30) % 5 == 0, -1, rng.randint(0, 3, 30))
    for center in (False, True):
        kw = dict(n_components=4, alpha=1.5, max_iter=2, batch_size=70, shuffle=False, random_state=0, input_scale=1.0)
        conv = NSMEncoder(window=3, center=center, chunk_size=7, **kw).fit(X, y)
        P = np.lib.stride_tricks.sliding_window_view(X, (3, 3), axis=(1, 2)).reshape(-1, 9).astype(np.float64)
        if center:
            P -= P.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(P, axis=1, keepdims=True)
        P = np.where(norms > 0, P / np.where(norms > 0, norms, 1), 0).astype(np.float32)
        rows = NSMEncoder(**kw).fit(P, np.repeat(y, 36))
        np.testing.assert_array_equal(conv.classes_, rows.classes_)
        for name in ("components_", "lateral_", "label_components_"):
            np.testing.assert_allclose(getattr(conv, name), getattr(rows, name), rtol=1e-4, atol=1e-5)


def test_convolutional_s2m_numpy_and_torch_agree():
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(46)
    X = rng.uniform(size=(20, 8, 8)).astype(np.float32)
    y = np.where(np.arange(20) % 4 == 0, -1, rng.randint(0, 3, 20))
    kw = dict(n_components=4, window=3, alpha=1.0, max_iter=2, batch_size=100, chunk_size=3, random_state=0)
    a = NSMEncoder(**kw).fit(X, y)
    b = NSMEncoder(backend="torch", **kw).fit(X, y)
    c = NSMEncoder(**kw).fit(torch.from_numpy(X), y)
    for other in (b, c):
        for name in ("components_", "lateral_", "label_components_"):
            np.testing.assert_allclose(getattr(a, name), getattr(other, name), rtol=1e-4, atol=1e-5)


def test_convolutional_s2m_streams_a_memmap_chunk_by_chunk(tmp_path):
    """The labels travel through the patch stream: a memory-mapped data set is read chunk by chunk, never
    copied whole to the host (peak host memory of the fit, traced, stays far below the data set in float32)."""
    import tracemalloc

    n, side = 4000, 16
    X = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.uint8, shape=(n, side, side))
    X[:] = np.random.RandomState(42).randint(0, 256, size=(n, side, side))
    X.flush()
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    y = np.arange(n) % 3
    enc = NSMEncoder(n_components=4, window=5, alpha=1.0, max_iter=1, batch_size=500, chunk_size=8, random_state=0)
    tracemalloc.start()
    try:
        enc.fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert enc.n_steps_ == -(-n * 12 * 12 // 500)
    assert enc.label_components_.shape == (4, 3)
    # a host copy of the data set in float32 would alone be 4x this bound (the labelled copy it was: 8x)
    assert peak < 0.25 * n * side * side * 4, peak


# ------------------------------------------------------- deep structured
def small_images(seed, n=60, side=8, dtype=np.float32):
    """Centred low-rank 8 x 8 images (smooth enough for the structure to matter, fast to train on)."""
    rng = np.random.RandomState(seed)
    A = np.abs(rng.standard_normal((6, side * side)))
    X = np.abs(rng.standard_normal((n, 6))) @ A / 6 + 0.1 * rng.standard_normal((n, side * side))
    X = X - X.mean(axis=0)
    return (X / np.linalg.norm(X, axis=1).mean()).reshape(n, side, side).astype(dtype)


# layer 1: 4 x 4 sites on the 8 x 8 image, neighbouring sites inhibit each other (dense masked L);
# layer 2: 2 x 2 sites on layer 1's 4 x 4 site grid, same-site inhibition (L stored as blocks)
DEEP_STRUCT = dict(
    n_components=3,
    hidden_layer_sizes=(2,),
    structure="local",
    site_stride=(2, 2),
    radius=(2.0, 1.5),
    lateral_radius=(2.0, 0.0),
    batch_size=20,
    random_state=0,
    input_scale=1.0,
)


def dense_lateral(L):
    from scipy.linalg import block_diag

    return block_diag(*L) if L.ndim == 3 else L


def split_layers(enc, Z):
    return np.split(Z, np.cumsum([W.shape[0] for W in enc.layer_components_])[:-1], axis=1)


def test_deep_structured_masks_hold_exact_zeros_after_fit_and_partial_fit():
    X = small_images(30)
    enc = NSMEncoder(activation="tanh", gamma=0.3, max_iter=2, **DEEP_STRUCT).fit(X)
    cWs, cLs = enc.layer_feedforward_masks_, enc.layer_lateral_masks_
    assert [W.shape for W in enc.layer_components_] == [(16 * 2, 64), (4 * 3, 16 * 2)]
    assert enc.layer_laterals_[0].shape == (32, 32) and enc.layer_laterals_[1].shape == (4, 3, 3)
    assert cLs[1] is None and enc.lateral_mask_ is None
    np.testing.assert_array_equal(enc.feedforward_mask_, cWs[1])
    # layer 2's geometry, by loops: its site (a, b) sits at (2a + 0.5, 2b + 0.5) on layer 1's 4 x 4 site grid
    # and sees every neuron of the layer-1 sites within radius 1.5 (layer-1 neuron m: site m // 2)
    for n in range(12):
        site = n // 3
        sy, sx = 2 * (site // 2) + 0.5, 2 * (site % 2) + 0.5
        for m in range(32):
            gy, gx = (m // 2) // 4, (m // 2) % 4
            assert cWs[1][n, m] == ((gy - sy) ** 2 + (gx - sx) ** 2 <= 1.5**2)
    np.testing.assert_array_equal(cWs[0], local_structure((8, 8, 1), 2, 2, 2.0, 2.0)[0].astype(bool))
    np.testing.assert_array_equal(cLs[0], local_structure((8, 8, 1), 2, 2, 2.0, 2.0)[1].astype(bool))
    for call in range(3):
        for W, cW in zip(enc.layer_components_, cWs):
            assert np.all(W[~cW] == 0.0) and np.all(W[cW] != 0.0)
            assert (~cW).sum() > 0
        L0 = enc.layer_laterals_[0]
        assert np.all(L0[~cLs[0]] == 0.0) and (~cLs[0]).sum() > 0
        for L in enc.layer_laterals_:
            Ld = dense_lateral(L)
            assert np.allclose(Ld, Ld.T, atol=1e-6) and np.linalg.eigvalsh(Ld).min() > 0
        np.testing.assert_array_equal(enc.layer_components_[-1], enc.components_)
        enc.partial_fit(X[: 20 * (call + 1)])
    assert enc.transform(X).shape == (60, 12)
    Z = enc.set_params(return_layers="all").transform(X)
    assert Z.shape == (60, 44) and enc.get_feature_names_out().shape == (44,)
    assert np.isfinite(enc.score(X))


def test_deep_structured_per_layer_parameters_are_checked():
    X = small_images(31, n=20)
    for bad in (dict(site_stride=(2, 2, 2)), dict(radius=(2.0,)), dict(lateral_radius=[0.0, 1.0, 0.0])):
        with pytest.raises(ValueError, match="one entry per layer"):
            NSMEncoder(**{**DEEP_STRUCT, **bad}).fit(X)
    with pytest.raises(ValueError, match=r"'site_stride' parameter of NSMEncoder must be an int in the range \[1, inf\)"):
        NSMEncoder(**{**DEEP_STRUCT, "site_stride": (2, 0)}).fit(X)
    # a number is every layer's value; three layers: the third on layer 2's 2 x 2 grid is one site
    enc = NSMEncoder(
        n_components=2, hidden_layer_sizes=(2, 3), structure="local", site_stride=2, radius=1.5, max_iter=1, batch_size=20, random_state=0
    ).fit(X)
    assert [W.shape for W in enc.layer_components_] == [(32, 64), (12, 32), (2, 12)]
    assert [L.shape for L in enc.layer_laterals_] == [(16, 2, 2), (4, 3, 3), (1, 2, 2)]
    # layer 3's one site at (0.5, 0.5) on the 2 x 2 grid: every layer-2 site within radius 1.5
    assert enc.layer_feedforward_masks_[2].all()


@pytest.mark.parametrize("c", [1.0, 0.5])
def test_deep_structured_transform_is_a_fixed_point_of_eq17(c):
    """Every layer of the returned outputs satisfies Obeid Eq. (17) at its fixed point:
    r^(p) = f(W^(p) x^(p) - (L^(p) - I) r^(p) + gamma c_(p+1) W^(p+1)^T r^(p+1)) (no gamma on the W and L terms), with
    x^(p) = c_p r^(p-1) (``layer_input_scale``; c = 1 is the paper's network)."""
    X = small_images(32, dtype=np.float64)
    gamma, tol = 0.5, 1e-8
    for activation in ("tanh", "capped_relu"):
        enc = NSMEncoder(
            activation=activation, gamma=gamma, layer_input_scale=c, tol=tol, max_iter_dynamics=20000, max_iter=2, return_layers="all", **DEEP_STRUCT
        ).fit(X)
        Rs = split_layers(enc, enc.transform(X[:15]))
        Ws, Ls = enc.layer_components_, [dense_lateral(L) for L in enc.layer_laterals_]
        Xf = X[:15].reshape(15, -1)
        assert deep_residual_loop(Xf, Ws, Ls, Rs, gamma, activation, [1.0, c]) <= tol * (1 + 1e-6)
        # and not a fixed point of the equation without feedback (the gamma term matters)
        assert deep_residual_loop(Xf, Ws, Ls, Rs, 0.0, activation, [1.0, c]) > 100 * tol
        if c != 1.0:  # nor of the unscaled network (the scale matters)
            assert deep_residual_loop(Xf, Ws, Ls, Rs, gamma, activation) > 100 * tol


def test_deep_dynamics_with_blocks_and_top_drive_reach_eq17():
    """Rule level: block-diagonal L^(p) given as blocks and a top-layer drive V y (deep S^2M) give the fixed point
    of Eq. (17) with the dense L^(p) and the drive W^(P) r^(P-1) + V y, checked by loops."""
    from scipy.linalg import block_diag

    rng = np.random.RandomState(33)
    Ws = [rng.standard_normal((6, 5)) / 2, rng.standard_normal((4, 6)) / 2]
    Lb = np.stack([random_pd(rng, 2) for _ in range(3)])
    Ls = [Lb, random_pd(rng, 4)]
    X = rng.standard_normal((7, 5))
    V, Y = rng.standard_normal((4, 3)), np.eye(3)[rng.randint(0, 3, 7)] * 1.3
    gamma, tol = 0.4, 1e-9
    for activation in ("relu", "tanh"):
        Rs, k = rules.deep_fixed_point(X, Ws, Ls, gamma=gamma, activation=activation, tol=tol, max_iter=50000, top_drive=Y @ V.T)
        assert k < 50000
        # the label is one more input of the top layer: W_aug = [W, V] on [r^(P-1), y] (loop oracle: fold y into
        # the top layer's drive by augmenting its weights and the layer below's output)
        worst = 0.0
        for t in range(7):
            r1, r2 = Rs[0][t], Rs[1][t]
            L1 = block_diag(*Lb)
            for i in range(6):
                u = sum(Ws[0][i, j] * X[t, j] for j in range(5)) - sum((L1[i, m] - (i == m)) * r1[m] for m in range(6))
                u += gamma * sum(Ws[1][m, i] * r2[m] for m in range(4))
                worst = max(worst, abs(f_scalar(u, activation) - r1[i]))
            for i in range(4):
                u = sum(Ws[1][i, j] * r1[j] for j in range(6)) + sum(V[i, c] * Y[t, c] for c in range(3))
                u -= sum((Ls[1][i, m] - (i == m)) * r2[m] for m in range(4))
                worst = max(worst, abs(f_scalar(u, activation) - r2[i]))
        assert worst <= tol * max(1.0, np.abs(X @ Ws[0].T).max(), np.abs(Rs[0] @ Ws[1].T + Y @ V.T).max()) * (1 + 1e-6)
        dense, _ = rules.deep_fixed_point(
            X, Ws, [block_diag(*Lb), Ls[1]], gamma=gamma, activation=activation, tol=tol, max_iter=50000, top_drive=Y @ V.T
        )
        np.testing.assert_allclose(Rs[0], dense[0], atol=1e-7)
        np.testing.assert_allclose(Rs[1], dense[1], atol=1e-7)


@pytest.mark.parametrize("alpha, c", [(0.0, 1.0), (1.5, 1.0), (0.0, 0.4)])
def test_deep_structured_update_matches_loop_transcription_of_eq19(alpha, c):
    """One minibatch: Delta W^(p)_ij = eta (c^W_ij <r^(p)_i x^(p)_j> - W_ij), x^(p) = c_p r^(p-1)
    (``layer_input_scale``, c_1 = 1; x^(1) the input),
    Delta L^(p)_ij = (eta / 2 tau)(c^L_ij <r^(p)_i r^(p)_j> - L_ij / (1 + gamma (1 - delta_pP))) (Obeid Eq. 19 with the
    gamma^(p-P) factors absorbed into eta), and for deep S^2M Delta V = eta (<r^(P) y^T> - V) (Bahroun Eq. 8)."""
    X = small_images(34, n=24, dtype=np.float64)
    y = np.arange(24) % 3
    eta, tau, gamma = 0.05, 0.5, 0.4
    enc = NSMEncoder(
        activation="tanh",
        gamma=gamma,
        learning_rate=eta,
        tau=tau,
        alpha=alpha,
        layer_input_scale=c,
        tol=1e-12,
        max_iter_dynamics=50000,
        shuffle=False,
        **{**DEEP_STRUCT, "batch_size": 24},
    )
    enc.partial_fit(X, y)
    enc.partial_fit(X, y)  # weights away from their initial values
    Ws = [W.copy() for W in enc.layer_components_]
    Ls = [L.copy() for L in enc.layer_laterals_]
    V = enc.label_components_.copy() if alpha else None
    Xf = X.reshape(24, -1)
    Y = np.eye(3)[y] * math.sqrt(alpha)
    Rs, _ = rules.deep_fixed_point(
        Xf, [Ws[0], c * Ws[1]], Ls, gamma=gamma, activation="tanh", tol=1e-12, max_iter=50000, top_drive=Y @ V.T if alpha else None
    )
    if not alpha:  # the fixed point of the scaled network's Eq. (17), by loops
        assert deep_residual_loop(Xf, Ws, [dense_lateral(L) for L in Ls], Rs, gamma, "tanh", [1.0, c]) <= 1e-12 * (1 + 1e-6)
    enc.partial_fit(X, y)  # one minibatch
    T = 24
    for p in range(2):
        below = Xf if p == 0 else c * Rs[0]
        R, W, L = Rs[p], Ws[p], dense_lateral(Ls[p])
        cW = enc.layer_feedforward_masks_[p]
        cL = enc.layer_lateral_masks_[p]
        cL = np.ones_like(L, dtype=bool) if cL is None else cL  # blocks: c^L is the block pattern, kept by storage
        decay = 1.0 / (1.0 + gamma) if p == 0 else 1.0
        W_new = np.empty_like(W)
        for i in range(W.shape[0]):
            for j in range(W.shape[1]):
                hebb = sum(R[t, i] * below[t, j] for t in range(T)) / T
                W_new[i, j] = W[i, j] + eta * (cW[i, j] * hebb - W[i, j])
        L_new = np.empty_like(L)
        for i in range(L.shape[0]):
            for j in range(L.shape[1]):
                anti = sum(R[t, i] * R[t, j] for t in range(T)) / T
                L_new[i, j] = L[i, j] + eta / (2 * tau) * (cL[i, j] * anti - decay * L[i, j])
        np.testing.assert_allclose(enc.layer_components_[p], W_new, rtol=0, atol=1e-10)
        got_L = enc.layer_laterals_[p]
        if got_L.ndim == 3:  # blocks: compare the blocks, and L_new is zero off them (it started so)
            L_new = np.stack([L_new[3 * s : 3 * s + 3, 3 * s : 3 * s + 3] for s in range(got_L.shape[0])])
        np.testing.assert_allclose(got_L, L_new, rtol=0, atol=1e-10)
    if alpha:
        R = Rs[-1]
        for i in range(V.shape[0]):
            for c in range(3):
                want = V[i, c] + eta * (sum(R[t, i] * Y[t, c] for t in range(T)) / T - V[i, c])
                assert abs(enc.label_components_[i, c] - want) < 1e-10
    else:
        assert not hasattr(enc, "label_components_")


def test_deep_structured_gamma_zero_is_stacked_single_layers():
    """gamma = 0: no feedback, so (up to the dynamics tolerance, not exactly: the deep dynamics solve all layers
    together) layer 1 learns exactly as the single structured layer does from the same initial weights and
    minibatches, and at fixed weights layer 2's outputs are the single structured layer with layer 2's weights
    applied to layer 1's outputs (its input grid: layer 1's 4 x 4 sites with 2 channels)."""
    X = small_images(35, dtype=np.float64)
    kw = dict(activation="tanh", tol=1e-12, max_iter_dynamics=50000, shuffle=False, max_iter=2, batch_size=20, random_state=0, input_scale=1.0)
    deep = NSMEncoder(
        3, hidden_layer_sizes=(2,), structure="local", site_stride=2, radius=(2.0, 1.5), lateral_radius=0.0, gamma=0.0, return_layers="all", **kw
    ).fit(X)
    one = NSMEncoder(2, structure="local", site_stride=2, radius=2.0, lateral_radius=0.0, **kw).fit(X)
    np.testing.assert_allclose(deep.layer_components_[0], one.components_, atol=1e-8)
    np.testing.assert_allclose(deep.layer_laterals_[0], one.lateral_, atol=1e-8)
    R1, R2 = split_layers(deep, deep.transform(X))
    np.testing.assert_allclose(R1, one.transform(X), atol=1e-8)
    top = NSMEncoder(3, structure="local", image_shape=(4, 4, 2), site_stride=2, radius=1.5, lateral_radius=0.0, **kw).fit(R1)
    np.testing.assert_array_equal(top.feedforward_mask_, deep.feedforward_mask_)
    top.components_, top.lateral_ = deep.components_, deep.lateral_
    np.testing.assert_allclose(top.transform(R1), R2, atol=1e-8)
    # with feedback the first layer's outputs change
    fb = NSMEncoder(
        3, hidden_layer_sizes=(2,), structure="local", site_stride=2, radius=(2.0, 1.5), lateral_radius=0.0, gamma=0.5, return_layers="all", **kw
    ).fit(X)
    assert np.abs(fb.layer_components_[0] - one.components_).max() > 1e-4


def test_deep_structured_block_lateral_equals_dense_masked():
    X = small_images(36)
    kw = dict(DEEP_STRUCT, lateral_radius=0.0, activation="tanh", gamma=0.3, max_iter=2, tol=1e-7, max_iter_dynamics=5000)
    blocks = NSMEncoder(**kw).fit(X)
    dense = NSMEncoder(**kw)
    dense._block_laterals = False
    dense.fit(X)
    for Lb, Ld, cL in zip(blocks.layer_laterals_, dense.layer_laterals_, dense.layer_lateral_masks_):
        assert Lb.ndim == 3 and Ld.ndim == 2
        np.testing.assert_allclose(dense_lateral(Lb), Ld, atol=2e-5)
        assert np.all(Ld[~cL] == 0.0)
    for Wb, Wd in zip(blocks.layer_components_, dense.layer_components_):
        np.testing.assert_allclose(Wb, Wd, atol=2e-5)
    assert blocks.score(X) == pytest.approx(dense.score(X), rel=1e-4)


def test_deep_structured_cost_falls():
    X = small_images(37, n=400)
    train, test = X[:300], X[300:]
    enc = NSMEncoder(activation="tanh", gamma=0.2, learning_rate=0.05, shuffle=False, **DEEP_STRUCT)
    enc.partial_fit(train[:20])
    c0 = -enc.score(test)
    for _ in range(3):
        enc.partial_fit(train)
    assert -enc.score(test) < 0.8 * c0


def test_deep_structured_numpy_and_torch_agree():
    torch = pytest.importorskip("torch")
    X = small_images(38)
    y = np.arange(60) % 3
    kw = dict(DEEP_STRUCT, activation="tanh", gamma=0.3, alpha=0.5, max_iter=2, tol=1e-6, max_iter_dynamics=2000, return_layers="all")
    a = NSMEncoder(**kw).fit(X, y)
    b = NSMEncoder(backend="torch", **kw).fit(X, y)
    for name in ("layer_components_", "layer_laterals_"):
        for A, B in zip(getattr(a, name), getattr(b, name)):
            np.testing.assert_allclose(A, B, atol=1e-5)
    np.testing.assert_allclose(a.label_components_, b.label_components_, atol=1e-5)
    Zt = a.transform(torch.from_numpy(X))
    assert isinstance(Zt, torch.Tensor)
    np.testing.assert_allclose(Zt.numpy(), a.transform(X), atol=1e-5)
    np.testing.assert_allclose(b.transform(X), a.transform(X), atol=1e-4)


def test_deep_s2m_alpha_zero_and_unlabelled_equal_unsupervised():
    X = small_images(39)
    y = np.arange(60) % 3
    kw = dict(DEEP_STRUCT, activation="tanh", gamma=0.3, max_iter=2)
    unsup = NSMEncoder(**kw).fit(X)
    zero = NSMEncoder(alpha=0.0, **kw).fit(X, y)
    for A, B in zip(unsup.layer_components_ + unsup.layer_laterals_, zero.layer_components_ + zero.layer_laterals_):
        np.testing.assert_array_equal(A, B)
    assert not hasattr(zero, "label_components_")
    # every sample unlabelled, with V present (classes given): Y = 0, V only decays, W and L as unsupervised
    kw1 = dict(kw, shuffle=False)
    u1 = NSMEncoder(**kw1).partial_fit(X)
    s1 = NSMEncoder(alpha=1.0, **kw1).partial_fit(X, np.full(60, -1), classes=[0, 1, 2])
    assert s1.label_components_.shape == (12, 3)
    for A, B in zip(u1.layer_components_ + u1.layer_laterals_, s1.layer_components_ + s1.layer_laterals_):
        np.testing.assert_array_equal(A, B)
    np.testing.assert_array_equal(u1.transform(X), s1.transform(X))
    # labels change every layer (the top directly, the lower ones through the feedback)
    sup = NSMEncoder(alpha=1.0, **kw).fit(X, y)
    assert sup.label_components_.shape == (12, 3) and list(sup.classes_) == [0, 1, 2]
    for A, B in zip(unsup.layer_components_, sup.layer_components_):
        assert np.abs(A - B).max() > 1e-4
    clone = pickle.loads(pickle.dumps(sup))
    np.testing.assert_array_equal(clone.transform(X), sup.transform(X))


@pytest.mark.cuda
def test_deep_structured_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    X = small_images(40)
    y = np.arange(60) % 3
    kw = dict(DEEP_STRUCT, activation="tanh", gamma=0.3, alpha=0.5, max_iter=2, tol=1e-6, max_iter_dynamics=2000)
    a = NSMEncoder(**kw).fit(X, y)
    b = NSMEncoder(backend="torch", device="cuda", **kw).fit(X, y)
    for A, B in zip(a.layer_components_ + a.layer_laterals_, b.layer_components_ + b.layer_laterals_):
        np.testing.assert_allclose(A, B, atol=1e-4)
    Zc = a.transform(torch.from_numpy(X).cuda())
    assert Zc.device.type == "cuda"
    np.testing.assert_allclose(Zc.cpu().numpy(), a.transform(X), atol=1e-4)


def test_schedule_is_the_shared_vocabulary():
    """schedule takes "step" and callables (the base's learning_rate_at): a schedule that stops learning after
    the first epoch gives the weights of one epoch; "step" keeps learning_rate for the first 90% of the epochs."""
    X = lowrank_data(np.random.RandomState(47), 200, 8)
    kw = dict(n_components=3, batch_size=50, shuffle=False, random_state=0)
    one = NSMEncoder(max_iter=1, **kw).fit(X)
    stopped = NSMEncoder(max_iter=3, schedule=lambda epoch, n_epochs: float(epoch == 0), **kw).fit(X)
    np.testing.assert_array_equal(stopped.components_, one.components_)
    np.testing.assert_array_equal(stopped.lateral_, one.lateral_)
    assert stopped.n_iter_ == 3
    step = NSMEncoder(max_iter=2, schedule="step", **kw).fit(X)  # floor(0.9 * 2) = 1: the second epoch at x0.1
    const = NSMEncoder(max_iter=2, **kw).fit(X)
    assert np.abs(step.components_ - const.components_).max() > 1e-6


def test_parameters_without_effect_say_so():
    """A parameter that this input or layout makes ineffective gives a warning that names it (not silence)."""
    rng = np.random.default_rng(0)
    rows, images = rng.random((30, 16)), rng.random((30, 6, 6))
    fast = dict(n_components=3, max_iter=1, random_state=0)
    cases = [
        (dict(window=3), rows, r"window=3 has no effect.*image_shape"),
        (dict(structure="local"), rows, r"structure='local' has no effect"),
        (dict(pool="max", stride=2), rows, r"stride=2, pool='max' only apply to the convolutional"),
        (dict(center=True), images, r"center=True only apply to the convolutional"),
        (dict(radius=2.0, structure=None), images, r"radius=2.0 only apply to structure='local'"),
        (dict(radius=2.0), rows, r"radius=2.0 only apply to structure='local'"),  # structure="auto" on flat rows
        (dict(gamma=0.1), rows, r"gamma=0.1 has no effect: the network has one layer"),
        (dict(activation="tanh", threshold=0.1), rows, r"threshold=0.1 has no effect with activation='tanh'"),
        (dict(cap=2.0), rows, r"cap=2.0 has no effect with activation='relu'"),
        (dict(activation="tanh", dynamics="accelerated"), rows, r"dynamics='accelerated' has no effect"),
        (dict(alpha=1.0), rows, r"alpha=1.0 has no effect without labels"),
    ]
    for kw, X, match in cases:
        with pytest.warns(UserWarning, match=match):
            NSMEncoder(**fast, **kw).fit(X)
    y = np.arange(30) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults, and each parameter where it has an effect, are silent
        NSMEncoder(**fast).fit(rows)
        NSMEncoder(**fast).fit(images)
        NSMEncoder(**fast, window=3, stride=2, pool="max", center=True).fit(images)
        NSMEncoder(**fast, structure="local", radius=2.0).fit(images)
        NSMEncoder(**fast, hidden_layer_sizes=(4,), gamma=0.1).fit(rows)
        NSMEncoder(**fast, activation="capped_relu", threshold=0.1, cap=2.0, dynamics="accelerated").fit(rows)
        NSMEncoder(**fast, alpha=1.0).fit(rows, y)
        NSMEncoder(**fast, alpha=1.0).partial_fit(rows, classes=[0, 1, 2])


def test_input_scale_auto_gives_the_same_network_for_every_pixel_scale():
    """input_scale="auto": uint8 0-255 pixels, [0, 1] floats and any other factor give the same network (the
    inputs are scaled to a root-mean-square norm of 10); input_scale=1.0 feeds the inputs as given."""
    rng = np.random.RandomState(3)
    pixels = rng.randint(0, 256, (120, 5, 5)).astype(np.uint8)
    kw = dict(n_components=4, max_iter=2, random_state=0)
    a, b = NSMEncoder(**kw).fit(pixels), NSMEncoder(**kw).fit(pixels / 255.0)
    norm = np.sqrt(np.mean(np.sum((a.input_scale_ * pixels.reshape(120, -1).astype(np.float64)) ** 2, axis=1)))
    np.testing.assert_allclose(norm, 10.0, rtol=1e-6)
    np.testing.assert_allclose(a.input_scale_ * 255.0, b.input_scale_, rtol=1e-6)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-3, atol=1e-3 * np.abs(a.components_).max())
    np.testing.assert_allclose(a.transform(pixels), b.transform(pixels / 255.0), rtol=1e-3, atol=1e-3 * np.abs(a.transform(pixels)).max())
    given = NSMEncoder(**kw, input_scale=1.0).fit(pixels / 255.0)
    assert given.input_scale_ == 1.0 and not np.allclose(given.components_, b.components_)
    assert NSMEncoder(**kw, window=3).fit(pixels).input_scale_ == 1.0  # patches: normalize_patches scales them


def test_digits_with_defaults_beat_raw_pixels():
    """Issue 15's floor: NSMEncoder(random_state=0) + LogisticRegression on digits as flat rows (0-16) scores
    at least raw-pixel LogisticRegression on the same stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=450, random_state=0, stratify=y)
    raw = LogisticRegression(max_iter=3000).fit(Xtr / 16.0, ytr).score(Xte / 16.0, yte)
    enc = NSMEncoder(random_state=0).fit(Xtr)
    acc = LogisticRegression(max_iter=3000).fit(enc.transform(Xtr), ytr).score(enc.transform(Xte), yte)
    assert acc >= raw, (acc, raw)


def test_layer_input_scale_is_checked_and_warns_without_layers():
    X = small_images(37)
    with pytest.raises(ValueError, match="layer_input_scale has 2 entries but the network has 1 layers above the first"):
        NSMEncoder(activation="tanh", layer_input_scale=(0.5, 0.5), max_iter=1, **DEEP_STRUCT).fit(X)
    with pytest.warns(UserWarning, match="layer_input_scale=0.5 has no effect: the network has one layer"):
        NSMEncoder(2, layer_input_scale=0.5, structure="local", max_iter=1, input_scale=1.0).fit(X)
    # the scale reaches layer 2's input: its outputs change, layer 1's do not (gamma = 0: no feedback)
    kw = dict(activation="tanh", max_iter=1, learning_rate=1e-12, return_layers="all", **DEEP_STRUCT)
    paper = NSMEncoder(**kw).fit(X)
    a = split_layers(paper, paper.transform(X))
    enc = NSMEncoder(layer_input_scale=(0.5,), **kw).fit(X)
    b = split_layers(enc, enc.transform(X))
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)
    assert np.abs(a[1] - b[1]).max() > 1e-3
