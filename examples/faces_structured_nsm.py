"""Features of a deep, structured similarity-matching network with feedback on faces (Obeid et al., Fig. 3).

Obeid, Ramambason & Pehlevan (2019), Sec. 6.2 and Fig. 3, train a 3-layer
locally connected Hebbian/anti-Hebbian network with feedback (gamma = 0.01)
on Labeled Faces in the Wild and show that the first layer learns diverse
localized features that the higher layers combine into larger ones. Here the
faces are scikit-image's bundled ``lfw_subset`` (the 100 25 x 25 faces, plus
their mirror images; nothing is downloaded), centred pixel by pixel, and the
activation is the paper's f(a) = max(min(a, 1), 0) (``activation=
"capped_relu"``).

One NSMEncoder is trained: ``structure="local"`` with ``hidden_layer_sizes``
gives a deep structured network whose layers' dynamics run together, with
feedback of strength ``gamma`` from each layer to the one below (Obeid
Eq. 17, 19). Per-layer geometry (``site_stride``, ``radius``,
``lateral_radius`` as sequences, in units of the layer below's grid): layer 1
has sites every 2 pixels seeing a radius of 4 pixels, layer 2 has sites every
2 layer-1 sites (4 pixels) seeing 3 layer-1 sites (6 pixels) around them;
lateral inhibition between the neurons of a site (Obeid Sec. 6.3; Sec. 6.2
uses the feedforward radius, which in a trial run here, with gamma = 0.1 and
learning rate 0.05, left 84 % of the neurons silent after 30 epochs).
gamma = 0.01 as for Fig. 3.

Features are computed as in Fig. 3, by reverse correlation on the data set
(the response-weighted mean of the centred images), masked to the pixels
that can reach the neuron through the structure (the layers'
``layer_feedforward_masks_`` composed down the network). The first layer's
own weights are drawn too. Prints, per layer, the fraction of neurons that
respond to some face and the median area of the features (pixels holding
half of a feature's squared mass; the paper's "larger scale features" higher
up), the same figures for the network trained without feedback (gamma = 0,
same seed), and a faces-vs-non-faces cross-validated accuracy of a LinearSVC
on the features of the network with feedback (the other 100 images of
``lfw_subset`` are non-faces). Writes examples/out/faces_structured_nsm.png.

    python examples/faces_structured_nsm.py           # 20 epochs (a few minutes)
    python examples/faces_structured_nsm.py --quick   # 5 epochs (seconds)
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from skimage.data import lfw_subset
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from sklhebb import NSMEncoder
from sklhebb.plotting import crop_to_fields

SIDE = 25
NEURONS_PER_SITE = (4, 8)  # layer 1, layer 2
SITE_STRIDE = (2, 2)  # sites every 2 and 4 pixels
RADIUS = (4.0, 3.0)  # 4 pixels; 3 layer-1 sites = 6 pixels
LATERAL_RADIUS = (0.0, 0.0)  # neurons of the same site inhibit each other (L stored as blocks)
GAMMA = 0.01  # Obeid Fig. 3


def deep_structured(epochs, gamma=GAMMA, seed=0):
    return NSMEncoder(
        NEURONS_PER_SITE[-1],
        input_scale=1.0,
        hidden_layer_sizes=NEURONS_PER_SITE[:-1],
        structure="local",
        image_shape=(SIDE, SIDE),
        site_stride=SITE_STRIDE,
        radius=RADIUS,
        lateral_radius=LATERAL_RADIUS,
        gamma=gamma,
        return_layers="all",
        activation="capped_relu",
        cap=1.0,
        learning_rate=0.02,
        max_iter=epochs,
        batch_size=20,
        random_state=seed,
    )


def reverse_correlation(R, X):
    """Response-weighted mean of the (centred) images, one row per neuron."""
    w = R.sum(axis=0)
    F = R.T @ X
    return F / np.maximum(w, 1e-12)[:, None]


def half_mass_area(F):
    """Pixels holding half of each feature's squared mass (its effective size)."""
    e = np.sort(F**2, axis=1)[:, ::-1]
    c = np.cumsum(e, axis=1)
    return 1 + np.argmax(c >= 0.5 * c[:, -1:], axis=1)


