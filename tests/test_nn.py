"""The layer kit sklhebb.nn: forward passes against torch.nn.functional, feedback
passes against torch.autograd (float64), pooling against a literal loop oracle,
the architecture parser, and NumPy/torch agreement."""

import numpy as np
import pytest

from sklhebb import rules
from sklhebb._backend import resolve, to_numpy
from sklhebb.image import fold, im2col
from sklhebb.nn import (
    PRESETS,
    Conv,
    Dense,
    Dropout,
    MaxPool,
    Network,
    Sum,
    UntiedConv,
    UntiedDense,
    build_layers,
    parse_architecture,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional

NP = resolve("numpy")
TORCH = resolve("torch")


# ------------------------------------------------------ independent references
def _t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def _ref_conv(x, W, b):
    """'same' stride-1 convolution with torch (NHWC in and out), TF padding split."""
    k = W.shape[0]
    before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
    xn = F.pad(x.permute(0, 3, 1, 2), (before, after, before, after))
    y = F.conv2d(xn, W.permute(3, 2, 0, 1))
    y = y.permute(0, 2, 3, 1)
    return y if b is None else y + b


def _ref_untied(x, W, b):
    """Locally connected layer: torch unfold + einsum, one filter per position."""
    H, Wd, k, _, C, Fo = W.shape
    before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
    xn = F.pad(x.permute(0, 3, 1, 2), (before, after, before, after))
    cols = F.unfold(xn, k)  # (B, C*k*k, H*W) ordered (c, u, v)
    cols = cols.reshape(x.shape[0], C, k, k, H, Wd)
    y = torch.einsum("bcuvyx,yxuvco->byxo", cols, W)
    return y if b is None else y + b


def _ref_pool(x, size, stride):
    """Zero padding at the bottom/right, windows anchored at multiples of stride."""
    H, W = x.shape[1:3]
    oh, ow = -(-H // stride), -(-W // stride)
    Hp, Wp = (oh - 1) * stride + size, (ow - 1) * stride + size
    xn = x.permute(0, 3, 1, 2)
    xn = F.pad(xn, (0, max(0, Wp - W), 0, max(0, Hp - H)))[:, :, :Hp, :Wp]
    return F.max_pool2d(xn, size, stride).permute(0, 2, 3, 1)


def _ref_forward(net, tparams, x, masks, scale):
    """The network's function written with torch.nn.functional, for autograd."""
    outs = []
    for i, layer in enumerate(net.layers):
        ins = [x if j < 0 else outs[j] for j in net.parents[i]]
        b = tparams.get(f"b{i}")
        if isinstance(layer, Dense):
            h = ins[0].reshape(ins[0].shape[0], -1) @ tparams[f"W{i}"]
            h = h if b is None else h + b
            h = h.reshape((h.shape[0],) + layer.out_shape)
        elif isinstance(layer, UntiedConv):
            h = _ref_untied(ins[0], tparams[f"W{i}"], b)
        elif isinstance(layer, Conv):
            h = _ref_conv(ins[0], tparams[f"W{i}"], b)
        elif isinstance(layer, MaxPool):
            h = _ref_pool(ins[0], layer.size, layer.stride)
        elif isinstance(layer, Dropout):
            h = ins[0] * masks[i] if i in masks else ins[0]
        elif isinstance(layer, Sum):
            h = ins[0] + ins[1]
        if layer.has_weights and layer.activation:
            h = torch.clamp(scale * h, -1.0, 1.0)
        outs.append(h)
    return outs[-1]


ARCH = "conv 4 3x3; conv 4 3x3; sum; maxpool 3; drop .5; untied 3 2x2; maxpool 2, stride 2; full 7"


def _setup(arch, shape, n_out, *, bias, seed=0, B=6):
    rng = np.random.RandomState(seed)
    net = Network(build_layers(arch, n_out), shape, ramp_scale=0.5, use_bias=bias)
    params, _ = net.init_params(rng, "float64", feedback="random")
    for k in params:
        if k.startswith("b"):
            params[k] = rng.uniform(-0.1, 0.1, params[k].shape)
    X = rng.uniform(-1, 1, (B,) + shape)
    y = rng.randint(0, n_out, B)
    masks = net.draw_masks(np.random.default_rng(seed), B, "float64")
    return net, params, X, y, masks


@pytest.mark.parametrize("loss", ["hinge", "softmax"])
@pytest.mark.parametrize(
    "arch, shape",
    [
        ((9, 8), (5,)),
        (ARCH, (7, 6, 2)),
        ("conv 3 5x5; maxpool 3; drop .3; full 6", (8, 8, 1)),
        ("sparse 3 3x3; maxpool 2, stride 2; conv 2 2x2; full 4", (5, 4, 2)),
    ],
    ids=["dense", "conv-sum-pool-drop-untied", "simpnet-like", "untied-dense"],
)
def test_bp_feedback_pass_is_the_negative_autograd_gradient(arch, shape, loss):
    """use='W': every layer's increment equals -dL/dW of an independent torch
    implementation (F.conv2d, F.max_pool2d, unfold) with the same dropout masks."""
    n_out, mu = 5, 0.25
    net, params, X, y, masks = _setup(arch, shape, n_out, bias=True)
    out, caches = net.forward(NP, params, X, train=True, masks=masks)
    delta = rules.hinge_error(out, y, mu) if loss == "hinge" else rules.softmax_error(out, y)
    incs = net.feedback(NP, params, caches, delta, use="W")

    tparams = {k: _t(v).requires_grad_(True) for k, v in params.items() if not k.startswith("R")}
    tout = _ref_forward(net, tparams, _t(X), {i: _t(m) for i, m in masks.items()}, 0.5)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    ty = torch.tensor(y)
    if loss == "hinge":  # Eq. (4), written out here with torch ops
        Y = F.one_hot(ty, n_out).double()
        L = (Y * torch.relu(1 - tout) + mu * (1 - Y) * torch.relu(1 + tout)).sum(1).mean()
    else:
        L = F.cross_entropy(tout, ty)
    L.backward()
    assert len(incs) == len(net.weight_nodes)
    for inc, i in zip(incs, net.weight_nodes):
        for key in ("W", "b"):
            grad = tparams[f"{key}{i}"].grad.numpy()
            assert np.abs(grad).max() > 0
            np.testing.assert_allclose(inc[key], -grad, rtol=1e-9, atol=1e-12, err_msg=f"{key}{i}")


def test_feedback_uses_R_not_W():
    """use='R' sends the error through R: changing W of the top layer (not its
    field) leaves the lower increments unchanged, changing R changes them."""
    net, params, X, y, _ = _setup((9, 8), (5,), 4, bias=False)
    out, caches = net.forward(NP, params, X, train=True)
    delta = rules.hinge_error(out, y, 1 / 3)
    base = net.feedback(NP, params, caches, delta, use="R")
    top = net.weight_nodes[-1]
    p2 = dict(params, **{f"W{top}": params[f"W{top}"] * 3})
    same = net.feedback(NP, p2, caches, delta, use="R")
    np.testing.assert_array_equal(base[0]["W"], same[0]["W"])
    p3 = dict(params, **{f"R{top}": params[f"R{top}"] * 3})
    other = net.feedback(NP, p3, caches, delta, use="R")
    # one layer down the error is linear in R_top
    np.testing.assert_allclose(other[1]["W"], 3 * base[1]["W"], rtol=1e-12)


# ------------------------------------------------------------------- pooling
def _loop_pool(x, size, stride):
    """Literal loops: forward max with zero padding, backward to all tied maxima."""
    B, H, W, C = x.shape
    oh, ow = -(-H // stride), -(-W // stride)
    y = np.zeros((B, oh, ow, C))
    for b in range(B):
        for i in range(oh):
            for j in range(ow):
                for c in range(C):
                    vals = [
                        x[b, r, s, c] if (r < H and s < W) else 0.0
                        for r in range(i * stride, i * stride + size)
                        for s in range(j * stride, j * stride + size)
                    ]
                    y[b, i, j, c] = max(vals)
    return y


def _loop_pool_back(x, y, g, size, stride):
    B, H, W, C = x.shape
    gx = np.zeros_like(x)
    for b in range(B):
        for i in range(y.shape[1]):
            for j in range(y.shape[2]):
                for c in range(C):
                    for r in range(i * stride, min(H, i * stride + size)):
                        for s in range(j * stride, min(W, j * stride + size)):
                            if x[b, r, s, c] == y[b, i, j, c]:
                                gx[b, r, s, c] += g[b, i, j, c]
    return gx


@pytest.mark.parametrize("size, stride, H", [(3, 2, 7), (3, 2, 8), (2, 2, 5), (3, 3, 7), (2, 3, 7)])
def test_max_pool_matches_loop_oracle_with_ties(size, stride, H):
    rng = np.random.RandomState(1)
    # values from a small set: many ties, some negative windows
    x = rng.randint(-2, 2, (2, H, H + 1, 3)).astype(np.float64)
    pool = MaxPool(size, stride)
    out_shape = pool.build([x.shape[1:]])
    y, cache = pool.forward(NP, {}, x, train=True)
    assert y.shape[1:] == out_shape == (-(-H // stride), -(-(H + 1) // stride), 3)
    np.testing.assert_array_equal(y, _loop_pool(x, size, stride))
    g = rng.standard_normal(y.shape)
    (gx,) = pool.propagate(g, cache)
    np.testing.assert_allclose(gx, _loop_pool_back(x, y, g, size, stride), atol=1e-12)


@pytest.mark.parametrize("bk", [NP, TORCH], ids=["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "size, stride, H, W",
    [
        (3, 2, 7, 9),  # overlapping windows, odd sizes: the last window reaches the padding
        (3, 2, 8, 6),  # even sizes: no padded row is ever read by a window's inside
        (3, 2, 2, 3),  # a map smaller than one window
        (4, 2, 9, 7),  # two offset blocks of two rows each
        (5, 2, 11, 8),  # three offset blocks, the last of one row
        (3, 1, 5, 6),  # stride 1: every input in up to 9 windows
        (2, 2, 5, 5),
        (3, 3, 7, 8),
        (2, 3, 7, 7),  # size < stride: some inputs belong to no window
        (1, 1, 3, 4),
    ],
)
def test_max_pool_feedback_matches_loop_oracle_on_both_backends(bk, dtype, size, stride, H, W):
    """Forward max and tie-exact feedback (every input equal to its window's
    maximum gets the window's error, summed over its windows) against the
    literal float64 loops, with ties forced: saturated values +-1, zeros that
    tie with the zero padding, copies of a window's maximum, and a channel of
    negative values whose border windows take their maximum from the padding."""
    rng = np.random.RandomState(size * 100 + stride * 10 + H)
    B, C = 3, 4
    x = rng.uniform(-1, 1, (B, H, W, C))
    pick = rng.random_sample(x.shape) < 0.6
    x[pick] = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=int(pick.sum()))
    x[..., 0] = -np.abs(x[..., 0]) - 0.25  # only negative values: the padding wins at the border
    x[:, ::2, ::3, 1] = x[:, 0:1, 0:1, 1]  # one value copied all over a channel
    x = x.astype(dtype)
    pool = MaxPool(size, stride)
    pool.build([x.shape[1:]])
    y, cache = pool.forward(bk, {}, bk.asarray(x), train=True)
    y_ref = _loop_pool(x.astype(np.float64), size, stride)
    np.testing.assert_array_equal(to_numpy(y), y_ref)
    g = rng.standard_normal(y_ref.shape).astype(dtype)
    (gx,) = pool.propagate(bk.asarray(g), cache)
    assert tuple(gx.shape) == x.shape
    ref = _loop_pool_back(x.astype(np.float64), y_ref, g.astype(np.float64), size, stride)
    most_tied = max(
        int((x[:, i * stride : i * stride + size, j * stride : j * stride + size] == y_ref[:, i : i + 1, j : j + 1]).sum((1, 2)).max())
        for i in range(y_ref.shape[1])
        for j in range(y_ref.shape[2])
    )
    assert most_tied >= (2 if size > 1 else 1)  # some window has tied maxima
    tol = 1e-12 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(to_numpy(gx), ref, rtol=tol, atol=tol)


def test_max_pool_pads_with_zero_not_minus_infinity():
    x = -np.ones((1, 5, 5, 1))
    pool = MaxPool(3, 2)
    pool.build([x.shape[1:]])
    y, cache = pool.forward(NP, {}, x, train=True)
    assert y[0, :2, :2, 0].tolist() == [[-1, -1], [-1, -1]]
    # the last window row/column reaches the zero padding
    assert (y[0, 2, :, 0] == 0).all() and (y[0, :, 2, 0] == 0).all()
    (gx,) = pool.propagate(np.ones_like(y), cache)
    # the four windows inside the map send their error to all 9 tied maxima;
    # the five windows whose max is the padding send nothing to real pixels
    assert gx.sum() == 4 * 9
    assert gx[0, 4, 4, 0] == 1  # only window (1, 1) reaches it with a real max


# ------------------------------------------------------------- conv helpers
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_fold_is_the_adjoint_of_im2col(k):
    rng = np.random.RandomState(k)
    x = rng.standard_normal((2, 6, 5, 3))
    top = (k - 1) // 2
    cols = rng.standard_normal((2, 6, 5, k * k * 3))
    lhs = np.sum(im2col(NP, x, k, top, top) * cols)
    rhs = np.sum(x * fold(NP, cols, k, top, top))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_untied_copy_init_is_the_convolution():
    """init='copy' starts every position with the same filter: the same map as a conv."""
    rng = np.random.RandomState(0)
    conv, untied = Conv(4, 3), UntiedConv(4, 3, init="copy")
    conv.build([(6, 5, 2)])
    untied.build([(6, 5, 2)])
    Wu = untied.init_weights(rng, "float64")
    assert Wu.shape == (6, 5, 3, 3, 2, 4)
    x = rng.standard_normal((3, 6, 5, 2))
    yc, _ = conv.forward(NP, {"W": Wu[0, 0]}, x)
    yu, _ = untied.forward(NP, {"W": Wu}, x)
    np.testing.assert_allclose(yu, yc, atol=1e-12)
    dense = UntiedDense(4, 3, init="copy")
    dense.build([(6, 5, 2)])
    Wd = dense.init_weights(np.random.RandomState(0), "float64")
    assert Wd.shape == (6 * 5 * 2, 6 * 5 * 4)
    S = dense.support("float64")
    assert ((Wd != 0) <= (S == 1)).all()  # nothing outside a convolution's connectivity
    # every output position connects to its in-map 3 x 3 neighbours, all C_in x C_out
    rows = sum(min(y + 1, 5) - max(y - 1, 0) + 1 for y in range(6))  # 16
    cols = sum(min(x + 1, 4) - max(x - 1, 0) + 1 for x in range(5))  # 13
    assert S.sum() == rows * cols * 2 * 4
    conv.build([(6, 5, 2)])
    wc = np.random.RandomState(0)
    filt = conv.init_weights(wc, "float64")  # the same first draw as the copy init
    yd, _ = dense.forward(NP, {"W": Wd}, x)
    yc2, _ = conv.forward(NP, {"W": filt}, x)
    np.testing.assert_allclose(yd, yc2, atol=1e-12)
    ind = UntiedConv(4, 3, init="independent")
    ind.build([(6, 5, 2)])
    Wi = ind.init_weights(rng, "float64")
    assert not np.allclose(Wi[0, 0], Wi[1, 1])


# ------------------------------------------------------------------ dropout
def test_dropout_is_inverted_and_off_at_prediction():
    layer = Dropout(0.8)
    layer.build([(50, 40)])
    mask = layer.draw_mask(np.random.default_rng(0), 20, "float64")
    kept = mask > 0
    assert abs(kept.mean() - 0.2) < 0.01  # 40,000 draws: 5 standard deviations
    np.testing.assert_allclose(mask[kept], 1 / 0.2)
    x = np.ones((20, 50, 40))
    y, cache = layer.forward(NP, {}, x, train=True, mask=mask)
    np.testing.assert_array_equal(y, mask)
    (g,) = layer.propagate(np.ones_like(x), cache)
    assert (g[~kept] == 0).all()
    y_eval, _ = layer.forward(NP, {}, x, train=False)
    assert y_eval is x
    with pytest.raises(ValueError):
        Dropout(1.0)


# ------------------------------------------------------------- architecture
def test_parser_reads_the_papers_notation():
    spec = parse_architecture("Conv 32 5x5; Maxpool 3; Drop .8; Full 500; Drop .3; Output")
    assert spec == [("conv", (32, 5)), ("maxpool", (3, 2)), ("drop", (0.8,)), ("full", (500,)), ("drop", (0.3,))]
    spec = parse_architecture("conv 16 3x3; conv 16 3x3;\nSUM;maxpool 3, stride 3; full conn. 500; untied 8 2x2")
    assert spec == [
        ("conv", (16, 3)),
        ("conv", (16, 3)),
        ("sum", ()),
        ("maxpool", (3, 3)),
        ("full", (500,)),
        ("untied", (8, 2)),
    ]
    assert parse_architecture("maxpool 2/2") == [("maxpool", (2, 2))]
    for bad in ["conv 32", "pool 3", "full", "conv 32 5x3", "drop 1.5"]:
        with pytest.raises(ValueError):
            build_layers(bad, 10)


@pytest.mark.parametrize(
    "name, n_weight_layers, before_dense",
    [("simpnet", 3, (16, 16, 32)), ("deepnet", 7, (4, 4, 32)), ("deepernet", 10, (4, 4, 128)), ("deepnet_s", 8, (3, 3, 64))],
)
def test_presets_build_on_cifar_shapes(name, n_weight_layers, before_dense):
    net = Network(build_layers(name, 10), (32, 32, 3))
    assert len(net.weight_nodes) == n_weight_layers
    full = net.layers[net.weight_nodes[-2]]
    assert full.describe() == "full 500" and full.in_shape == before_dense
    assert net.output_shape == (10,)
    # presets are plain strings of the grammar
    assert len(parse_architecture(PRESETS[name])) == len(net.layers) - 1


def test_sum_needs_equal_shapes():
    with pytest.raises(ValueError, match="same shape"):
        Network(build_layers("conv 4 3x3; conv 8 3x3; sum", 3), (6, 6, 1))
    with pytest.raises(ValueError, match="image"):
        Network(build_layers("conv 4 3x3", 3), (12,))


# ---------------------------------------------------------------- backends
def _arrays(tree):
    if isinstance(tree, (tuple, list)):
        return [a for t in tree for a in _arrays(t)]
    return [] if tree is None or isinstance(tree, (int, float)) else [np.array(to_numpy(tree), copy=True)]


@pytest.mark.parametrize("bk", [NP, TORCH], ids=["numpy", "torch"])
def test_feedback_leaves_caches_and_delta_untouched(bk):
    """The feedback pass writes sigma' over error maps it owns, never over the
    forward caches, the output error or a map a SUM sends to two parents: a
    second pass over the same caches gives the same increments."""
    net, params, X, y, masks = _setup(ARCH, (7, 6, 2), 5, bias=True, B=5)
    p = {k: bk.asarray(v) for k, v in params.items()}
    out, caches = net.forward(bk, p, bk.asarray(X), train=True, masks={k: bk.asarray(v) for k, v in masks.items()})
    delta = rules.hinge_error(out, bk.asarray(y), 0.25)
    before = _arrays(caches) + _arrays(delta)
    first = net.feedback(bk, p, caches, delta, use="R")
    after = _arrays(caches) + _arrays(delta)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    second = net.feedback(bk, p, caches, delta, use="R")
    for i1, i2 in zip(first, second):
        for key in i1:
            np.testing.assert_array_equal(to_numpy(i1[key]), to_numpy(i2[key]))


def test_numpy_and_torch_agree_on_forward_and_feedback():
    net, params, X, y, masks = _setup(ARCH, (7, 6, 2), 5, bias=True, B=8)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    m32 = {k: v.astype(np.float32) for k, v in masks.items()}
    X32 = X.astype(np.float32)
    results = []
    for bk in (NP, TORCH):
        p = {k: bk.asarray(v) for k, v in p32.items()}
        out, caches = net.forward(bk, p, bk.asarray(X32), train=True, masks={k: bk.asarray(v) for k, v in m32.items()})
        delta = rules.hinge_error(out, bk.asarray(y), 0.25)
        incs = net.feedback(bk, p, caches, delta, use="R")
        results.append([np.asarray(out)] + [np.asarray(inc["W"]) for inc in incs])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
