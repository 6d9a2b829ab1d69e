"""URFBClassifier and the URFB rules: oracles for Eq. (4)-(6), one SGD step under
feedback='bp' against torch.autograd, the paper's invariants (R = W start
reproduces bp, frfb never moves R, W - R is constant under urfb, pruned
connections stay zero), backends, partial_fit and the scikit-learn surface."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils import check_random_state

from sklhebb import rules
from sklhebb.classifiers.urfb import URFBClassifier

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0), y


# --------------------------------------------------------------- rule oracles
def test_hinge_rule_matches_equations_4_and_6():
    rng = np.random.RandomState(0)
    o = rng.uniform(-2, 2, (40, 5))
    y = rng.randint(0, 5, 40)
    mu = 0.3
    L = rules.hinge_loss(o, y, mu)
    D = rules.hinge_error(o, y, mu)
    for b in range(40):
        c = y[b]
        loss = max(1 - o[b, c], 0) + mu * sum(max(1 + o[b, i], 0) for i in range(5) if i != c)
        assert L[b] == pytest.approx(loss, rel=1e-12)
        for i in range(5):
            if i == c:
                expect = 1.0 if o[b, i] < 1 else 0.0
            else:
                expect = -mu if o[b, i] > -1 else 0.0
            assert D[b, i] == expect


def test_output_errors_are_negative_loss_gradients():
    rng = np.random.RandomState(1)
    o = rng.uniform(-2, 2, (30, 4))
    y = rng.randint(0, 4, 30)
    for loss, err in [
        (lambda t: rules.hinge_loss(t, torch.tensor(y), 0.5), rules.hinge_error(o, y, 0.5)),
        (lambda t: rules.softmax_loss(t, torch.tensor(y)), rules.softmax_error(o, y)),
    ]:
        t = torch.tensor(o, requires_grad=True)
        loss(t).sum().backward()
        np.testing.assert_allclose(err, -t.grad.numpy(), atol=1e-12)


def test_saturated_linearity_and_slope_follow_equation_3():
    """sigma(h) = clip(s h, -1, 1); sigma'(h) = s, except where Eq. (3) shuts the
    feedback off: |h| >= 1 (here |s h| >= 1) or |x| = 1. At the boundary
    |s h| = 1 itself the slope is 0 (Appendix 1's control units fire at x = +-1)."""
    s = 0.5
    h = np.array([-5.0, -2.0, -1.0, 0.0, 1.5, 2.0, 3.0])
    x = rules.saturated_linear(h, s)
    np.testing.assert_array_equal(x, [-1, -1, -0.5, 0, 0.75, 1, 1])
    np.testing.assert_array_equal(rules.saturated_linear_slope(x, s), [0, 0, 0.5, 0.5, 0.5, 0, 0])
    # literal transcription on random fields, the boundary and its neighbours
    rng = np.random.RandomState(0)
    for scale in (0.5, 1.0, 0.3):
        b = 1.0 / scale
        h = np.concatenate([rng.uniform(-3 * b, 3 * b, 200), [b, -b, np.nextafter(b, 0), -np.nextafter(b, 0), 0.0]])
        x = rules.saturated_linear(h, scale)
        expect = np.empty_like(h)
        for i in range(len(h)):
            x_i = min(max(scale * h[i], -1.0), 1.0)
            assert x[i] == x_i
            shut = abs(scale * h[i]) >= 1.0 or abs(x_i) == 1.0
            expect[i] = 0.0 if shut else scale
        slope = rules.saturated_linear_slope(x, scale)
        np.testing.assert_array_equal(slope, expect)
        assert slope.dtype == np.float64
        assert (expect[200:202] == 0).all() and (expect[202:] == scale).all()
        # torch, float32 (the neighbours of the boundary round onto it in float32)
        got = rules.saturated_linear_slope(torch.tensor(x[:202], dtype=torch.float32), scale)
        assert got.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy(), expect[:202].astype(np.float32))


