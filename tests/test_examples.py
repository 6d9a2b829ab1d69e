"""Every example runs as a new user would run it (a subprocess; --quick where it has one), writes its
figure, and prints the numbers that examples/README.md and the README quote, within the tolerance
they state: a stale number fails here."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sklhebb.datasets import FASHION_MNIST_DEBIAN

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
QUICK = "quickstart"  # the one script without --quick: it is short already
FIGURE = {QUICK: "quickstart_filters"}  # the figure's name where it is not the script's


def documented_results():
    """examples/README.md's table of printed numbers: {script: {name: (value, tolerance)}}.

    Rows read ``| script | `name` | what | value | ± tolerance |``; a row with an empty script
    cell belongs to the script above it.
    """
    text = (EXAMPLES / "README.md").read_text()
    section = text.split("## The numbers they print", 1)[1]
    table, script = {}, None
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not re.fullmatch(r"`\w+`", cells[1]):
            continue  # not a row of the table, or its header
        script = cells[0].strip("`").removesuffix(".py") or script
        table.setdefault(script, {})[cells[1].strip("`")] = (float(cells[3]), float(cells[4].lstrip("±").strip()))
    return table


RESULTS = documented_results()

# The orderings the documents state in words (higher, lower), checked on the same runs.
CLAIMS = {
    QUICK: [("random_filters", "learned_filters"), ("random_filters", "raw"), ("learned_filters", "raw")],
    "colour_filters": [("grey", "colour"), ("grey", "mixed"), ("grey", "random_grey")],
    "fashion_gridsearch": [("learned", "random_filters"), ("learned", "raw")],
    "multi_block": [("multi_block", "multi_block_random"), ("single_block", "multi_block_random")],
    "shadows": [("nnl_clean", "conv_clean"), ("nnl_shadowed", "conv_shadowed"), ("nnl_random_shadowed", "conv_shadowed")],
    "transfer": [
        ("fashion_filters_on_fashion", "random_filters_on_fashion"),
        ("digit_filters_on_fashion", "random_filters_on_fashion"),
        ("digit_filters_on_digits", "random_filters_on_digits"),
        ("fashion_filters_on_digits", "random_filters_on_digits"),
    ],
    "finetune_cosine": [
        ("pretrained_cosine_end", "random_cosine_end"),
        ("pretrained_accuracy_epoch1", "random_accuracy_epoch1"),
        ("pretrained_accuracy_end", "random_accuracy_end"),
    ],
    "faces_structured_nsm": [
        ("area_layer2_feedback", "area_layer1_feedback"),
        ("area_layer2_no_feedback", "area_layer1_no_feedback"),
        ("cv_deep", "cv_raw"),
    ],
    "nsm_supervision": [("best", "alpha0"), ("best", "largest_alpha"), ("alpha0", "largest_alpha"), ("std_largest_alpha", "largest_alpha")],
    "activation_generation": [("mse_zero_fill", "mse_completion"), ("mse_completion", "mse_mean_image")],
    "urfb_alignment": [
        ("frfb_test_error", "urfb_test_error"),
        ("urfb_test_error", "bp_test_error"),
        ("urfb_corr_layer1", "urfb_corr_layer2"),
        ("urfb_corr_layer1", "urfb_corr_layer3"),
        ("frfb_corr_layer3", "frfb_corr_layer1"),
        ("frfb_corr_layer3", "frfb_corr_layer2"),
    ],
}


def test_every_example_is_documented_and_tested():
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    assert scripts == set(RESULTS), "examples/README.md's table of numbers must have rows for exactly the scripts in examples/"
    readme = (EXAMPLES / "README.md").read_text()
    assert all(f"`{s}.py`" in readme.split("## The numbers they print")[0] for s in scripts), "every script is described"


def run_example(name, timeout=600):
    source = (EXAMPLES / f"{name}.py").read_text()
    if "load_fashion_mnist" in source and not FASHION_MNIST_DEBIAN.exists():
        pytest.fail(f"examples/{name}.py needs Fashion-MNIST in {FASHION_MNIST_DEBIAN}: apt-get install dataset-fashion-mnist")
    figure = EXAMPLES / "out" / f"{FIGURE.get(name, name)}.png"
    start = time.time()
    # the example imports the sklhebb of this checkout, whichever one the environment has installed
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONPATH=path)
    args = [sys.executable, str(EXAMPLES / f"{name}.py")] + ([] if name == QUICK else ["--quick"])
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert figure.exists(), f"{figure} was not written"
    assert figure.stat().st_mtime >= start - 1, f"{figure} is older than this run"
    assert figure.stat().st_size > 1000
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout
    return {k: float(v) for k, v in (pair.split("=") for pair in lines[0].split()[1:])}


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_example_prints_the_documented_numbers(name):
    printed = run_example(name)
    documented = RESULTS[name]
    assert set(printed) == set(documented), f"printed {sorted(printed)}, documented {sorted(documented)}"
    stale = {k: (printed[k], v, tol) for k, (v, tol) in documented.items() if not abs(printed[k] - v) <= tol}
    assert not stale, f"examples/README.md is stale for {name}.py: name: (printed, documented, tolerance) {stale}"
    for higher, lower in CLAIMS.get(name, []):
        assert printed[higher] > printed[lower], f"{name}.py: the documents say {higher} > {lower}; printed {printed}"
    if name == QUICK:  # the README's set-up section quotes the quick start's three accuracies
        readme = (ROOT / "README.md").read_text()
        quoted = re.search(r"raw pixels (\d\.\d+), random filters (\d\.\d+), learned\s+filters (\d\.\d+)", readme)
        assert quoted, "README.md no longer quotes the quick start's accuracies in the form this test reads"
        for key, value in zip(("raw", "random_filters", "learned_filters"), quoted.groups()):
            assert abs(printed[key] - float(value)) <= documented[key][1], f"README.md quotes {key} {value}; printed {printed[key]}"
