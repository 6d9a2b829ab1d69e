"""Features of structured and deep similarity-matching networks on faces (Obeid et al., Fig. 3).

Obeid, Ramambason & Pehlevan (2019), Sec. 6.2 and Fig. 3, train a 3-layer
locally connected Hebbian/anti-Hebbian network with feedback (gamma = 0.01)
on Labeled Faces in the Wild and show that the first layer learns diverse
localized features that the second and third layers combine into larger
ones. Here the faces are scikit-image's bundled ``lfw_subset`` (the 100
25 x 25 faces, plus their mirror images; nothing is downloaded), centred
pixel by pixel, and the activation is the paper's f(a) = max(min(a, 1), 0)
(``activation="capped_relu"``).

NSMEncoder does not offer structure and feedback together: ``structure=
"local"`` is a single locally connected layer, and ``hidden_layer_sizes``
with ``gamma > 0`` (the deep network with feedback, all layers' dynamics run
together) is fully connected only. So this example shows both halves:

* structured, three layers: a Pipeline of three locally connected NSMEncoders
  (sites every 2, 4 and 8 pixels as in the paper; each layer sees the sites
  of the layer below within a radius, neurons of one site inhibit each
  other), trained layer by layer, i.e. without feedback (gamma = 0);
* deep with feedback: one NSMEncoder with two hidden layers and gamma > 0,
  fully connected, all layers' outputs from ``transform`` with
  ``return_layers="all"``.

Features are computed as in Fig. 3, by reverse correlation on the data set
(the response-weighted mean of the centred images), masked to the pixels
that can reach the neuron through the structure (``feedforward_mask_``
composed down the layers). The first layer's own weights (rows of
``components_``) are drawn too. Prints, per layer, the fraction of neurons
that respond to some face and the median area of the features (pixels
holding half of a feature's squared mass; the paper's "larger scale
features" higher up), and a faces-vs-non-faces cross-validated accuracy of a
LinearSVC on each network's features (the other 100 images of
``lfw_subset`` are non-faces). Writes examples/out/faces_structured_nsm.png.

    python examples/faces_structured_nsm.py           # 30 epochs (a few minutes)
    python examples/faces_structured_nsm.py --quick   # 5 epochs (seconds)
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from skimage.data import lfw_subset
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from sklhebb import NSMEncoder

torch.set_num_threads(1)

SIDE = 25
# (neurons per site, site stride in units of the layer below, radius in units of the layer below)
# sites every 2, 4, 8 pixels as Obeid Sec. 6.2 (there on 64 x 64 images, radii 8, 12, 24 pixels)
LAYERS = [(4, 2, 4.0), (8, 2, 3.0), (16, 2, 3.0)]
GAMMA = 0.1


def structured_stack(epochs, seed=0):
    """The three locally connected layers, each input centred (a StandardScaler without scaling) first."""
    encs, shape = [], (SIDE, SIDE, 1)
    for p, (nps, stride, radius) in enumerate(LAYERS):
        if p > 0:
            encs.append(StandardScaler(with_std=False))
        encs.append(NSMEncoder(nps, structure="local", image_shape=shape, site_stride=stride, radius=radius,
                               lateral_radius=0.0, activation="capped_relu", cap=1.0, learning_rate=0.05,
                               max_iter=epochs, batch_size=20, random_state=seed + p))
        shape = (-(-shape[0] // stride), -(-shape[1] // stride), nps)
    return encs


def deep_feedback(epochs, seed=0):
    sizes = [int(np.prod(s)) for s in _site_shapes()]
    return NSMEncoder(sizes[2] // 4, hidden_layer_sizes=(sizes[0] // 4, sizes[1] // 4), gamma=GAMMA,
                      return_layers="all", activation="capped_relu", cap=1.0, learning_rate=0.05,
                      max_iter=epochs, batch_size=20, random_state=seed)


def _site_shapes():
    shapes, h = [], SIDE
    for nps, stride, _ in LAYERS:
        h = -(-h // stride)
        shapes.append((h, h, nps))
    return shapes


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


def main(quick=False):
    epochs = 5 if quick else 30
    images = lfw_subset()
    faces = images[:100].reshape(100, -1)
    faces = np.concatenate([faces, images[:100, :, ::-1].reshape(100, -1)])  # plus mirror images
    mean = faces.mean(axis=0)
    X = (faces - mean).astype(np.float32)
    print(f"lfw_subset: {len(X)} face images (100 faces and their mirror images), {SIDE} x {SIDE}, centred; "
          f"{epochs} epochs")

    # structured, layer by layer
    t0 = time.perf_counter()
    stack = make_pipeline(*structured_stack(epochs)).fit(X)
    t_struct = time.perf_counter() - t0
    encs = [step for _, step in stack.steps if isinstance(step, NSMEncoder)]
    H, inp = [], X
    for _, step in stack.steps:
        inp = step.transform(inp)
        if isinstance(step, NSMEncoder):
            H.append(inp)
    # pixels that can reach each neuron: the structure masks composed down the layers
    reach, masks = None, []
    for enc in encs:
        m = enc.feedforward_mask_.astype(np.float64)
        reach = m if reach is None else (m @ reach > 0).astype(np.float64)
        masks.append(reach > 0)
    feats_struct = [reverse_correlation(h, X) * m for h, m in zip(H, masks)]

    # deep, fully connected, with feedback gamma
    t0 = time.perf_counter()
    deep = deep_feedback(epochs).fit(X)
    t_deep = time.perf_counter() - t0
    Z = deep.transform(X)
    sizes = list(deep.hidden_layer_sizes) + [deep.n_components]
    H_deep = np.split(Z, np.cumsum(sizes)[:-1], axis=1)
    feats_deep = [reverse_correlation(h, X) for h in H_deep]

    print(f"{'network, layer':<44}{'neurons':>8}{'active':>8}{'median area (px)':>18}")
    for name, Hs, Fs in [("structured (no feedback), layer", H, feats_struct),
                         (f"deep fully connected, gamma = {GAMMA:g}, layer", H_deep, feats_deep)]:
        for p, (h, F) in enumerate(zip(Hs, Fs)):
            active = (h.max(axis=0) > 0).mean()
            area = np.median(half_mass_area(F[h.max(axis=0) > 0])) if active > 0 else float("nan")
            print(f"{name + ' ' + str(p + 1):<44}{h.shape[1]:>8}{active:>8.2f}{area:>18.0f}")
    print(f"fit time: structured {t_struct:.1f} s, deep with feedback {t_deep:.1f} s")

    # faces vs non-faces: LinearSVC on the features, 3-fold cross-validation (encoders refitted per fold)
    Xall = (images.reshape(200, -1) - images.reshape(200, -1).mean(axis=0)).astype(np.float32)
    yall = np.r_[np.ones(100), np.zeros(100)].astype(int)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    head = lambda: [StandardScaler(), LinearSVC(random_state=0)]  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        accs = {
            "raw pixels": cross_val_score(make_pipeline(*head()), Xall, yall, cv=cv),
            "structured, 3 layers": cross_val_score(make_pipeline(*structured_stack(epochs), *head()), Xall, yall, cv=cv),
            f"deep with feedback (gamma = {GAMMA:g})": cross_val_score(make_pipeline(deep_feedback(epochs), *head()),
                                                                        Xall, yall, cv=cv),
        }
    print("faces vs non-faces (all 200 images of lfw_subset), LinearSVC, 3-fold cross-validated accuracy:")
    for name, a in accs.items():
        print(f"  {name:<36}{a.mean():.3f} +- {a.std():.3f}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure written")
        return
    n_show = 8
    rows = [("structured layer 1:\nweights W", encs[0].components_, H[0], masks[0])]
    rows += [(f"structured layer {p + 1}:\nreverse correlation", F, h, m)
             for p, (F, h, m) in enumerate(zip(feats_struct, H, masks))]
    rows += [(f"deep, gamma {GAMMA:g}, layer {p + 1}:\nreverse correlation", F, h, None)
             for p, (F, h) in enumerate(zip(feats_deep, H_deep))]
    yy, xx = np.mgrid[:SIDE, :SIDE]
    fig, axes = plt.subplots(len(rows), n_show, figsize=(1.3 * n_show + 1.6, 1.35 * len(rows)))
    for r, (name, F, h, m) in enumerate(rows):
        # the most active neurons; structured layers 2-3: at most one per site, sites on the face (central 15 x 15)
        order = np.argsort(-h.mean(axis=0))
        if m is not None:
            nps = F.shape[0] // int(np.prod(_site_shapes()[int(name.split()[2].rstrip(":")) - 1][:2]))
            cy = (m * yy.ravel()).sum(axis=1) / m.sum(axis=1)
            cx = (m * xx.ravel()).sum(axis=1) / m.sum(axis=1)
            central = (np.abs(cy - SIDE // 2) <= 7.5) & (np.abs(cx - SIDE // 2) <= 7.5)
            seen, pick = set(), []
            if " layer 1:" in name:  # layer 1: every neuron of the two sites nearest the eyes (the diversity at a site)
                for ty, tx in [(9, 8), (9, 16)]:
                    site = int(np.argmin((cy - ty) ** 2 + (cx - tx) ** 2)) // nps
                    pick += list(range(site * nps, (site + 1) * nps))
                order = []
            for k in order:
                if central[k] and k // nps not in seen:
                    seen.add(k // nps)
                    pick.append(k)
                if len(pick) == n_show:
                    break
        else:
            pick = list(order[:n_show])
        for c in range(n_show):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(pick):
                f = F[pick[c]].reshape(SIDE, SIDE)
                v = np.abs(f).max() + 1e-12
                ax.imshow(f, cmap="gray", vmin=-v, vmax=v)
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Similarity matching on lfw_subset faces: features per layer (Obeid et al. Fig. 3)", fontsize=10)
    fig.subplots_adjust(left=0.17, right=0.99, top=0.95, bottom=0.01, wspace=0.05, hspace=0.1)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    fig.savefig(out / "faces_structured_nsm.png", dpi=80)
    print(f"figure written to {out / 'faces_structured_nsm.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of seconds")
    main(parser.parse_args().quick)
