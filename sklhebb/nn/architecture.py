"""Architectures in the paper's own notation, and its named networks.

Grammar (case-insensitive; items separated by ";" or new lines)::

    conv 32 5x5            convolution, 32 filters of 5 x 5, stride 1, same padding
    untied 32 5x5          locally connected layer with the same connectivity
                           (also "lc 32 5x5" or "untied conv 32 5x5")
    sparse 32 5x5          the same layer stored as one masked dense matrix, the
                           author's representation (also "untied dense 32 5x5")
    maxpool 3              3 x 3 max-pool, stride 2 (the paper's default)
    maxpool 3, stride 3    explicit stride (also "maxpool 3/3")
    drop .8                dropout with drop probability .8
    full 500               fully connected layer of 500 units
                           (also "full conn. 500", "dense 500")
    sum                    residual sum of the two layers listed just before it
    output                 optional; the linear output layer is always added

The output layer (one linear unit per class) is not part of the string.
"""

from __future__ import annotations

import re

from .layers import Conv, Dense, Dropout, MaxPool, Sum, UntiedConv, UntiedDense

__all__ = ["PRESETS", "parse_architecture", "build_layers"]

#: The paper's networks (Section 4). deepernet is the residual network the
#: paper prints under a second "deepnet:" heading and calls deepernet in the
#: text and Fig. 6-7; deepnet_s is the network of Section 4.1.
PRESETS = {
    "simpnet": "conv 32 5x5; maxpool 3; drop .8; full 500; drop .3",
    "deepnet": ("conv 32 5x5; maxpool 3; conv 32 3x3; conv 32 3x3; maxpool 3; drop .8; conv 32 3x3; conv 32 3x3; maxpool 3; drop .3; full 500"),
    "deepernet": (
        "conv 16 3x3; conv 16 3x3; sum; conv 32 3x3; conv 32 3x3; sum; maxpool 3; drop .5; "
        "conv 64 3x3; conv 64 3x3; sum; maxpool 3; "
        "conv 128 3x3; conv 128 3x3; sum; maxpool 3; drop .8; full 500"
    ),
    "deepnet_s": (
        "conv 16 3x3; conv 16 3x3; sum; maxpool 3, stride 3; drop .5; "
        "conv 64 3x3; conv 64 3x3; sum; maxpool 2, stride 2; "
        "conv 64 2x2; conv 64 2x2; sum; maxpool 2, stride 2; drop .5; full 500"
    ),
}

_NUM = r"(\d*\.?\d+)"
_SIZE = r"(\d+)(?:\s*x\s*(\d+))?"
_PATTERNS = [
    ("conv", re.compile(rf"^conv(?:olution)?\s+(\d+)\s+{_SIZE}$")),
    ("untied", re.compile(rf"^(?:untied(?:\s+conv)?|lc|local)\s+(\d+)\s+{_SIZE}$")),
    ("sparse", re.compile(rf"^(?:sparse|untied dense)\s+(\d+)\s+{_SIZE}$")),
    ("maxpool", re.compile(r"^max\s*pool\s+(\d+)(?:\s*(?:,\s*stride|stride|/)\s*(\d+))?$")),
    ("drop", re.compile(rf"^drop(?:out)?\s+{_NUM}$")),
    ("full", re.compile(r"^(?:full(?:\s+conn\.?)?|dense|fc)\s+(\d+)$")),
    ("sum", re.compile(r"^sum$")),
    ("output", re.compile(r"^output$")),
]


def parse_architecture(text):
    """Parse an architecture string into a list of (kind, args) tuples.

    >>> parse_architecture("conv 32 5x5; maxpool 3; drop .8; full 500; drop .3")
    [('conv', (32, 5)), ('maxpool', (3, 2)), ('drop', (0.8,)), ('full', (500,)), ('drop', (0.3,))]
    """
    text = PRESETS.get(text.strip().lower(), text)
    items = [s.strip().lower() for s in re.split(r"[;\n]", text)]
    spec = []
    for item in items:
        if not item:
            continue
        item = re.sub(r"\s+", " ", item)
        found = next(((kind, m) for kind, pat in _PATTERNS if (m := pat.match(item))), None)
        if found is None:
            raise ValueError(
                f"cannot read {item!r} in architecture {text!r}; expected items like 'conv 32 5x5', "
                "'untied 32 5x5', 'sparse 32 5x5', 'maxpool 3', 'maxpool 3, stride 3', 'drop .8', 'full 500', 'sum', "
                f"or a preset name among {sorted(PRESETS)}"
            )
        kind, m = found
        if kind in ("conv", "untied", "sparse"):
            a, b = int(m.group(2)), m.group(3)
            if b is not None and int(b) != a:
                raise ValueError(f"only square filters are supported; got {item!r}")
            spec.append((kind, (int(m.group(1)), a)))
        elif kind == "maxpool":
            spec.append((kind, (int(m.group(1)), int(m.group(2)) if m.group(2) else 2)))
        elif kind == "drop":
            spec.append((kind, (float(m.group(1)),)))
        elif kind == "full":
            spec.append((kind, (int(m.group(1)),)))
        elif kind == "sum":
            spec.append((kind, ()))
        # "output" is implicit
    return spec


def build_layers(architecture, n_outputs, *, untied=False, untied_init="copy"):
    """Layers for an architecture string/preset or a tuple of dense sizes.

    A linear output layer of ``n_outputs`` units is appended. ``untied=True``
    turns every convolution into a locally connected layer.
    """
    if isinstance(architecture, str):
        spec = parse_architecture(architecture)
    else:
        spec = [("full", (int(s),)) for s in architecture]
    layers = []
    for kind, args in spec:
        if kind == "conv" and not untied:
            layers.append(Conv(*args))
        elif kind in ("conv", "untied"):
            layers.append(UntiedConv(*args, init=untied_init))
        elif kind == "sparse":
            layers.append(UntiedDense(*args, init=untied_init))
        elif kind == "maxpool":
            layers.append(MaxPool(*args))
        elif kind == "drop":
            layers.append(Dropout(*args))
        elif kind == "full":
            layers.append(Dense(*args))
        elif kind == "sum":
            layers.append(Sum())
    layers.append(Dense(n_outputs, activation=False))
    return layers
