"""The local competitive rule (Zhou, arXiv 2209.13400, Eq. 4) and LocalCompetitiveEncoder."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from sklhebb import rules
from sklhebb._backend import resolve
from sklhebb._training import DivergenceError
from sklhebb.encoders.competitive import LocalCompetitiveEncoder
from sklhebb.nn import UntiedConv, UntiedDense
from sklhebb.nn.competitive import local


# ------------------------------------------------------------------ oracles
def oracle_eq4(W, X, rates):
    """Literal Eq. (4), float64 loops: dw_ij = (1/B) sum_b r_b y_j (x_i - sum_k y_k w_ik)."""
    n, m = W.shape
    B = X.shape[0]
    dW = np.zeros((n, m))
    for b in range(B):
        y = [sum(X[b, u] * W[u, j] for u in range(n)) for j in range(m)]
        for i in range(n):
            rec = sum(y[k] * W[i, k] for k in range(m))
            for j in range(m):
                dW[i, j] += rates[b] * y[j] * (X[b, i] - rec)
    return dW / B


def local_connections(shape, size, Co):
    """Every connection of a locally connected layer, by loops: (local index, dense index).

    Output unit (h, w, o) sees input pixel (h + dy - p, w + dx - p), channel c, when it lies in the
    image; the local weight Wl[h, w, (dy * size + dx) * Ci + c, o] is the dense weight
    M[(hh * W + ww) * Ci + c, (h * W + w) * Co + o].
    """
    H, Wd, Ci = shape
    p = size // 2
    for h in range(H):
        for w in range(Wd):
            for dy in range(size):
                for dx in range(size):
                    hh, ww = h + dy - p, w + dx - p
                    if 0 <= hh < H and 0 <= ww < Wd:
                        for c in range(Ci):
                            for o in range(Co):
                                yield (h, w, (dy * size + dx) * Ci + c, o), ((hh * Wd + ww) * Ci + c, (h * Wd + w) * Co + o)


def local_to_dense(Wl, size):
    """Dense (H*W*Cin, H*W*Cout) matrix of a locally connected layer."""
    H, Wd, D, Co = Wl.shape
    M = np.zeros((H * Wd * (D // (size * size)), H * Wd * Co))
    for loc, den in local_connections((H, Wd, D // (size * size)), size, Co):
        M[den] = Wl[loc]
    return M


def dense_to_local(M, shape, size, Co):
    H, Wd, Ci = shape
    Wl = np.zeros((H, Wd, size * size * Ci, Co))
    for loc, den in local_connections(shape, size, Co):
        Wl[loc] = M[den]
    return Wl


def test_rule_matches_loop_oracle():
    rng = np.random.RandomState(0)
    W = rng.normal(size=(7, 4)) * 0.3
    X = rng.normal(size=(5, 7))
    r = rng.normal(size=5)
    np.testing.assert_allclose(rules.competitive_update(W, X, rates=r), oracle_eq4(W, X, r), rtol=1e-12, atol=1e-12)
    # rates=None is r_b = 1; a given Y is used as is
    np.testing.assert_allclose(rules.competitive_update(W, X), oracle_eq4(W, X, np.ones(5)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rules.competitive_update(W, X, Y=X @ W, rates=r), oracle_eq4(W, X, r), rtol=1e-12)


def test_rule_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(1)
    W, X, r = rng.normal(size=(6, 3)), rng.normal(size=(4, 6)), rng.normal(size=4)
    got = rules.competitive_update(torch.from_numpy(W), torch.from_numpy(X), rates=torch.from_numpy(r))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), oracle_eq4(W, X, r), rtol=1e-12, atol=1e-12)


def test_local_rule_is_the_masked_dense_rule():
    """Section V: a locally connected layer is the dense rule with the out-of-field weights fixed at 0."""
    rng = np.random.RandomState(2)
    shape, K, Co, B = (4, 5, 2), 3, 2, 3
    H, Wd, Ci = shape
    Wl = dense_to_local(rng.normal(size=(H * Wd * Ci, H * Wd * Co)), shape, K, Co)  # zero outside the image
    M = local_to_dense(Wl, K)
    mask = local_to_dense(np.ones_like(Wl), K) != 0
    X = rng.normal(size=(B,) + shape)
    r = rng.normal(size=B)
    layer = local(shape, K, Co)  # the kit's locally connected layer (nn.UntiedConv), weights (H, W, K*K*Cin, Cout)
    assert isinstance(layer, UntiedConv)
    Y, _ = layer.forward(resolve("numpy"), {"W": Wl}, X)
    Xf = X.reshape(B, -1)
    np.testing.assert_allclose(Y.reshape(B, -1), Xf @ M, rtol=1e-12, atol=1e-12)
    dense_dW = oracle_eq4(M, Xf, r) * mask
    dWl = layer.competitive_increment(Wl, X, Y, r)
    np.testing.assert_allclose(local_to_dense(dWl, K), dense_dW, rtol=1e-10, atol=1e-12)
    # weights that would reach outside the image get no change
    outside = dense_to_local(np.ones_like(M), shape, K, Co) == 0
    assert np.all(dWl[outside] == 0)
    # the same layer stored as the authors store it (one dense matrix, masked) learns the same
    masked = UntiedDense(Co, K)
    masked.build([shape])
    np.testing.assert_allclose(masked.competitive_increment(M, Xf, Xf @ M, r), dense_dW, rtol=1e-10, atol=1e-12)
    # and both start at zero outside the image (Zhou's truncated-normal init)
    W0 = layer.truncated_normal(np.random.RandomState(0), 0.1, "float64")
    assert np.all(W0.reshape(Wl.shape)[outside] == 0) and np.all(W0.reshape(Wl.shape)[~outside] != 0)
    assert np.all(masked.truncated_normal(np.random.RandomState(0), 0.1, "float64")[~mask] == 0)


def test_activations():
    rng = np.random.RandomState(3)
    Y = rng.normal(size=(6, 5))
    Y[0] = 0
    S = rules.square_normalize(Y)
    np.testing.assert_allclose(np.linalg.norm(S[1:], axis=1), 1, rtol=1e-12)
    assert np.all(S[0] == 0) and np.all(S >= 0)
    mean, var = rng.uniform(0, 1, size=5), rng.uniform(0.01, 1, size=5)
    Z = rules.std_abs(Y, mean, var)
    assert np.all(np.isfinite(Z)) and np.all(Z[0] == 0)
    np.testing.assert_allclose(np.linalg.norm(Z[1:], axis=1), np.linalg.norm(Y[1:], axis=1), rtol=1e-12)
    # direction: the standardised |y|
    z = (np.abs(Y[1]) - mean) / np.sqrt(var)
    np.testing.assert_allclose(Z[1] / np.linalg.norm(Z[1]), z / np.linalg.norm(z), rtol=1e-12)
    m2, v2 = rules.abs_statistics_update(Y, mean, var, 0.9)
    np.testing.assert_allclose(m2, 0.9 * mean + 0.1 * np.abs(Y).mean(0))
    np.testing.assert_allclose(v2, 0.9 * var + 0.1 * ((np.abs(Y) - m2) ** 2).mean(0))


# ------------------------------------------------------------------ encoder
def low_rank_data(n=400, d=16, rank=5, seed=0):
    rng = np.random.RandomState(seed)
    return rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) + 0.05 * rng.normal(size=(n, d))


FAST = dict(max_iter=30, batch_size=10, random_state=0)


@pytest.mark.parametrize("training", ["layerwise", "joint"])
def test_property3_sum_of_squares_tends_to_number_of_neurons(training):
    X = low_rank_data()
    # m <= rank of the data (5): every neuron finds a direction with variance
    enc = LocalCompetitiveEncoder(3, hidden_layer_sizes=(4,), activation="std_abs", training=training, **FAST).fit(X)
    for W, m in zip(enc.coefs_, (4, 3)):
        assert abs(np.sum(W**2) - m) < 0.05 * m
    # a fresh initialisation is far from it
    assert np.sum(LocalCompetitiveEncoder(6, max_iter=1, batch_size=400, random_state=0).fit(X).coefs_[0] ** 2) < 1


def test_property4_activation_bounded_by_input_strength():
    X = low_rank_data(seed=1)
    enc = LocalCompetitiveEncoder(4, hidden_layer_sizes=(8,), activation="std_abs", training="joint", **FAST).fit(X)
    s = enc.score_samples(X)  # input strength 1 after normalisation
    assert np.all(s <= 1.0 + 1e-2)
    assert np.median(s) > 0.5  # typical samples are nearly reconstructed, not all scores ~ 0


def test_property1_2_reconstruction_equals_pca():
    X = low_rank_data(seed=2)
    enc = LocalCompetitiveEncoder(4, activation="identity", **FAST).fit(X)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    err = np.mean(np.sum((Xn - enc.inverse_transform(enc.transform(X))) ** 2, axis=1))
    Vt = np.linalg.svd(Xn, full_matrices=False)[2][:4]
    pca_err = np.mean(np.sum((Xn - Xn @ Vt.T @ Vt) ** 2, axis=1))
    assert err == pytest.approx(pca_err, rel=0.03)
    # non-orthogonal in general but spanning the principal subspace
    W = enc.coefs_[0]
    np.testing.assert_allclose(Vt.T @ Vt @ W, W, atol=0.05)
    with pytest.raises(ValueError, match="single fully connected linear layer"):
        LocalCompetitiveEncoder(2, hidden_layer_sizes=(4,), activation="identity", max_iter=1).fit(X).inverse_transform(np.zeros((1, 2)))


def test_score_samples_flags_atypical_inputs():
    X = low_rank_data(seed=3)
    enc = LocalCompetitiveEncoder(5, hidden_layer_sizes=(5,), activation="std_abs", training="joint", **FAST).fit(X)
    outliers = np.random.RandomState(9).normal(size=(100, X.shape[1]))
    inl = LocalCompetitiveEncoder  # noqa: F841
    assert np.median(enc.score_samples(X)) > np.percentile(enc.score_samples(outliers), 95)


def test_layerwise_freezes_lower_layers():
    X = low_rank_data(seed=4)
    kw = dict(max_iter=5, batch_size=20, shuffle=False, random_state=0, activation="std_abs")
    one = LocalCompetitiveEncoder(6, **kw).fit(X)
    two = LocalCompetitiveEncoder(3, hidden_layer_sizes=(6,), training="layerwise", **kw).fit(X)
    np.testing.assert_allclose(two.coefs_[0], one.coefs_[0], rtol=1e-6)  # layer 2's training left layer 1 alone
    np.testing.assert_allclose(two.running_mean_[0], one.running_mean_[0], rtol=1e-6)
    joint = LocalCompetitiveEncoder(3, hidden_layer_sizes=(6,), training="joint", **kw).fit(X)
    assert two.n_iter_ == 10 and joint.n_iter_ == 5


@pytest.mark.parametrize("activation", ["square_normalize", "abs", "std_abs", "identity"])
def test_transform_outputs(activation):
    X = low_rank_data(n=100)
    enc = LocalCompetitiveEncoder(3, hidden_layer_sizes=(6,), activation=activation, max_iter=3, batch_size=20, random_state=0).fit(X)
    Z = enc.transform(X)
    assert Z.shape == (100, 3) and np.all(np.isfinite(Z))
    if activation == "square_normalize":  # unit vectors times feature_scale="auto" = sqrt(3 units)
        np.testing.assert_allclose(np.linalg.norm(Z, axis=1), np.sqrt(3), rtol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(enc.set_params(feature_scale=1.0).transform(X), axis=1), 1, rtol=1e-5)
        enc.set_params(feature_scale="auto")
    if activation == "abs":
        assert np.all(Z >= 0)
    enc_all = LocalCompetitiveEncoder(
        3, hidden_layer_sizes=(6,), activation=activation, return_layers="all", max_iter=3, batch_size=20, random_state=0
    )
    Za = enc_all.fit(X).transform(X)
    assert Za.shape == (100, 9)
    np.testing.assert_allclose(Za[:, 6:], Z, rtol=1e-5)
    assert list(enc_all.get_feature_names_out())[-1] == "localcompetitiveencoder8"


def test_partial_fit_chunks_equal_one_epoch():
    X = low_rank_data(n=100)
    kw = dict(
        n_components=3,
        hidden_layer_sizes=(5,),
        activation="std_abs",
        training="joint",
        batch_size=20,
        shuffle=False,
        schedule="constant",
        random_state=0,
    )
    full = LocalCompetitiveEncoder(max_iter=1, **kw).fit(X)
    part = LocalCompetitiveEncoder(**kw)
    assert part.partial_fit(X[:40]) is part
    part.partial_fit(X[40:])
    for a, b in zip(full.coefs_, part.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(full.running_var_[1], part.running_var_[1], rtol=1e-5)
    assert part.n_steps_ == full.n_steps_ == 5


def test_numpy_and_torch_agree():
    torch = pytest.importorskip("torch")
    X = low_rank_data(n=120).astype(np.float32)
    kw = dict(n_components=4, hidden_layer_sizes=(6,), activation="std_abs", training="joint", max_iter=3, batch_size=20, random_state=0)
    a = LocalCompetitiveEncoder(**kw).fit(X)
    b = LocalCompetitiveEncoder(backend="torch", **kw).fit(X)
    for wa, wb in zip(a.coefs_, b.coefs_):
        assert isinstance(wb, np.ndarray)
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-6)
    Zt = a.transform(torch.from_numpy(X))
    assert isinstance(Zt, torch.Tensor)
    np.testing.assert_allclose(Zt.numpy(), a.transform(X), rtol=1e-4, atol=1e-6)


def test_locally_connected_encoder():
    rng = np.random.RandomState(5)
    X = rng.rand(60, 6, 7)
    kw = dict(hidden_layer_sizes=(3,), window=3, activation="std_abs", training="joint", max_iter=10, batch_size=10, random_state=0)
    enc = LocalCompetitiveEncoder(2, **kw)
    Z = enc.fit(X).transform(X)
    assert Z.shape == (60, 6 * 7 * 2)
    assert enc.coefs_[0].shape == (6, 7, 9, 3) and enc.coefs_[1].shape == (6, 7, 27, 2)
    # weights reaching outside the image stay exactly zero
    assert np.all(enc.coefs_[0][0, 0, :3] == 0) and np.all(enc.coefs_[1][-1, -1, -9:] == 0)
    assert np.all(enc.score_samples(X) <= 1 + 1e-2)
    # 2-D input with image_shape gives the same model
    enc2 = LocalCompetitiveEncoder(2, image_shape=(6, 7), **kw)
    np.testing.assert_allclose(enc2.fit(X.reshape(60, -1)).transform(X.reshape(60, -1)), Z, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="needs images"):
        LocalCompetitiveEncoder(3, window=3).fit(X.reshape(60, -1))
    with pytest.raises(ValueError, match="odd"):
        LocalCompetitiveEncoder(3, window=2).fit(X)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        LocalCompetitiveEncoder(3, hidden_layer_sizes=(4, 0)).fit(X)


def test_divergence_leaves_estimator_unfitted():
    X = low_rank_data(n=100) * 1e3
    enc = LocalCompetitiveEncoder(4, normalize_input=False, learning_rate=10.0, max_iter=5, batch_size=10, random_state=0)
    with pytest.raises(DivergenceError):
        enc.fit(X)
    assert not hasattr(enc, "coefs_")


def test_black_images_give_zero_features_not_nan():
    X = np.zeros((20, 9))
    X[10:] = np.random.RandomState(0).rand(10, 9)
    for act in ["square_normalize", "std_abs"]:
        enc = LocalCompetitiveEncoder(4, activation=act, max_iter=2, batch_size=5, random_state=0).fit(X)
        Z = enc.transform(X)
        assert np.all(np.isfinite(Z)) and np.all(enc.score_samples(X[:10]) == 0)


@pytest.mark.cuda
def test_torch_cuda_agrees_with_numpy():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    X = low_rank_data(n=120)
    kw = dict(n_components=4, hidden_layer_sizes=(6,), activation="std_abs", training="joint", max_iter=3, batch_size=20, random_state=0)
    a = LocalCompetitiveEncoder(**kw).fit(X)
    b = LocalCompetitiveEncoder(backend="torch", device="cuda", **kw).fit(X)
    for wa, wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-9)
    Zt = a.transform(torch.from_numpy(X).cuda())
    assert Zt.is_cuda
    np.testing.assert_allclose(Zt.cpu().numpy(), a.transform(X), rtol=1e-6, atol=1e-9)


# ------------------------------------------------- defaults (issue 15)
def test_stat_momentum_without_std_abs_warns_and_defaults_are_silent():
    X = low_rank_data(n=60)
    with pytest.warns(UserWarning, match="stat_momentum=0.9 has no effect with activation='abs'"):
        LocalCompetitiveEncoder(3, activation="abs", stat_momentum=0.9, max_iter=1).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LocalCompetitiveEncoder(random_state=0, max_iter=1).fit(X)
        LocalCompetitiveEncoder(3, activation="std_abs", stat_momentum=0.9, max_iter=1).fit(X)
        LocalCompetitiveEncoder(random_state=0, max_iter=1).fit(X.reshape(60, 4, -1))


def test_defaults_beat_raw_pixels_on_digits():
    """Issue 15's digits case: LocalCompetitiveEncoder(random_state=0) + LogisticRegression >= raw pixels."""
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=450, random_state=0, stratify=y)
    raw = LogisticRegression(max_iter=3000).fit(Xtr / 16, ytr).score(Xte / 16, yte)
    enc = LocalCompetitiveEncoder(random_state=0).fit(Xtr)
    acc = LogisticRegression(max_iter=3000).fit(enc.transform(Xtr), ytr).score(enc.transform(Xte), yte)
    assert acc >= raw
