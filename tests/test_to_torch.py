"""to_torch() hand-off of NSMEncoder and LocalCompetitiveEncoder (pre-training, then torch fine-tuning):
the module holds the learned weights, trainable, and reproduces transform where it is exact."""

import numpy as np
import pytest

from sklhebb import LocalCompetitiveEncoder, NSMEncoder

torch = pytest.importorskip("torch")

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64])


def _rows(dtype, n=40, d=12):
    return np.random.default_rng(0).normal(size=(n, d)).astype(dtype)


def _images(dtype, n=6):
    return np.random.default_rng(1).random((n, 7, 7, 2)).astype(dtype)


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def _tdt(dtype):
    """The torch dtype that matches the NumPy dtype of the data (passed as to_torch's dtype=)."""
    return torch.float64 if dtype == np.float64 else torch.float32


def _trainable(module):
    params = list(module.parameters())
    assert params and all(p.requires_grad for p in params)


# ------------------------------------------------------------------------- NSM
@DTYPES
def test_nsm_fully_connected_module_is_the_feedforward_layer(dtype):
    X = _rows(dtype)
    enc = NSMEncoder(n_components=5, max_iter=2, batch_size=10, random_state=0).fit(X)
    module = enc.to_torch(dtype=_tdt(dtype))
    assert isinstance(module, torch.nn.Linear) and module.bias is None
    assert module.weight.dtype == _tdt(dtype)
    _trainable(module)
    out = module(torch.as_tensor(X)).detach().numpy()
    # the network's input is input_scale_ * x, folded into the module's weight
    np.testing.assert_allclose(out, (enc.input_scale_ * X) @ enc.components_.T, **_tol(dtype))


@DTYPES
def test_nsm_linear_dynamics_module_equals_transform(dtype):
    X = _rows(dtype)
    enc = NSMEncoder(n_components=4, activation="linear", max_iter=3, batch_size=10, tol=1e-9, max_iter_dynamics=5000, random_state=0).fit(X)
    module = enc.to_torch(lateral=True, dtype=_tdt(dtype))
    _trainable(module)
    out = module(torch.as_tensor(X)).detach().numpy()
    tol = dict(rtol=1e-3, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out, enc.transform(X), **tol)
    # a loss backpropagates to W
    module(torch.as_tensor(X)).pow(2).sum().backward()
    assert module[0].weight.grad is not None


def test_nsm_lateral_is_refused_where_it_is_not_exact():
    X = _rows(np.float64)
    enc = NSMEncoder(n_components=4, max_iter=1, random_state=0).fit(X)  # relu
    with pytest.raises(ValueError, match="activation='linear'"):
        enc.to_torch(lateral=True)


@DTYPES
def test_nsm_convolutional_module_holds_the_shared_filters(dtype):
    X = _images(dtype)
    enc = NSMEncoder(n_components=3, window=3, stride=2, max_iter=1, batch_size=16, random_state=0).fit(X)
    module = enc.to_torch(dtype=_tdt(dtype))
    assert isinstance(module, torch.nn.Conv2d)
    _trainable(module)
    out = module(torch.as_tensor(X).permute(0, 3, 1, 2)).detach().numpy()  # (n, N, oh, ow)
    n, H, W, C = X.shape
    oh, ow = (H - 3) // 2 + 1, (W - 3) // 2 + 1
    assert out.shape == (n, 3, oh, ow)
    for i in range(oh):
        for j in range(ow):
            patch = X[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :].reshape(n, -1)  # (row, col, channel)
            np.testing.assert_allclose(out[:, :, i, j], patch @ enc.components_.T, **_tol(dtype))


