"""get_feature_names_out of the encoders names unit and (pooled) position where transform's outputs sit on a
grid, in the order of transform's columns; flat outputs keep scikit-learn's prefix0..N names."""

import re

import numpy as np
import pytest

from sklhebb import KrotovPatchEncoder, LocalCompetitiveEncoder, NSMEncoder

NAME = re.compile(r"^(?P<prefix>[a-z]+)(?:_l(?P<layer>\d+))?_u(?P<unit>\d+)_r(?P<row>\d+)c(?P<col>\d+)$")


def _parse(names):
    out = []
    for n in names:
        m = NAME.match(n)
        assert m, n
        out.append((int(m["layer"] or 0), int(m["unit"]), int(m["row"]), int(m["col"])))
    return np.array(out)


def _images(n=12, side=9, seed=0):
    return np.random.default_rng(seed).random((n, side, side))


def test_krotov_names_match_a_literal_loop_over_transform_layout():
    X = _images()
    win, pool, K = 3, 2, 5
    enc = KrotovPatchEncoder(K, window=win, pool_size=pool, pool_stride=pool, power=2, max_iter=1, random_state=0).fit(X)
    Z = enc.transform(X)
    names = enc.get_feature_names_out()
    assert names.shape == (Z.shape[1],) and names[0] == "krotovpatchencoder_u0_r0c0"
    F = enc.components_ / np.linalg.norm(enc.components_, axis=1, keepdims=True)
    oh = X.shape[1] - win + 1
    for column, (_, unit, row, col) in enumerate(_parse(names)):
        best = 0.0  # max over the pooling window of ReLU(cos)^2 of the centred, normalised patches
        for i in range(pool * row, min(pool * row + pool, oh)):
            for j in range(pool * col, min(pool * col + pool, oh)):
                v = X[3, i : i + win, j : j + win].ravel()
                v = v - v.mean()
                best = max(best, max(float(v @ F[unit]) / np.linalg.norm(v), 0.0) ** 2)
        np.testing.assert_allclose(Z[3, column], best, rtol=1e-9, atol=1e-12)


def _changed_positions(enc, X, pixel):
    """(layer, unit, row, col) of the columns of transform that a change of one pixel moves."""
    Y = X.copy()
    Y[:, pixel[0], pixel[1]] += 0.5
    moved = np.abs(enc.transform(Y) - enc.transform(X)).max(axis=0) > 1e-9
    return _parse(enc.get_feature_names_out()[moved])


@pytest.mark.parametrize("pixel", [(0, 0), (4, 6), (8, 8)])
def test_nsm_convolutional_names_give_the_positions_a_pixel_reaches(pixel):
    X = _images()
    win = 3
    enc = NSMEncoder(3, window=win, pool="max", pool_size=1, pool_stride=1, max_iter=1, random_state=0).fit(X)
    moved = _changed_positions(enc, X, pixel)
    assert len(moved)
    # output (i, j) sees the patch whose top-left corner is (i, j)
    assert np.all((moved[:, 2] <= pixel[0]) & (pixel[0] < moved[:, 2] + win))
    assert np.all((moved[:, 3] <= pixel[1]) & (pixel[1] < moved[:, 3] + win))
    assert set(moved[:, 1]) <= {0, 1, 2}


@pytest.mark.parametrize("pixel", [(0, 0), (4, 6)])
def test_nsm_structured_names_give_the_sites_a_pixel_reaches(pixel):
    X = _images(side=8)
    stride, radius = 2, 1.5
    enc = NSMEncoder(2, structure="local", site_stride=stride, radius=radius, max_iter=1, random_state=0).fit(X)
    names = enc.get_feature_names_out()
    assert names.shape == (enc.transform(X).shape[1],) and names[:3].tolist() == ["nsmencoder_u0_r0c0", "nsmencoder_u1_r0c0", "nsmencoder_u0_r0c1"]
    moved = _changed_positions(enc, X, pixel)
    assert len(moved)
    # a site (r, c) sits at the centre of its stride x stride block and sees the pixels within the radius
    cy, cx = stride * moved[:, 2] + (stride - 1) / 2, stride * moved[:, 3] + (stride - 1) / 2
    assert np.all((cy - pixel[0]) ** 2 + (cx - pixel[1]) ** 2 <= radius**2 + 1e-9)


def test_local_competitive_names_give_the_positions_a_pixel_reaches_in_every_layer():
    X = _images(side=7)
    enc = LocalCompetitiveEncoder(
        2, hidden_layer_sizes=(3,), window=3, activation="abs", normalize_input=False, return_layers="all", max_iter=1, random_state=0
    ).fit(X)
    names = enc.get_feature_names_out()
    assert names.shape == (enc.transform(X).shape[1],) == (7 * 7 * (3 + 2),)
    pixel = (3, 3)
    moved = _changed_positions(enc, X, pixel)
    for layer, reach in ((0, 1), (1, 2)):  # a 3 x 3 window per layer: one more pixel of reach per layer
        m = moved[moved[:, 0] == layer]
        assert len(m) and set(m[:, 1]) <= set(range(3 if layer == 0 else 2))
        assert np.all(np.abs(m[:, 2] - pixel[0]) <= reach) and np.all(np.abs(m[:, 3] - pixel[1]) <= reach)
    assert NAME.match(names[0])["prefix"] == "localcompetitiveencoder" and names[0].startswith("localcompetitiveencoder_l0_")


@pytest.mark.parametrize(
    "enc",
    [
        KrotovPatchEncoder(4, image_shape=None, max_iter=1, random_state=0),
        NSMEncoder(4, max_iter=1, random_state=0),
        LocalCompetitiveEncoder(4, max_iter=1, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_flat_outputs_keep_the_class_prefix_and_index(enc):
    X = np.random.default_rng(0).random((20, 10))
    names = enc.fit(X).get_feature_names_out()
    prefix = type(enc).__name__.lower()
    assert names.tolist() == [f"{prefix}{i}" for i in range(4)]
