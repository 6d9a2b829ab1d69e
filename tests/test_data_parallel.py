"""Data-parallel training (sklhebb.distributed.data_parallel) on 2 CPU ranks over gloo.

The ranks are processes started here with torch.multiprocessing (spawn) on a free localhost port;
each job runs several fits in one process group, since starting one costs seconds.

Exactness: rank r trains on the rows that make up its half of every minibatch: with per-rank
minibatches of B rows, the single process's minibatch k of 2B rows (shuffle=False, in order) is
rank 0's minibatch k followed by rank 1's, so rank r gets rows [2Bk + rB, 2Bk + (r+1)B) for every k.
"""

import os
import pickle
import socket
import tempfile
import time
import traceback

import numpy as np
import pytest

from sklhebb import ActivationLearningClassifier, KrotovPatchEncoder, LocalCompetitiveEncoder, NSMEncoder, URFBClassifier

from ._settings import EXTRA_PARAMS, FAST_PARAMS

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

WORLD = 2
CLASSES = {c.__name__: c for c in (KrotovPatchEncoder, NSMEncoder, LocalCompetitiveEncoder, ActivationLearningClassifier, URFBClassifier)}
SUPERVISED = ("ActivationLearningClassifier", "URFBClassifier")


# ------------------------------------------------------------------ harness
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, backend, job, args, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    import datetime

    if backend == "nccl":
        torch.cuda.set_device(rank)  # one GPU per rank
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        result = ("ok", job(rank, world, *args))
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        result = ("raised", type(exc).__name__, str(exc), traceback.format_exc())
    with open(os.path.join(out, f"{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)
    if result[0] == "ok":
        dist.destroy_process_group()


def run_ranks(job, *args, world=WORLD, backend="gloo"):
    """``job(rank, world, *args)`` on ``world`` spawned ranks; the list of their results."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(_worker, args=(world, _free_port(), backend, job, args, out), nprocs=world, join=True, start_method="spawn")
        results = []
        for r in range(world):
            with open(os.path.join(out, f"{r}.pkl"), "rb") as f:
                results.append(pickle.load(f))
    return results


def _values(results):
    for r in results:
        assert r[0] == "ok", r[-1]
    return [r[1] for r in results]


# --------------------------------------------------------------- estimators
def _data(name, params, n_images, seed=0):
    """Float64 data: 6 x 6 images for Krotov's own layout, else rows of prod(image_shape) (or 9) features."""
    rng = np.random.RandomState(seed)
    if name == "KrotovPatchEncoder" and "image_shape" not in params:
        return rng.uniform(size=(n_images, 6, 6, 1)), None
    d = int(np.prod(params.get("image_shape", (9,))))
    y = np.arange(n_images) % 3 if name in SUPERVISED or params.get("alpha") else None
    return rng.uniform(size=(n_images, d)), y


def _setting(name, params, B):
    params = dict(params, batch_size=B, shuffle=False)
    if name == "KrotovPatchEncoder" and "image_shape" not in params:
        params["window"] = 3  # 16 patches per 6 x 6 image
    if name in SUPERVISED:
        params["max_iter"] = 3
    return params


def _shard(A, rows_per_batch, rank, world=WORLD):
    """Rank ``rank``'s rows: its ``rows_per_batch`` rows of every minibatch of the concatenated data."""
    if A is None:
        return None
    blocks = A.reshape((-1, world, rows_per_batch) + A.shape[1:])
    return np.ascontiguousarray(blocks[:, rank].reshape((-1,) + A.shape[1:]))


def _fitted(est):
    """The public fitted attributes."""
    return {k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}


# (name, params, per-rank minibatch B in rows or patches, patches per image)
N_STEPS = 4  # minibatches per epoch
CASES = [
    ("KrotovPatchEncoder", FAST_PARAMS["KrotovPatchEncoder"], 16, 16),
    ("KrotovPatchEncoder", dict(FAST_PARAMS["KrotovPatchEncoder"], normalize_update=False, learning_rate=1e-3), 32, 16),
    # ZCA whitening fitted at setup: on data this small its sample is every patch, so the ranks' summed sums are exact
    ("KrotovPatchEncoder", dict(FAST_PARAMS["KrotovPatchEncoder"], whiten=0.1), 16, 16),
    ("NSMEncoder", FAST_PARAMS["NSMEncoder"], 8, 1),
    ("NSMEncoder", dict(EXTRA_PARAMS[0][1], image_shape=(3, 3)), 8, 1),  # deep and structured, with feedback and labels (S^2M)
    ("NSMEncoder", dict(FAST_PARAMS["NSMEncoder"], window=1, image_shape=(1, 3)), 6, 3),  # convolutional: patches
    ("LocalCompetitiveEncoder", FAST_PARAMS["LocalCompetitiveEncoder"], 8, 1),
    ("LocalCompetitiveEncoder", dict(FAST_PARAMS["LocalCompetitiveEncoder"], activation="std_abs", training="joint"), 8, 1),
    ("LocalCompetitiveEncoder", dict(n_components=2, hidden_layer_sizes=(3,), window=3, image_shape=(3, 3), max_iter=2, random_state=0), 8, 1),
    ("ActivationLearningClassifier", FAST_PARAMS["ActivationLearningClassifier"], 8, 1),
    ("ActivationLearningClassifier", dict(FAST_PARAMS["ActivationLearningClassifier"], feedback_update="summed"), 8, 1),
    ("URFBClassifier", FAST_PARAMS["URFBClassifier"], 8, 1),
    ("URFBClassifier", dict(hidden_layer_sizes="conv 2 3x3; maxpool 2; drop .5; full 6", image_shape=(4, 4), random_state=0), 8, 1),
    ("URFBClassifier", dict(FAST_PARAMS["URFBClassifier"], propagate_with="post_update", feedback="bp"), 8, 1),
]
ID = [f"{name}-{i}" for i, (name, *_) in enumerate(CASES)]


def _case_data(case):
    name, params, B, per = case
    params = _setting(name, params, B)
    X, y = _data(name, params, N_STEPS * WORLD * B // per)
    return params, X, y, B // per


def _fit_case(case, rank, world):
    from sklhebb.distributed import data_parallel

    params, X, y, rows = _case_data(case)
    est = CLASSES[case[0]](**params)
    with data_parallel():
        est.fit(_shard(X, rows, rank, world), _shard(y, rows, rank, world))
    return _fitted(est)


def _job_exact(rank, world, cases):
    return [_fit_case(case, rank, world) for case in cases]


def _assert_same(a, b, rtol=0.0, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, list) and va and isinstance(va[0], np.ndarray):
            for x, z in zip(va, vb):
                np.testing.assert_allclose(x, z, rtol=rtol, atol=atol, err_msg=k)
        elif isinstance(va, list):
            np.testing.assert_allclose(np.asarray(va, dtype=float), np.asarray(vb, dtype=float), rtol=rtol, atol=atol, err_msg=k)
        elif isinstance(va, np.ndarray) and va.dtype.kind in "fc":
            np.testing.assert_allclose(va, vb, rtol=rtol, atol=atol, err_msg=k)
        elif isinstance(va, float):
            np.testing.assert_allclose(va, vb, rtol=rtol, atol=atol, err_msg=k)
        elif isinstance(va, np.ndarray):
            np.testing.assert_array_equal(va, vb, err_msg=k)
        elif isinstance(va, dict):
            _assert_same(va, vb, rtol, atol)
        else:
            assert va == vb, k


@pytest.mark.parametrize("index", range(len(CASES)), ids=ID)
def test_two_ranks_equal_one_process_with_twice_the_batch(exact_results, index):
    name, _, B, _ = CASES[index]
    params, X, y, _ = _case_data(CASES[index])
    ref = CLASSES[name](**dict(params, batch_size=2 * B)).fit(X, y)
    r0, r1 = exact_results[0][index], exact_results[1][index]
    _assert_same(r0, r1)  # every rank holds the very same model
    # and it is the single process's (n_steps_ included: each rank steps as often); batch_size_ is a rank's
    want = _fitted(ref)
    if "batch_size_" in want:
        assert (r0.pop("batch_size_"), want.pop("batch_size_")) == (B, 2 * B)
    _assert_same(r0, want, rtol=1e-9, atol=1e-9)


# the torch backend on CPU tensors (gloo): the same exactness
TORCH_CASES = [
    ("KrotovPatchEncoder", dict(FAST_PARAMS["KrotovPatchEncoder"], backend="torch"), 16, 16),
    ("URFBClassifier", dict(FAST_PARAMS["URFBClassifier"], backend="torch"), 8, 1),
]


@pytest.fixture(scope="module")
def exact_results():
    """Every case of CASES and TORCH_CASES, fitted on 2 ranks in one process group."""
    return _values(run_ranks(_job_exact, CASES + TORCH_CASES))


@pytest.fixture(scope="module")
def torch_results(exact_results):
    return [r[len(CASES) :] for r in exact_results]


@pytest.mark.parametrize("index", range(len(TORCH_CASES)), ids=[c[0] for c in TORCH_CASES])
def test_torch_backend_two_ranks_equal_one_process(torch_results, index):
    name, _, B, _ = TORCH_CASES[index]
    params, X, y, _ = _case_data(TORCH_CASES[index])
    want = _fitted(CLASSES[name](**dict(params, batch_size=2 * B)).fit(X, y))
    r0, r1 = torch_results[0][index], torch_results[1][index]
    _assert_same(r0, r1)
    if "batch_size_" in want:
        r0.pop("batch_size_"), want.pop("batch_size_")
    _assert_same(r0, want, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------ unequal shards
# rank 0 has 5 minibatches of B = 8 rows, rank 1 has 3: every rank takes 5 steps, rank 1 the last
# two with no rows; the whole epoch is then one process's 3 minibatches of 16 rows (both ranks)
# followed by 2 of 8 (rank 0's last rows), which two partial_fit calls reproduce.
UNEQUAL = [
    ("KrotovPatchEncoder", dict(n_components=8, window=None, image_shape=None, random_state=0)),
    ("NSMEncoder", dict(FAST_PARAMS["NSMEncoder"], input_scale=1.0)),
    ("NSMEncoder", dict(EXTRA_PARAMS[0][1], image_shape=(3, 3), input_scale=1.0)),
    ("LocalCompetitiveEncoder", dict(FAST_PARAMS["LocalCompetitiveEncoder"], activation="std_abs")),
    ("ActivationLearningClassifier", FAST_PARAMS["ActivationLearningClassifier"]),
    ("URFBClassifier", dict(FAST_PARAMS["URFBClassifier"], input_scale=1.0)),
]
SIZES = (40, 24)


def _unequal_data(seed=1):
    rng = np.random.RandomState(seed)
    X = rng.uniform(size=(sum(SIZES), 9))
    return X, np.arange(sum(SIZES)) % 3


def _partial_kw(name, y):
    return {"classes": np.unique(y)} if name in SUPERVISED or name == "NSMEncoder" else {}


def _job_unequal(rank, world, cases):
    from sklhebb.distributed import data_parallel

    X, y = _unequal_data()
    lo = 0 if rank == 0 else SIZES[0]
    Xs, ys = X[lo : lo + SIZES[rank]], y[lo : lo + SIZES[rank]]
    out = []
    for name, params in cases:
        yy = ys if (name in SUPERVISED or params.get("alpha")) else None
        kw = _partial_kw(name, y) if yy is not None else {}
        with data_parallel():
            partial = CLASSES[name](**dict(params, batch_size=8, shuffle=False)).partial_fit(Xs, yy, **kw)
            # shuffled fits: reproducible from random_state
            fits = [_fitted(CLASSES[name](**dict(params, batch_size=8, max_iter=2)).fit(Xs, yy)) for _ in range(2)]
        out.append((_fitted(partial), fits))
    return out


@pytest.fixture(scope="module")
def unequal_results():
    return _values(run_ranks(_job_unequal, UNEQUAL))


@pytest.mark.parametrize("index", range(len(UNEQUAL)), ids=[f"{n}-{i}" for i, (n, _) in enumerate(UNEQUAL)])
def test_unequal_shards_stay_in_step(unequal_results, index):
    name, params = UNEQUAL[index]
    (p0, fits0), (p1, fits1) = unequal_results[0][index], unequal_results[1][index]
    _assert_same(p0, p1)
    assert p0["n_steps_"] == 5  # the larger shard's minibatches, on both ranks
    for a, b in [(fits0[0], fits1[0]), (fits0[0], fits0[1]), (fits1[0], fits1[1])]:
        _assert_same(a, b)  # identical on both ranks, and the same again from the same random_state
    # one process: both ranks' first 3 minibatches as 3 of 16 rows, then rank 0's last 16 rows in 2 of 8
    X, y = _unequal_data()
    r0, r1 = X[: SIZES[0]], X[SIZES[0] :]
    y0, y1 = y[: SIZES[0]], y[SIZES[0] :]
    both = np.concatenate([np.concatenate([r0[8 * k : 8 * k + 8], r1[8 * k : 8 * k + 8]]) for k in range(3)])
    yb = np.concatenate([np.concatenate([y0[8 * k : 8 * k + 8], y1[8 * k : 8 * k + 8]]) for k in range(3)])
    supervised = name in SUPERVISED or params.get("alpha")
    kw = _partial_kw(name, y) if supervised else {}
    ref = CLASSES[name](**dict(params, batch_size=16, shuffle=False)).partial_fit(both, yb if supervised else None, **kw)
    ref.set_params(batch_size=8).partial_fit(r0[24:], y0[24:] if supervised else None)
    want = _fitted(ref)
    # per-call records (loss curves, dynamics-step means, counts) differ between one call and two
    for key in ("n_iter_", "n_steps_", "loss_curve_", "alignment_", "error_curve_", "n_dynamics_steps_", "batch_size_"):
        p0.pop(key, None), want.pop(key, None)
    _assert_same(p0, want, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------- failure
def _fit_timed(X, timeout, before=0.0):
    """What a data-parallel fit raised and after how many seconds (``before`` idle seconds first; < 0: raise at once)."""
    from sklhebb.distributed import data_parallel

    t0 = time.perf_counter()
    try:
        with data_parallel(timeout=timeout):
            if before < 0:
                raise ValueError("this rank fails before its fit")
            time.sleep(before)
            KrotovPatchEncoder(n_components=4, window=None, image_shape=None, batch_size=8, max_iter=2, random_state=0).fit(X)
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__, str(exc)[:200], time.perf_counter() - t0
    return None, "", time.perf_counter() - t0


def _job_failure(rank, world):
    X = np.random.RandomState(rank).uniform(size=(64, 9))
    # rank 1 raises inside the context: the group is destroyed as the error leaves it
    raised = _fit_timed(X, 60, before=-1.0 if rank == 1 else 0.0)
    # rank 1 stalls for 4 s: rank 0's collective gives up after the 1 s timeout
    stalled = _fit_timed(X, 1, before=4.0 if rank == 1 else 0.0)
    return raised, stalled


def test_a_failing_rank_makes_every_rank_raise():
    (raised0, stalled0), (raised1, stalled1) = _values(run_ranks(_job_failure))
    assert raised1[:2] == ("ValueError", "this rank fails before its fit")
    assert raised0[0] is not None and raised0[2] < 30, raised0  # not a fit that rank 1 never joined
    assert stalled0[0] is not None and 0.8 < stalled0[2] < 3.5, stalled0  # the timeout, not rank 1's 4 s
    assert stalled1[0] is not None, stalled1  # and the late rank raises too


# --------------------------------------------------------- one process alone
def test_data_parallel_needs_a_process_group():
    from sklhebb.distributed import data_parallel

    if dist.is_initialized():  # pragma: no cover - a session that runs inside a group
        pytest.skip("a process group is initialised in this process")
    with pytest.raises(RuntimeError, match="init_process_group"):
        with data_parallel():
            pass


def test_one_process_imports_nothing_from_torch():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from sklhebb import KrotovPatchEncoder; import sklhebb.distributed; "
        "KrotovPatchEncoder(n_components=4, window=None, image_shape=None, max_iter=1, random_state=0).fit(np.random.rand(20, 9)); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


# ---------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available() or not dist.is_nccl_available(), reason="needs CUDA and NCCL")
def test_cuda_nccl_ranks_equal_one_process():
    world = min(torch.cuda.device_count(), WORLD)  # NCCL: one GPU per rank
    case = ("KrotovPatchEncoder", dict(FAST_PARAMS["KrotovPatchEncoder"], backend="torch", device="cuda"), 16, 16)
    results = _values(run_ranks(_job_exact, [case], world=world, backend="nccl"))
    params, X, _, _ = _case_data(case)
    want = KrotovPatchEncoder(**dict(params, batch_size=world * case[2])).fit(X)  # minibatches of every rank's rows
    for (r,) in results:
        np.testing.assert_allclose(r["components_"], want.components_, rtol=1e-9, atol=1e-9)