def test_layer_slope_is_the_rules_and_zero_at_the_boundary():
    """The layers cache sigma' of rules.saturated_linear_slope: a unit driven exactly
    to |s h| = 1 sends no feedback."""
    from sklhebb._backend import resolve
    from sklhebb.nn import Dense, Network

    net = Network([Dense(4), Dense(2, activation=False)], (2,), ramp_scale=0.5)
    W0 = np.array([[1.0, -1.0, 0.5, 1.5], [1.0, -1.0, 0.5, 1.5]])
    params = {"W0": W0, "W1": np.ones((4, 2))}
    X = np.array([[1.0, 1.0], [0.5, 0.5]])  # fields h = 2 (W0 column 0) and -2: |s h| = 1
    _, caches = net.forward(resolve("numpy"), params, X, train=True)
    h = X @ W0
    np.testing.assert_array_equal(caches[0][-1], rules.saturated_linear_slope(rules.saturated_linear(h, 0.5), 0.5))
    np.testing.assert_array_equal(caches[0][-1], [[0, 0, 0.5, 0], [0.5, 0.5, 0.5, 0.5]])


def test_urfb_update_matches_the_shared_hebbian_increment_of_section_3_1():
    """W and R get the same Hebbian increment delta_k x_i (R scaled by eps eta),
    masked by their own connectivity; a zero feedback rate (FRFB) leaves R alone."""
    rng = np.random.RandomState(4)
    B, n_in, n_out = 7, 5, 3
    x = rng.uniform(-1, 1, (B, n_in))
    delta = rng.uniform(-1, 1, (B, n_out))
    mW = (rng.uniform(size=(n_in, n_out)) < 0.5).astype(np.float64)
    mR = (rng.uniform(size=(n_in, n_out)) < 0.5).astype(np.float64)
    eta, eta_R = 0.1, 0.025
    inc = rules.hebbian_increment(x, delta)
    dW, dR = rules.urfb_update(inc, eta, eta_R, mask_W=mW, mask_R=mR)
    full_W, full_R = rules.urfb_update(inc, eta, eta)
    for i in range(n_in):
        for k in range(n_out):
            hebb = sum(delta[b, k] * x[b, i] for b in range(B)) / B
            assert dW[i, k] == pytest.approx(eta * hebb * mW[i, k], rel=1e-12, abs=1e-15)
            assert dR[i, k] == pytest.approx(eta_R * hebb * mR[i, k], rel=1e-12, abs=1e-15)
            assert full_W[i, k] == full_R[i, k] == pytest.approx(eta * hebb, rel=1e-12)
    assert (dW[mW == 0] == 0).all() and (dR[mR == 0] == 0).all()
    dW0, dR0 = rules.urfb_update(inc, eta, 0.0, mask_W=mW, mask_R=mR)
    np.testing.assert_array_equal(dW0, dW)
    assert dR0 is None


# ------------------------------------------------------ one step against autograd
def _initial(clf, X, y):
    """The weights fit starts from: redraw them with the same seed."""
    from sklhebb.nn import Network, build_layers

    n_classes = len(np.unique(y))
    shape = clf.image_shape and tuple(clf.image_shape) + ((1,) if len(clf.image_shape) == 2 else ())
    shape = shape or (1, 1, X.shape[1])
    net = Network(build_layers(clf.hidden_layer_sizes, n_classes), shape, ramp_scale=clf.ramp_scale)
    init = None if clf.feedback == "bp" else clf.feedback_init
    params, masks = net.init_params(check_random_state(clf.random_state), "float64", feedback=init, connectivity=clf.connectivity)
    Ws = [params[f"W{i}"] for i in net.weight_nodes]
    Rs = [params.get(f"R{i}") for i in net.weight_nodes]
    return Ws, Rs, masks


@pytest.mark.parametrize("loss", ["hinge", "softmax"])
def test_bp_step_is_minus_learning_rate_times_autograd_gradient(digits, loss):
    X, y = digits
    X, y = X[:64], y[:64]
    lr = 0.3
    clf = URFBClassifier(
        (20, 15), feedback="bp", loss=loss, ramp_scale=0.5, learning_rate=lr, batch_size=64, max_iter=1, shuffle=False, random_state=3
    )
    clf.fit(X, y)
    W0, _, _ = _initial(clf, X, y)
    # independent forward: matmuls, clamp(s h), Eq. (4) or cross-entropy
    tW = [torch.tensor(w, requires_grad=True) for w in W0]
    a = torch.tensor(X)
    for w in tW[:-1]:
        a = torch.clamp(0.5 * (a @ w), -1, 1)
    out = a @ tW[-1]
    ty = torch.tensor(y)
    if loss == "hinge":
        Y = torch.nn.functional.one_hot(ty, 10).double()
        L = (Y * torch.relu(1 - out) + (1 / 9) * (1 - Y) * torch.relu(1 + out)).sum(1).mean()
    else:
        L = torch.nn.functional.cross_entropy(out, ty)
    L.backward()
    assert clf.n_steps_ == 1
    for w0, w1, t in zip(W0, clf.coefs_, tW):
        np.testing.assert_allclose(w1 - w0, -lr * t.grad.numpy(), rtol=1e-9, atol=1e-13)
    assert clf.loss_curve_[0] == pytest.approx(float(L.detach()), rel=1e-12)


