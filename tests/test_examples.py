"""The examples run: two of them in --quick mode as a new user would (subprocess), writing their figure."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sklhebb.datasets import FASHION_MNIST_DEBIAN

pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, timeout=120):
    figure = EXAMPLES / "out" / f"{name}.png"
    start = time.time()
    # the example imports the sklhebb of this checkout, whichever one the environment has installed
    path = os.pathsep.join(p for p in (str(EXAMPLES.parent), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONPATH=path)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=EXAMPLES.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert figure.exists(), f"{figure} was not written"
    assert figure.stat().st_mtime >= start - 1, f"{figure} is older than this run"
    assert figure.stat().st_size > 1000
    return proc.stdout


def test_colour_filters_quick():
    out = run_example("colour_filters")
    assert "colour-selective" in out


@pytest.mark.skipif(not FASHION_MNIST_DEBIAN.exists(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_multi_block_quick():
    out = run_example("multi_block")
    assert "multi-block" in out and "single block" in out


def test_activation_generation_quick():
    pytest.importorskip("mlxtend")
    out = run_example("activation_generation")
    assert "test accuracy" in out and "requested class" in out and "completion" in out
