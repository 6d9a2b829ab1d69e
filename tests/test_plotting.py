"""ReceptiveFieldDisplay and TrainingHistoryDisplay, tested headless (Agg) on what they compute and draw."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sklhebb import ActivationLearningClassifier, KrotovPatchEncoder, LocalCompetitiveEncoder, NSMEncoder, URFBClassifier
from sklhebb.plotting import ReceptiveFieldDisplay, TrainingHistoryDisplay, _order, crop_to_fields, filters_to_images

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


def test_filters_are_stretched_to_unit_interval_per_filter():
    F = np.array([[-2.0, 0.0, 2.0, 4.0], [1.0, 1.0, 1.0, 1.0], [np.nan, 1.0, 3.0, np.nan]])
    imgs = filters_to_images(F, (2, 2))
    np.testing.assert_allclose(imgs[0].ravel(), [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(imgs[1], 0.5)  # constant filter: mid grey, no NaN
    np.testing.assert_allclose(imgs[2].ravel(), [np.nan, 0, 1, np.nan])  # outside the field stays NaN


def test_display_from_krotov_encoder_draws_rgb_filters():
    X = (np.random.default_rng(0).random((10, 8, 8, 3)) * 255).astype(np.uint8)
    enc = KrotovPatchEncoder(n_components=12, window=3, max_iter=1, random_state=0).fit(X)
    disp = ReceptiveFieldDisplay.from_estimator(enc, order="color", n_filters=9)
    assert disp.shape == (3, 3, 3)
    disp.plot(ncols=3)
    assert len(disp.images_) == 9
    assert disp.axes_.shape == (3, 3)
    first = disp.images_[0].get_array()
    assert first.shape == (3, 3, 3)
    assert float(np.min(first)) == 0.0 and float(np.max(first)) == 1.0
    # the drawn pixels are what the figure renders: render and check it is not blank
    disp.figure_.canvas.draw()
    buf = np.asarray(disp.figure_.canvas.buffer_rgba())
    assert buf[..., :3].std() > 10
    plt.close(disp.figure_)


def test_display_inside_given_axes_and_order_by_norm():
    F = np.diag([1.0, 3.0, 2.0, 0.5])
    disp = ReceptiveFieldDisplay(F, shape=(2, 2), title="four filters")
    assert list(_order(F, "norm", (2, 2))) == [1, 2, 0, 3]
    fig, ax = plt.subplots()
    disp.plot(ax=ax)
    assert disp.figure_ is fig
    assert len(disp.images_) == 4
    assert ax.get_title() == "four filters"
    plt.close(fig)


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        ReceptiveFieldDisplay(np.zeros((3, 5)), shape=(2, 2))


# ------------------------------------------------------------- inferred shapes
@pytest.mark.parametrize(
    "make, shape, n_filters",
    [
        (lambda: KrotovPatchEncoder(9, window=3, image_shape=(8, 8), max_iter=1, random_state=0), (3, 3), 9),
        (lambda: KrotovPatchEncoder(9, window=None, image_shape=(8, 8), max_iter=1, random_state=0), (8, 8), 9),
        (lambda: KrotovPatchEncoder(9, max_iter=1, random_state=0), (5, 5), 9),  # image_shape="auto": 8 x 8 digits
        (lambda: NSMEncoder(6, window=3, image_shape=(8, 8), max_iter=1, random_state=0), (3, 3), 6),
        (lambda: NSMEncoder(6, image_shape=(8, 8), structure=None, max_iter=1, random_state=0), (8, 8), 6),
        (lambda: LocalCompetitiveEncoder(6, image_shape=(8, 8), max_iter=1, random_state=0), (8, 8), 6),
        (lambda: LocalCompetitiveEncoder(2, window=3, image_shape=(8, 8), max_iter=1, random_state=0), (3, 3), 8 * 8 * 2),
    ],
    ids=["krotov-window", "krotov-whole-image", "krotov-auto", "nsm-conv", "nsm-dense", "competitive-dense", "competitive-local"],
)
def test_filter_shape_is_inferred_from_the_fitted_encoder(digits, make, shape, n_filters):
    X, _ = digits
    disp = ReceptiveFieldDisplay.from_estimator(make().fit(X))
    assert disp.shape == shape
    assert disp.filters.shape == (n_filters, int(np.prod(shape)))


def test_structured_nsm_fields_are_cropped_to_their_disc(digits):
    X, _ = digits
    enc = NSMEncoder(3, structure="local", image_shape=(8, 8), site_stride=2, radius=2.0, max_iter=1, random_state=0).fit(X)
    whole = ReceptiveFieldDisplay.from_estimator(enc, crop=False)
    assert whole.shape == (8, 8) and len(whole.filters) == 16 * 3
    # outside the structure mask the pixels are NaN, inside they are the weights
    mask = enc.layer_feedforward_masks_[0]
    np.testing.assert_array_equal(np.isnan(whole.filters), ~mask)
    np.testing.assert_array_equal(whole.filters[mask], enc.layer_components_[0][mask])
    cropped = ReceptiveFieldDisplay.from_estimator(enc)
    assert cropped.shape == (4, 4)  # a disc of radius 2 around a site between four pixels spans 4 x 4 pixels
    # every field keeps all its pixels: the same weights, cropped
    for k in range(len(mask)):
        np.testing.assert_array_equal(np.sort(cropped.filters[k][~np.isnan(cropped.filters[k])]), np.sort(enc.layer_components_[0][k][mask[k]]))
    assert "receptive fields" in cropped.title and "tan: outside the receptive field" in cropped.caption


def test_crop_keeps_fields_at_the_border():
    F = np.full((2, 5, 5), np.nan)
    F[0, 0:2, 0:2] = 1.0  # corner field of 2 x 2
    F[1, 1:4, 2:5] = 2.0  # 3 x 3 field at the right border
    crops, shape = crop_to_fields(F.reshape(2, -1), (5, 5))
    assert shape == (3, 3)
    assert np.nansum(crops[0]) == 4.0 and np.nansum(crops[1]) == 18.0


# ------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "est",
    [
        KrotovPatchEncoder(4, image_shape=None, max_iter=1, random_state=0),
        NSMEncoder(4, max_iter=1, random_state=0),
        LocalCompetitiveEncoder(4, max_iter=1, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_encoder_fitted_on_flat_rows_is_refused_unless_shape_is_given(digits, est):
    X, _ = digits
    est.fit(X[:, :60])  # 60 features: not a square, so no image shape can be guessed either
    with pytest.raises(ValueError, match=rf"{type(est).__name__} was fitted on flat rows of 60 features, not images.*image_shape=\(H, W\[, C\]\)"):
        ReceptiveFieldDisplay.from_estimator(est)
    assert ReceptiveFieldDisplay.from_estimator(est, shape=(6, 10)).shape == (6, 10)


def test_estimators_without_filters_and_upper_layers_are_refused(digits):
    X, y = digits
    clf = URFBClassifier((8,), max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="URFBClassifier has no filters to draw.*KrotovPatchEncoder, NSMEncoder or LocalCompetitiveEncoder"):
        ReceptiveFieldDisplay.from_estimator(clf)
    deep = NSMEncoder(3, hidden_layer_sizes=(4,), image_shape=(8, 8), max_iter=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="layer=1: .*only layer 0 has filters that are images"):
        ReceptiveFieldDisplay.from_estimator(deep, layer=1)
    with pytest.raises(ValueError, match="layer=2: NSMEncoder's network has layers 0 to 1"):
        ReceptiveFieldDisplay.from_estimator(deep, layer=2)
    enc = KrotovPatchEncoder(4, window=3, image_shape=(8, 8), max_iter=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="order='wins' needs the data"):
        ReceptiveFieldDisplay.from_estimator(enc, order="wins")


# ------------------------------------------------------------ wins and order
def test_krotov_units_are_ordered_by_wins_counted_as_a_literal_loop(digits):
    X, _ = digits
    X = X[:40]
    enc = KrotovPatchEncoder(6, window=3, image_shape=(8, 8), p=3.0, max_iter=1, random_state=0).fit(X)
    disp = ReceptiveFieldDisplay.from_estimator(enc, X)
    wins = np.zeros(6)
    M = enc.components_.astype(np.float64)
    for img in X.reshape(-1, 8, 8):
        for i in range(6):
            for j in range(6):
                v = img[i : i + 3, j : j + 3].ravel()
                v = v - v.mean()
                n = np.linalg.norm(v)
                v = v / n if n > 0 else v
                wins[np.argmax([np.sum(np.sign(m) * np.abs(m) ** 2 * v) for m in M])] += 1
    want = wins / wins.sum()
    np.testing.assert_allclose(disp.win_fraction, want[disp.units])
    assert list(disp.units) == list(np.argsort(-want, kind="stable"))
    np.testing.assert_array_equal(disp.filters, enc.components_[disp.units])
    assert disp.title == f"KrotovPatchEncoder: 6 of 6 filters (3 x 3), most frequent winner first, on {40 * 36} 3 x 3 patches"
    disp.plot()
    labels = [a.get_title() for a in disp.axes_.ravel()[:6]]
    assert labels == [f"u{u} {100 * f:.1f}%" for u, f in zip(disp.units, want[disp.units])]
    assert disp.title in disp.title_.get_text().replace("\n", " ")
    plt.close(disp.figure_)


def test_wins_are_counted_within_each_group(digits):
    X, _ = digits
    enc = LocalCompetitiveEncoder(3, window=3, image_shape=(8, 8), max_iter=1, random_state=0).fit(X)
    disp = ReceptiveFieldDisplay.from_estimator(enc, X[:50], order="index")
    # the 3 units of a position share its inputs: their shares sum to 1 at every position
    np.testing.assert_allclose(disp.win_fraction.reshape(64, 3).sum(axis=1), 1.0)
    nsm = NSMEncoder(2, structure="local", image_shape=(8, 8), site_stride=4, radius=3.0, max_iter=1, random_state=0).fit(X)
    d2 = ReceptiveFieldDisplay.from_estimator(nsm, X[:50], order="index")
    # the 2 neurons of a site: at most every image has one winner (none where the site is silent)
    assert np.all(d2.win_fraction.reshape(4, 2).sum(axis=1) <= 1.0 + 1e-12)
    Z = nsm.transform(X[:50]).reshape(50, 4, 2)
    want = np.stack([((Z.argmax(axis=2) == u) & (Z.max(axis=2) > 0)).mean(axis=0) for u in range(2)], axis=1).ravel()
    np.testing.assert_allclose(d2.win_fraction, want)


# ------------------------------------------------------------------ history
def test_training_history_draws_loss_and_alignment_per_epoch(digits):
    X, y = digits
    clf = URFBClassifier("full 8; full 6", max_iter=4, random_state=0).fit(X, y)
    disp = TrainingHistoryDisplay.from_estimator(clf, name="urfb").plot()
    assert len(disp.axes_) == 2
    loss_line, *align_lines = disp.lines_
    np.testing.assert_allclose(loss_line.get_ydata(), clf.loss_curve_)
    np.testing.assert_array_equal(loss_line.get_xdata(), [1, 2, 3, 4])
    assert len(align_lines) == clf.alignment_.shape[1] == 3
    for i, line in enumerate(align_lines):
        np.testing.assert_allclose(line.get_ydata(), clf.alignment_[:, i])
        assert line.get_label() == f"urfb, layer {i + 1}"
    assert disp.axes_[0].get_xlabel() == "epoch" and disp.axes_[0].get_ylabel() == "mean training loss (softmax)"
    assert disp.axes_[1].get_ylabel() == "corr(W, R)" and disp.axes_[1].get_title()
    # a second run overlays on the same axes
    bp = URFBClassifier("full 8; full 6", feedback="bp", max_iter=4, random_state=0).fit(X, y)
    again = TrainingHistoryDisplay.from_estimator(bp, name="bp").plot(axes=disp.axes_, color="k")
    assert again.figure_ is disp.figure_ and len(disp.axes_[0].lines) == 2
    plt.close(disp.figure_)


def test_training_history_refuses_estimators_without_a_history(digits):
    X, y = digits
    clf = ActivationLearningClassifier((10, 10), label_repeat=2, feedback=False, max_iter=1, random_state=0).fit(X, y)
    assert clf.error_curve_ is None
    with pytest.raises(TypeError, match=r"ActivationLearningClassifier records no per-epoch training loss.*feedback=False"):
        TrainingHistoryDisplay.from_estimator(clf)
    with pytest.raises(TypeError, match="KrotovPatchEncoder records no per-epoch"):
        TrainingHistoryDisplay.from_estimator(KrotovPatchEncoder(4, max_iter=1, random_state=0).fit(X))


def test_training_history_draws_the_activation_learning_error_curve(digits):
    X, y = digits
    clf = ActivationLearningClassifier((20, 20), label_repeat=2, max_iter=4, random_state=0).fit(X, y)
    disp = TrainingHistoryDisplay.from_estimator(clf).plot()
    np.testing.assert_array_equal(disp.lines_[0].get_ydata(), clf.error_curve_)
    assert len(disp.axes_) == 1 and disp.axes_[0].get_ylabel() == "training error (before each step)"
    plt.close(disp.figure_)