# --------------------------------------------------------- paper's invariants
def _steps(X, y, k, **kw):
    clf = URFBClassifier(batch_size=40, shuffle=False, random_state=0, **kw)
    for _ in range(k):
        clf.partial_fit(X, y, classes=np.arange(10))
    return clf


def test_urfb_started_at_R_equal_W_is_backpropagation(digits):
    """Zipser & Rumelhart: equal starts stay equal, so urfb computes bp exactly."""
    X, y = digits
    X, y = X[:200], y[:200]
    arch = "conv 4 3x3; maxpool 3; full 20"
    kw = dict(hidden_layer_sizes=arch, image_shape=(8, 8), learning_rate=0.2)
    urfb = _steps(X, y, 3, feedback="urfb", feedback_init="copy", **kw)
    bp = _steps(X, y, 3, feedback="bp", **kw)
    assert urfb.n_steps_ == 15
    for wu, ru, wb, w0 in zip(urfb.coefs_, urfb.feedback_coefs_, bp.coefs_, _initial(bp, X, y)[0]):
        assert not np.allclose(wb, w0)  # training moved the weights
        np.testing.assert_allclose(wu, wb, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(wu, ru)
    np.testing.assert_allclose(urfb.alignment_, 1.0)
    # a random start does not: urfb differs from bp
    rnd = _steps(X, y, 3, feedback="urfb", **kw)
    assert not np.allclose(rnd.coefs_[0], bp.coefs_[0])


def test_frfb_never_changes_R_and_urfb_keeps_W_minus_R(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    # the defaults before issue 15 pinned (hinge, ramp 0.5, constant step): the alignment check was measured on them
    kw = dict(hidden_layer_sizes=(30, 20), max_iter=4, batch_size=50, loss="hinge", ramp_scale=0.5, schedule="constant", random_state=2)
    fr = URFBClassifier(feedback="frfb", **kw).fit(X, y)
    W0, R0, _ = _initial(fr, X, y)
    for r, r0, w, w0 in zip(fr.feedback_coefs_, R0, fr.coefs_, W0):
        np.testing.assert_array_equal(r, r0)
        assert not np.allclose(w, w0)
    ur = URFBClassifier(feedback="urfb", **kw).fit(X, y)
    for w, r, w0, r0 in zip(ur.coefs_, ur.feedback_coefs_, W0, R0):
        assert not np.allclose(r, r0)
        np.testing.assert_allclose(w - r, w0 - r0, atol=1e-12)
    # alignment grows as the common increments outgrow the random starts
    assert ur.alignment_.shape == (4, 3)
    assert (ur.alignment_[-1] > ur.alignment_[0]).all()
    assert (ur.alignment_[-1] > fr.alignment_[-1]).all()


@pytest.mark.parametrize("feedback", ["urfb", "frfb", "bp"])
def test_pruned_connections_stay_exactly_zero(digits, feedback):
    X, y = digits
    clf = URFBClassifier((40, 30), feedback=feedback, connectivity=0.5, max_iter=3, batch_size=50, random_state=0)
    clf.fit(X[:400], y[:400])
    _, _, masks = _initial(clf, X, y)
    n_layers = len(clf.coefs_)
    for n, i in enumerate([0, 1]):  # hidden layers are pruned, the output layer is not
        mW = masks[f"W{i}"].astype(bool)
        assert 0.45 < mW.mean() < 0.55
        assert (clf.coefs_[n][~mW] == 0).all()
        assert (clf.coefs_[n][mW] != 0).mean() > 0.99
        if feedback != "bp":
            mR = masks[f"R{i}"].astype(bool)
            assert (clf.feedback_coefs_[n][~mR] == 0).all()
            assert (mR != mW).mean() > 0.4  # independent masks
    assert (clf.coefs_[n_layers - 1] != 0).all()


# ---------------------------------------------------------------- backends
def test_numpy_and_torch_cpu_agree(digits):
    X, y = digits
    X = X[:300].astype(np.float32)
    y = y[:300]
    kw = dict(
        hidden_layer_sizes="conv 4 3x3; conv 4 3x3; sum; maxpool 3; drop .3; full 20; drop .2",
        image_shape=(8, 8),
        max_iter=2,
        batch_size=50,
        random_state=0,
    )
    a = URFBClassifier(**kw).fit(X, y)
    b = URFBClassifier(backend="torch", **kw).fit(X, y)
    for wa, wb in zip(a.coefs_ + a.feedback_coefs_, b.coefs_ + b.feedback_coefs_):
        assert wa.dtype == wb.dtype == np.float32
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(a.decision_function(X), b.decision_function(X), rtol=1e-4, atol=1e-4)
    out = b.predict_proba(torch.tensor(X))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), a.predict_proba(X), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------- learning
def test_learns_digits_and_urfb_is_closer_to_bp_than_frfb_is_to_chance(digits):
    X, y = digits
    Xtr, ytr, Xte, yte = X[:1200], y[:1200], X[1200:], y[1200:]
    scores = {}
    for fb in ("bp", "urfb", "frfb"):
        clf = URFBClassifier((64,), feedback=fb, batch_size=20, max_iter=15, random_state=0).fit(Xtr, ytr)
        scores[fb] = clf.score(Xte, yte)
        assert clf.loss_curve_[-1] < 0.6 * clf.loss_curve_[0]
        assert len(clf.loss_curve_) == clf.n_iter_ == 15
    # raw-pixel logistic regression scores about 0.90 on this split
    assert scores["bp"] > 0.9 and scores["urfb"] > 0.85 and scores["frfb"] > 0.8, scores


def test_partial_fit_over_chunks_equals_one_epoch_of_fit(digits):
    X, y = digits
    X, y = X[:400], y[:400]
    kw = dict(hidden_layer_sizes=(25,), batch_size=40, shuffle=False, random_state=5)
    full = URFBClassifier(max_iter=1, **kw).fit(X, y)
    part = URFBClassifier(**kw)
    for a, b in [(0, 120), (120, 160), (160, 400)]:  # chunks on batch boundaries
        assert part.partial_fit(X[a:b], y[a:b], classes=np.unique(y)) is part
    for w1, w2 in zip(full.coefs_, part.coefs_):
        np.testing.assert_allclose(w1, w2, rtol=1e-12, atol=1e-14)
    assert part.n_iter_ == 3 and part.n_steps_ == full.n_steps_ == 10
    assert part.alignment_.shape == (3, 2)
    with pytest.raises(ValueError, match="not in classes"):
        part.partial_fit(X[:10], y[:10] + 20)


def test_schedule_scales_the_steps_of_W_and_R_and_partial_fit_keeps_learning_rate(digits):
    X, y = digits
    X, y = X[:200], y[:200]
    kw = dict(hidden_layer_sizes=(20,), batch_size=50, feedback_learning_rate=0.05, random_state=0)
    one = URFBClassifier(max_iter=1, **kw).fit(X, y)
    # factor 0 after the first epoch: neither W nor R moves in the second one
    stop = URFBClassifier(max_iter=2, schedule=lambda epoch, n_epochs: 1.0 if epoch == 0 else 0.0, **kw).fit(X, y)
    for a, b in zip(one.coefs_ + one.feedback_coefs_, stop.coefs_ + stop.feedback_coefs_):
        np.testing.assert_array_equal(a, b)
    assert len(stop.loss_curve_) == stop.n_iter_ == 2
    lin = URFBClassifier(max_iter=2, schedule="linear", **kw).fit(X, y)
    const = URFBClassifier(max_iter=2, schedule="constant", **kw).fit(X, y)
    assert not np.allclose(lin.coefs_[0], const.coefs_[0])
    # partial_fit: the constant learning_rate whatever the schedule
    part = URFBClassifier(schedule=lambda epoch, n_epochs: 0.0, **kw).partial_fit(X, y, classes=np.arange(10))
    for a, b in zip(one.coefs_ + one.feedback_coefs_, part.coefs_ + part.feedback_coefs_):
        np.testing.assert_array_equal(a, b)


def test_partial_fit_switched_from_bp_to_urfb_starts_R_at_random(digits):
    X, y = digits
    X, y = X[:200], y[:200]
    clf = URFBClassifier((20,), feedback="bp", batch_size=50, random_state=0).partial_fit(X, y, classes=np.arange(10))
    assert clf.feedback_coefs_ is None
    W_bp = [w.copy() for w in clf.coefs_]
    clf.set_params(feedback="urfb").partial_fit(X, y)
    assert [r.shape for r in clf.feedback_coefs_] == [w.shape for w in clf.coefs_]
    assert clf.alignment_.shape == (2, 2) and (clf.alignment_[0] == 1).all() and (np.abs(clf.alignment_[1]) < 0.5).all()
    assert not np.allclose(clf.coefs_[0], W_bp[0])


def test_verbose_prints_the_epoch_loss(digits, capsys):
    X, y = digits
    clf = URFBClassifier((10,), max_iter=2, batch_size=50, verbose=1, random_state=0).fit(X[:100], y[:100])
    lines = [line for line in capsys.readouterr().out.splitlines() if "epoch" in line]
    assert len(lines) == 2
    for line, loss in zip(lines, clf.loss_curve_):
        assert f"loss = {loss:.4g}" in line


def test_options_change_the_training(digits):
    """propagate_with, error_clip, softmax, untied and bias each take effect."""
    X, y = digits
    X, y = X[:200], y[:200]
    # the hinge loss and ramp 0.5 (the defaults before issue 15) pinned, so that softmax and ramp 1 are changes
    base = dict(hidden_layer_sizes="conv 3 3x3; full 10", image_shape=(8, 8), max_iter=2, batch_size=50, loss="hinge", ramp_scale=0.5, random_state=0)
    ref = URFBClassifier(**base).fit(X, y)
    for extra in [
        dict(propagate_with="post_update"),
        dict(error_clip=0.5),
        dict(loss="softmax"),
        dict(untied=True),
        dict(off_class_weight=3.0),
        dict(ramp_scale=1.0),
    ]:
        other = URFBClassifier(**{**base, **extra}).fit(X, y)
        assert np.isfinite(other.coefs_[0]).all()
        assert other.coefs_[0].shape == ((8, 8, 3, 3, 1, 3) if extra.get("untied") else ref.coefs_[0].shape)
        if not extra.get("untied"):
            assert not np.allclose(other.coefs_[0], ref.coefs_[0]), extra
    b = URFBClassifier(**base, use_bias=True).fit(X, y)
    assert [i.shape for i in b.intercepts_] == [(3,), (10,), (10,)]
    assert not np.allclose(b.intercepts_[0], 0)


def test_feedback_refreshed_per_epoch_is_stale_within_the_epoch(digits):
    X, y = digits
    X, y = X[:200], y[:200]
    kw = dict(hidden_layer_sizes=(20, 20), feedback="bp", shuffle=False, random_state=0)
    # one step per epoch: the copy is always current, so the runs agree exactly
    a = URFBClassifier(batch_size=200, max_iter=3, feedback_refresh="epoch", **kw).fit(X, y)
    b = URFBClassifier(batch_size=200, max_iter=3, **kw).fit(X, y)
    for wa, wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(wa, wb)
    # several steps per epoch: the errors go down through a stale copy, and training differs
    a = URFBClassifier(batch_size=20, max_iter=1, feedback_refresh="epoch", **kw).fit(X, y)
    b = URFBClassifier(batch_size=20, max_iter=1, **kw).fit(X, y)
    assert not np.allclose(a.coefs_[0], b.coefs_[0])


def test_untied_dense_keeps_the_convolution_support(digits):
    X, y = digits
    clf = URFBClassifier("sparse 3 3x3; full 10", image_shape=(8, 8), max_iter=2, batch_size=50, random_state=0)
    clf.fit(X[:200], y[:200])
    W0, R0, masks = _initial(clf, X, y)
    S = masks["W0"].astype(bool)
    assert S.mean() < 0.2  # 3 x 3 of 8 x 8 positions
    for M, M0 in ((clf.coefs_[0], W0[0]), (clf.feedback_coefs_[0], R0[0])):
        assert (M[~S] == 0).all()
        assert (M[S] != M0[S]).mean() > 0.5  # updated entry by entry inside the support


def test_untied_filters_are_updated_separately(digits):
    X, y = digits
    clf = URFBClassifier("untied 4 3x3; full 20", image_shape=(8, 8), max_iter=2, batch_size=50, random_state=0)
    clf.fit(X[:300], y[:300])
    W0 = _initial(URFBClassifier("untied 4 3x3; full 20", image_shape=(8, 8), random_state=0), X, y)[0][0]
    np.testing.assert_array_equal(W0[0, 0], W0[4, 4])  # started as copies of one filter
    W = clf.coefs_[0]
    assert not np.allclose(W[3, 3], W[4, 4])  # ... and moved apart


# ------------------------------------------------------- scikit-learn surface
def test_predictions_probabilities_and_binary_decision(digits):
    X, y = digits
    mask = np.isin(y, [3, 8])
    Xb, yb = X[mask][:200], np.where(y[mask][:200] == 3, "three", "eight")
    clf = URFBClassifier((20,), batch_size=25, max_iter=5, random_state=0).fit(Xb, yb)
    d = clf.decision_function(Xb)
    assert d.shape == (len(Xb),)
    np.testing.assert_array_equal(clf.predict(Xb), clf.classes_[(d > 0).astype(int)])
    P = clf.predict_proba(Xb)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.log(P), clf.predict_log_proba(Xb), atol=1e-6)
    assert clf.score(Xb, yb) > 0.9
    assert "output 2" in clf.layers_


