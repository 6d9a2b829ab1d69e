"""ReceptiveFieldDisplay, tested headless (Agg) on the image it draws."""

import numpy as np
import pytest

from sklhebb import KrotovPatchEncoder
from sklhebb.plotting import ReceptiveFieldDisplay, filters_to_images

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def test_filters_are_stretched_to_unit_interval_per_filter():
    F = np.array([[-2.0, 0.0, 2.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    imgs = filters_to_images(F, (2, 2))
    np.testing.assert_allclose(imgs[0].ravel(), [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(imgs[1], 0.5)  # constant filter: mid grey, no NaN


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
    disp = ReceptiveFieldDisplay(F, shape=(2, 2))
    from sklhebb.plotting import _order

    assert list(_order(F, "norm", (2, 2))) == [1, 2, 0, 3]
    fig, ax = plt.subplots()
    disp.plot(ax=ax)
    assert disp.figure_ is fig
    assert len(disp.images_) == 4
    plt.close(fig)


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        ReceptiveFieldDisplay(np.zeros((3, 5)), shape=(2, 2))