def test_nsm_deep_network_is_refused():
    enc = NSMEncoder(n_components=3, hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(_rows(np.float64))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        enc.to_torch()


# ----------------------------------------------------------- LocalCompetitive
@DTYPES
@pytest.mark.parametrize("activation", ["square_normalize", "abs", "std_abs", "identity"])
def test_competitive_module_equals_transform(activation, dtype):
    X = _rows(dtype)
    X[0] = 0  # zero rows stay zero through the input normalisation
    enc = LocalCompetitiveEncoder(4, hidden_layer_sizes=(6,), activation=activation, max_iter=2, batch_size=10, random_state=0).fit(X)
    module = enc.to_torch(dtype=_tdt(dtype))
    assert isinstance(module, torch.nn.Sequential)
    linears = [m for m in module if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(6, 12), (4, 6)]
    _trainable(module)
    out = module(torch.as_tensor(X)).detach().numpy()
    np.testing.assert_allclose(out, enc.transform(X), **_tol(dtype))


def test_competitive_refuses_locally_connected_layers():
    X = np.random.default_rng(0).random((8, 5, 5))
    enc = LocalCompetitiveEncoder(2, window=3, max_iter=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="window"):
        enc.to_torch()


@DTYPES
@pytest.mark.parametrize("activation", ["square_normalize", "std_abs"])
def test_competitive_output_all_module_concatenates_every_layer(activation, dtype):
    X = _rows(dtype)
    enc = LocalCompetitiveEncoder(4, hidden_layer_sizes=(6,), activation=activation, return_layers="all", max_iter=2, batch_size=10, random_state=0)
    enc.fit(X)
    module = enc.to_torch(dtype=_tdt(dtype))
    _trainable(module)
    out = module(torch.as_tensor(X)).detach().numpy()
    assert out.shape == (len(X), 10)
    np.testing.assert_allclose(out, enc.transform(X), **_tol(dtype))


# ------------------------------------------------------------------- dtypes
def _fitted_in_float64():
    """One fitted model of each exporting encoder, fitted on float64 data (scikit-learn's data sets are float64)."""
    from sklhebb import KrotovPatchEncoder

    images = _images(np.float64)
    rows = _rows(np.float64)
    return [
        (KrotovPatchEncoder(n_components=4, window=3, pool_size=2, pool_stride=2, max_iter=1, random_state=0).fit(images), images, True),
        (NSMEncoder(n_components=4, max_iter=1, batch_size=10, random_state=0).fit(rows), rows, False),
        (NSMEncoder(n_components=3, window=3, max_iter=1, batch_size=16, random_state=0).fit(images), images, True),
        (LocalCompetitiveEncoder(4, hidden_layer_sizes=(6,), max_iter=1, batch_size=10, random_state=0).fit(rows), rows, False),
    ]


def _as_input(X, nchw, dtype):
    t = torch.as_tensor(X, dtype=dtype)
    return t.permute(0, 3, 1, 2) if nchw else t


def test_module_of_a_float64_model_is_float32_by_default_and_takes_float32_input():
    for enc, X, nchw in _fitted_in_float64():
        assert enc.transform(X).dtype == np.float64
        module = enc.to_torch()
        assert {p.dtype for p in module.parameters()} == {torch.float32}, type(enc).__name__
        out = module(_as_input(X, nchw, torch.float32))
        assert out.dtype == torch.float32


def test_dtype_argument_gives_a_float64_module_for_float64_input():
    for enc, X, nchw in _fitted_in_float64():
        module = enc.to_torch(dtype=torch.float64)
        assert {p.dtype for p in module.parameters()} == {torch.float64}, type(enc).__name__
        assert module(_as_input(X, nchw, torch.float64)).dtype == torch.float64
        # a float32 module gives the float64 module's numbers to float32 precision
        low = enc.to_torch()(_as_input(X, nchw, torch.float32)).detach().double()
        np.testing.assert_allclose(low.numpy(), module(_as_input(X, nchw, torch.float64)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_module_of_a_float32_model_can_be_float64():
    X = _rows(np.float32)
    enc = LocalCompetitiveEncoder(4, max_iter=1, batch_size=10, random_state=0).fit(X)
    module = enc.to_torch(dtype=torch.float64)
    np.testing.assert_allclose(module(torch.as_tensor(X, dtype=torch.float64)).detach().numpy(), enc.transform(X), rtol=1e-4, atol=1e-5)