def test_image_inputs_flat_3d_and_4d_agree(digits):
    X, y = digits
    X, y = X[:150], y[:150]
    kw = dict(hidden_layer_sizes="conv 3 3x3; maxpool 2, stride 2; full 10", max_iter=1, batch_size=50, random_state=0)
    flat = URFBClassifier(image_shape=(8, 8), **kw).fit(X, y)
    cube = URFBClassifier(**kw).fit(X.reshape(-1, 8, 8), y)
    four = URFBClassifier(**kw).fit(X.reshape(-1, 8, 8, 1), y)
    assert flat.image_shape_ == cube.image_shape_ == four.image_shape_ == (8, 8, 1)
    for a, b, c in zip(flat.coefs_, cube.coefs_, four.coefs_):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(flat.predict(X), cube.predict(X.reshape(-1, 8, 8)))
    with pytest.raises(ValueError, match="image"):
        URFBClassifier("conv 3 3x3").fit(X, y)  # rows without image_shape


def test_float64_is_kept_and_float32_default(digits):
    X, y = digits
    a = URFBClassifier((10,), max_iter=1, random_state=0).fit(X[:100], y[:100])
    b = URFBClassifier((10,), max_iter=1, random_state=0).fit(X[:100].astype(np.float32), y[:100])
    assert a.coefs_[0].dtype == np.float64 and b.coefs_[0].dtype == np.float32


