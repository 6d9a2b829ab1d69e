"""The torch fit of KrotovPatchEncoder reads nothing back to the host per minibatch (no device synchronisation).

Counted on CPU tensors: every call that would copy a CUDA tensor's value to the
host (``.item()``, ``bool()``/``float()``/``int()`` of a tensor, ``.tolist()``,
``.cpu()``, ``.numpy()``) and the functions whose CUDA kernels read a size back
(``bincount``, ``nonzero``, ``unique``, ``masked_select``). The CPU-only shortcut
of :meth:`Backend.argmax_rows` (NumPy's argmax on a zero-copy view, never taken
on a GPU) is replaced by the device path while counting, and the compiled step,
which runs on CPU tensors' memory and never on a GPU, is switched off: what is
counted is the array-API step that a GPU fit runs.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklhebb import KrotovPatchEncoder, _numba  # noqa: E402
from sklhebb._backend import Backend  # noqa: E402

_METHODS = ["item", "__bool__", "__float__", "__int__", "__index__", "tolist", "cpu", "numpy", "nonzero", "unique", "bincount", "masked_select"]
_FUNCTIONS = ["bincount", "nonzero", "unique", "masked_select"]


def _count_syncs(monkeypatch, fit):
    calls = []

    def counted(owner, name):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    for name in _METHODS:
        counted(torch.Tensor, name)
    for name in _FUNCTIONS:
        counted(torch, name)
    monkeypatch.setattr(Backend, "argmax_rows", lambda self, x: self.xp.argmax(x, axis=1))
    monkeypatch.setattr(_numba, "ENABLED", False)
    try:
        fit()
    finally:
        monkeypatch.undo()
    return calls


@pytest.mark.parametrize("p", [2.0, 3.0])
def test_torch_krotov_fit_has_no_host_sync_per_minibatch(monkeypatch, p):
    X = torch.as_tensor(np.random.default_rng(0).random((20, 10, 10)), dtype=torch.float32)  # 20 x 64 = 1280 patches

    def fit(batch_size):
        return lambda: KrotovPatchEncoder(n_components=8, window=3, p=p, max_iter=2, batch_size=batch_size, random_state=0).fit(X)

    few = _count_syncs(monkeypatch, fit(256))  # 5 minibatches per epoch
    many = _count_syncs(monkeypatch, fit(32))  # 40 minibatches per epoch
    assert len(many) == len(few), (few, many)
    assert len(few) <= 8, few  # per epoch: the finiteness check; per fit: the fitted state