def layers_and_features(enc, X):
    """Every layer's outputs, its reverse-correlation features and the pixels that reach each neuron."""
    Z = enc.transform(X)
    H = np.split(Z, np.cumsum([W.shape[0] for W in enc.layer_components_])[:-1], axis=1)
    reach, masks = None, []
    for m in enc.layer_feedforward_masks_:
        m = m.astype(np.float64)
        reach = m if reach is None else (m @ reach > 0).astype(np.float64)
        masks.append(reach > 0)
    return H, [reverse_correlation(h, X) * m for h, m in zip(H, masks)], masks


def site_centres(layer):
    """Pixel coordinates (row, column) of the sites of a layer, in the order of its neurons' sites.

    A layer's sites sit at stride * i + (stride - 1) / 2 on the grid of the layer below (as
    :func:`sklhebb.rules.structure.local_structure` places them), composed down to the pixels.
    """
    n = SIDE
    for s in SITE_STRIDE[: layer + 1]:
        n = -(-n // s)
    c = np.arange(n, dtype=float)
    for s in SITE_STRIDE[: layer + 1][::-1]:
        c = s * c + (s - 1) / 2.0
    cy, cx = np.meshgrid(c, c, indexing="ij")
    return cy.ravel(), cx.ravel()


def summary(name, H, F):
    """Print each layer's active fraction and median feature area; return the areas."""
    areas = []
    for p, (h, f) in enumerate(zip(H, F)):
        on = h.max(axis=0) > 0
        areas.append(np.median(half_mass_area(f[on])) if on.any() else float("nan"))
        print(f"{name + ', layer ' + str(p + 1):<36}{h.shape[1]:>8}{on.mean():>8.2f}{areas[-1]:>18.0f}")
    return areas


def main(quick=False):
    epochs = 5 if quick else 20
    images = lfw_subset()
    faces = images[:100].reshape(100, -1)
    faces = np.concatenate([faces, images[:100, :, ::-1].reshape(100, -1)])  # plus mirror images
    X = (faces - faces.mean(axis=0)).astype(np.float32)
    print(f"lfw_subset: {len(X)} face images (100 faces and their mirror images), {SIDE} x {SIDE}, centred; {epochs} epochs")

    t0 = time.perf_counter()
    deep = deep_structured(epochs).fit(X)
    t_deep = time.perf_counter() - t0
    H, F, masks = layers_and_features(deep, X)
    t0 = time.perf_counter()
    flat = deep_structured(epochs, gamma=0.0).fit(X)
    t_flat = time.perf_counter() - t0
    H0, F0, _ = layers_and_features(flat, X)
    sites = [int(np.sqrt(W.shape[0] // n)) for W, n in zip(deep.layer_components_, NEURONS_PER_SITE)]
    print(
        f"deep structured network: layer 1 {sites[0]} x {sites[0]} sites x {NEURONS_PER_SITE[0]} neurons, "
        f"layer 2 {sites[1]} x {sites[1]} sites x {NEURONS_PER_SITE[1]} neurons; "
        f"mean dynamics steps per minibatch {deep.n_dynamics_steps_:.1f}"
    )
    print(f"{'network':<36}{'neurons':>8}{'active':>8}{'median area (px)':>18}")
    areas = {"feedback": summary(f"feedback gamma = {GAMMA:g}", H, F), "no_feedback": summary("no feedback (gamma = 0)", H0, F0)}
    print(f"fit time: gamma = {GAMMA:g} {t_deep:.1f} s, gamma = 0 {t_flat:.1f} s")

    # faces vs non-faces: LinearSVC on the features, 3-fold cross-validation (encoder refitted per fold)
    Xall = (images.reshape(200, -1) - images.reshape(200, -1).mean(axis=0)).astype(np.float32)
    yall = np.r_[np.ones(100), np.zeros(100)].astype(int)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    head = lambda: [StandardScaler(), LinearSVC(random_state=0)]  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        accs = {
            "raw pixels": cross_val_score(make_pipeline(*head()), Xall, yall, cv=cv),
            f"deep structured, gamma = {GAMMA:g}": cross_val_score(make_pipeline(deep_structured(epochs), *head()), Xall, yall, cv=cv),
        }
    print("faces vs non-faces (all 200 images of lfw_subset), LinearSVC, 3-fold cross-validated accuracy:")
    for name, a in accs.items():
        print(f"  {name:<36}{a.mean():.3f} +- {a.std():.3f}")
    results = {f"area_layer{p + 1}_{net}": a for net, per_layer in areas.items() for p, a in enumerate(per_layer)}
    results |= {"cv_raw": accs["raw pixels"].mean(), "cv_deep": accs[f"deep structured, gamma = {GAMMA:g}"].mean()}
    print("RESULT " + " ".join(f"{k}={v:.6g}" for k, v in results.items()))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure written")
        return
    n_show = 8
    rows = [
        ("layer 1:\nweights W", deep.layer_components_[0], 0),
        ("layer 1:\nreverse correlation", F[0], 0),
        ("layer 2:\nreverse correlation", F[1], 1),
    ]
    fig, axes = plt.subplots(len(rows), n_show, figsize=(1.3 * n_show + 1.6, 1.35 * len(rows) + 0.3))
    for r, (name, feats, p) in enumerate(rows):
        nps, h = NEURONS_PER_SITE[p], H[p]
        cy, cx = site_centres(p)
        if p == 0:  # every neuron of the two sites nearest the eyes: the diversity at a site
            pick = []
            for ty, tx in [(9, 8), (9, 16)]:
                site = int(np.argmin((cy - ty) ** 2 + (cx - tx) ** 2))
                pick += list(range(site * nps, (site + 1) * nps))
        else:  # the most active neuron of each of the sites on the face (central 15 x 15), most active first
            central = (np.abs(cy - SIDE // 2) <= 7.5) & (np.abs(cx - SIDE // 2) <= 7.5)
            seen, pick = set(), []
            for k in np.argsort(-h.mean(axis=0)):
                if central[k // nps] and k // nps not in seen:
                    seen.add(k // nps)
                    pick.append(k)
        # each receptive field is the disc of pixels within the radius of its site (composed down the layers):
        # crop the row to one box around its fields, the pixels outside a field in tan
        shown = np.where(masks[p][pick[:n_show]], feats[pick[:n_show]], np.nan)
        crops, (h, w) = crop_to_fields(shown, (SIDE, SIDE))
        cmap = plt.get_cmap("gray").with_extremes(bad=(0.93, 0.86, 0.72))
        for c in range(n_show):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(crops):
                f = crops[c].reshape(h, w)
                v = np.nanmax(np.abs(f)) + 1e-12
                ax.imshow(f, cmap=cmap, vmin=-v, vmax=v, interpolation="nearest")
                ax.set_title(f"n{pick[c]}, {h} x {w} px", fontsize=7, pad=2)
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(
        f"Deep structured similarity matching with feedback (gamma = {GAMMA:g}) on lfw_subset faces, {epochs} epochs: "
        "features per layer (Obeid et al. Fig. 3)\neach cropped to its receptive field (tan: pixels outside it); "
        "grey 0, white / black: the largest positive / negative value",
        fontsize=9,
    )
    fig.subplots_adjust(left=0.14, right=0.99, top=0.84, bottom=0.01, wspace=0.05, hspace=0.25)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    fig.savefig(out / "faces_structured_nsm.png", dpi=80)
    print(f"figure written to {out / 'faces_structured_nsm.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of seconds")
    main(parser.parse_args().quick)