def test_divergence_leaves_the_estimator_as_it_was(digits):
    from sklhebb import DivergenceError

    X, y = digits
    X = X[:200].astype(np.float32)
    clf = URFBClassifier((20,), learning_rate=3e38, batch_size=5, max_iter=3, random_state=0)
    with pytest.raises(DivergenceError):
        clf.fit(X, y[:200])
    assert not hasattr(clf, "coefs_")
    clf.set_params(learning_rate=0.1, batch_size=50).partial_fit(X, y[:200], classes=np.arange(10))
    before = [w.copy() for w in clf.coefs_]
    with pytest.raises(DivergenceError):
        clf.set_params(learning_rate=3e38, batch_size=5).partial_fit(X, y[:200])
    for a, b in zip(before, clf.coefs_):
        np.testing.assert_array_equal(a, b)
    assert clf.n_iter_ == 1


# ------------------------------------------------------ defaults (issue 15)
def test_defaults_beat_raw_pixels_on_digits():
    """URFBClassifier(random_state=0) on digits as scikit-learn ships them (0-16), the protocol's split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=450, random_state=0, stratify=y)
    raw = LogisticRegression(max_iter=3000).fit(Xtr / 16, ytr).score(Xte / 16, yte)
    clf = URFBClassifier(random_state=0).fit(Xtr, ytr)
    assert clf.input_scale_ == 16.0
    assert clf.score(Xte, yte) >= raw, (clf.score(Xte, yte), raw)


def test_input_scale_auto_makes_uint8_and_unit_range_pixels_the_same_model(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    kw = dict(hidden_layer_sizes=(20,), max_iter=2, random_state=0)
    pixels = np.round(X * 255).astype(np.uint8)
    unit = URFBClassifier(**kw).fit((pixels / 255).astype(np.float32), y)
    raw = URFBClassifier(**kw).fit(pixels, y)
    assert unit.input_scale_ == 1.0 and raw.input_scale_ == 255.0
    for a, b in zip(unit.coefs_, raw.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(unit.decision_function(pixels / 255), raw.decision_function(pixels), rtol=1e-4, atol=1e-5)
    # input_scale=1.0 feeds the pixels as they are: a different (saturated) network
    as_is = URFBClassifier(input_scale=1.0, **kw).fit(pixels, y)
    assert as_is.input_scale_ == 1.0 and not np.allclose(as_is.coefs_[0], raw.coefs_[0], atol=1e-3)
    # fixed at the first partial_fit call, kept by the later ones
    part = URFBClassifier(**kw).partial_fit(pixels[:100], y[:100], classes=np.arange(10))
    part.partial_fit(pixels[100:] // 2, y[100:])
    assert part.input_scale_ == float(pixels[:100].max())


def test_batch_size_auto_makes_fifty_steps_per_epoch_from_10_to_500():
    rng = np.random.RandomState(0)
    for n, batch in [(100, 10), (1347, 26), (30000, 500)]:
        X, y = rng.rand(n, 3), np.arange(n) % 2
        clf = URFBClassifier((4,), max_iter=1, random_state=0).fit(X, y)
        assert clf.n_steps_ == -(-n // batch), (n, clf.n_steps_)
        assert clf.batch_size_ == batch


def test_auto_batch_size_is_fixed_at_the_first_partial_fit():
    rng = np.random.RandomState(0)
    X, y = rng.rand(1000, 3), np.arange(1000) % 2
    clf = URFBClassifier((4,), random_state=0).partial_fit(X, y, classes=[0, 1])
    assert clf.batch_size_ == 20 and clf.n_steps_ == 50
    clf.partial_fit(X[:100], y[:100])  # a smaller chunk keeps the first call's minibatch size
    assert clf.batch_size_ == 20 and clf.n_steps_ == 55


@pytest.mark.parametrize(
    "params, name",
    [
        (dict(feedback="frfb", feedback_learning_rate=0.01), "feedback_learning_rate"),
        (dict(feedback="bp", feedback_learning_rate=0.01), "feedback_learning_rate"),
        (dict(feedback="bp", feedback_init="copy"), "feedback_init"),
        (dict(feedback="frfb", propagate_with="post_update"), "propagate_with"),
        (dict(feedback="frfb", feedback_refresh="epoch"), "feedback_refresh"),
        (dict(loss="softmax", off_class_weight=2.0), "off_class_weight"),
        (dict(untied_init="independent"), "untied_init"),
    ],
)
def test_parameters_without_effect_warn_naming_themselves(digits, params, name):
    X, y = digits
    clf = URFBClassifier((8,), max_iter=1, random_state=0, **params)
    with pytest.warns(UserWarning, match=rf"{name}=.* has no effect"):
        clf.fit(X[:100], y[:100])


def test_defaults_and_effective_settings_are_silent(digits):
    import warnings

    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        URFBClassifier(random_state=0).fit(X[:200], y[:200])
        URFBClassifier((8,), max_iter=1, feedback_learning_rate=0.01, loss="hinge", off_class_weight=2.0).fit(X[:100], y[:100])
        URFBClassifier("untied 2 3x3", image_shape=(8, 8), untied_init="independent", max_iter=1).fit(X[:100], y[:100])
        URFBClassifier((8,), feedback="bp", propagate_with="post_update", feedback_refresh="epoch", max_iter=1).fit(X[:100], y[:100])
