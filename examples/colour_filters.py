"""Colour units and orientation units: filters learned from scikit-learn's two colour photos.

Mirrors Grinberg, Hopfield & Krotov (2019), Section 3 / Fig. 1 and Section 5:
KrotovPatchEncoder learns W x W x 3 filters from the patches of
``sklearn.datasets.load_sample_images()`` (china.jpg and flower.jpg, shipped with
scikit-learn, downsampled to keep it fast), and ReceptiveFieldDisplay draws them as
in Fig. 1 (each filter stretched to [0, 1], RGB kept), colour units first.

Criterion for a colour-selective unit (stated, simple): split each filter w into
its grey part (the mean over the three channels at every pixel) and its chromatic
part (w minus the grey part). A unit is colour-selective when the chromatic part
holds more than 3/4 of the filter's energy ||w||^2 (black-and-white when it holds
less than 1/4, mixed in between) and the unit has converged
(|norm - 1| <= 0.1; units that have not are counted apart, like the last units
of Fig. 1 that "did not learn any useful representation"). A black-and-white edge
detector has a chromatic fraction near 0; a random Gaussian filter has about 2/3
on average (the random control below shows how many random filters pass).

Prints the counts and writes examples/out/colour_filters.png.

    python examples/colour_filters.py           # default run (K = 144, 30 epochs; under a minute)
    python examples/colour_filters.py --quick   # K = 64, 10 epochs (seconds)
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_sample_images

from sklhebb import KrotovPatchEncoder
from sklhebb.plotting import ReceptiveFieldDisplay

THRESHOLD = 0.75  # colour unit above
GREY = 0.25  # black-and-white unit below; mixed in between


def chromatic_fraction(filters, window):
    """Share of each filter's energy in its chromatic part (channel deviations from grey)."""
    F = np.asarray(filters, dtype=np.float64).reshape(len(filters), window, window, 3)
    chroma = F - F.mean(axis=-1, keepdims=True)
    return (chroma**2).sum(axis=(1, 2, 3)) / (F**2).sum(axis=(1, 2, 3))


def main(quick=False):
    step, K, epochs = (6, 64, 10) if quick else (6, 144, 30)
    window = 8  # W = 8 as in Fig. 1
    photos = load_sample_images().images  # two (427, 640, 3) uint8 photos
    X = np.stack([im[::step, ::step] for im in photos]).astype(np.float32) / 255
    print(f"images {X.shape}, window {window}, K = {K}, {epochs} epochs")

    t0 = time.perf_counter()
    enc = KrotovPatchEncoder(n_components=K, window=window, max_iter=epochs, batch_size=100, learning_rate=0.05, random_state=0).fit(X)
    t_fit = time.perf_counter() - t0

    frac = chromatic_fraction(enc.components_, window)
    rand = chromatic_fraction(np.random.RandomState(0).standard_normal(enc.components_.shape), window)
    norms = np.linalg.norm(enc.components_, axis=1)
    converged = np.abs(norms - 1) <= 0.1
    colour = converged & (frac > THRESHOLD)
    grey = converged & (frac < GREY)
    n_colour, n_grey, n_dead = int(colour.sum()), int(grey.sum()), int((~converged).sum())
    print(f"fit {t_fit:.1f} s; filter norms {norms.min():.2f}..{norms.max():.2f}")
    print(
        f"criterion: converged units (|norm - 1| <= 0.1) with chromatic energy fraction > {THRESHOLD} are colour "
        f"units, < {GREY} black-and-white, in between mixed"
    )
    print(
        f"learned filters: {n_colour} of {K} colour-selective ({n_colour / K:.0%}), "
        f"{n_grey} black-and-white ({n_grey / K:.0%}), {K - n_colour - n_grey - n_dead} mixed, "
        f"{n_dead} not converged (like the last units of Fig. 1; drawn last)"
    )
    print(
        f"random Gaussian filters (control): {int((rand > THRESHOLD).sum())} of {K} above {THRESHOLD}, "
        f"{int((rand < GREY).sum())} below {GREY} (median fraction {np.median(rand):.2f})"
    )
    print(
        f"learned chromatic fraction (converged units): median {np.median(frac[converged]):.2f}, "
        f"quartiles {np.percentile(frac[converged], 25):.2f} / {np.percentile(frac[converged], 75):.2f}"
    )
    counts = {"colour": n_colour, "grey": n_grey, "mixed": K - n_colour - n_grey - n_dead, "not_converged": n_dead}
    counts |= {"random_colour": int((rand > THRESHOLD).sum()), "random_grey": int((rand < GREY).sum())}
    print("RESULT " + " ".join(f"{k}={v}" for k, v in counts.items()))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure written")
        return
    fig, (ax_f, ax_h) = plt.subplots(1, 2, figsize=(11, 5), gridspec_kw={"width_ratios": [1.3, 1]})
    # colour units first, then the rest by falling chromatic fraction, the unconverged units last
    key = lambda F: -chromatic_fraction(F, window) + 10 * (np.abs(np.linalg.norm(F, axis=1) - 1) > 0.1)  # noqa: E731
    disp = ReceptiveFieldDisplay.from_estimator(enc, order=key)
    disp.plot(ax=ax_f)
    ax_f.set_title(
        f"learned {window} x {window} x 3 filters, colour units first ({n_colour} of {K} pass),\n"
        "then by falling chromatic fraction; each stretched from its most negative to its largest weight",
        fontsize=9,
        pad=16,
    )
    ax_h.set_title("chromatic energy fraction: learned against random filters", fontsize=9)
    bins = np.linspace(0, 1, 26)
    ax_h.hist(frac[converged], bins=bins, alpha=0.7, label="learned, converged")
    if n_dead:
        ax_h.hist(frac[~converged], bins=bins, alpha=0.7, color="tab:red", label="learned, not converged")
    ax_h.hist(rand, bins=bins, alpha=0.5, label="random Gaussian")
    ax_h.axvline(THRESHOLD, color="k", ls="--", label=f"colour above {THRESHOLD}")
    ax_h.axvline(GREY, color="k", ls=":", label=f"black-and-white below {GREY}")
    ax_h.set_xlabel("chromatic energy fraction of the filter")
    ax_h.set_ylabel("units")
    ax_h.legend()
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    fig.savefig(out / "colour_filters.png", dpi=90)
    print(f"figure written to {out / 'colour_filters.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of seconds")
    main(parser.parse_args().quick)
