"""The ``features`` config section: validate a transform list and size its output.

A spec is an ordered list; each item is a mapping with a ``type`` key (or just the
type name as a string) plus that type's parameters. The normalized form is a list
of plain dicts with every default filled in, so two spellings of the same features
compare (and hash, for the cache) equal. Every type also takes ``weight`` (default 1):
the transform's values, once standardized, are multiplied by it, so that a block of a
few values is not drowned by one of thousands (it changes no extracted value, so the
feature cache ignores it).
"""

from numbers import Integral, Real

import numpy as np

from cs_nets.errors import ConfigError
from cs_nets.features.bow import ENCODINGS, POOLINGS, positions
from cs_nets.registry import FEATURE_TYPES, POINT_FEATURE_TYPES

COLOR_SPACES = ("hsv", "rgb")

# Parameters and defaults per type; the key order here is the order in the output.
DEFAULTS = {
    "raw": {},
    "hog": {"cell": 8, "bins": 9},
    "color_hist": {"bins": 10, "space": "hsv"},
    "bow": {"words": 256, "patch": 6, "stride": 1, "encoding": "triangle", "pooling": "quadrants",
            "whiten": True, "samples": 100_000, "iterations": 20, "seed": 0, "symmetric": False},
    "polar": {},
}

# Every type also takes `weight`: its standardized values are multiplied by it (see WEIGHT_RANGE).
WEIGHT_DEFAULT = 1.0
# A block weighted by more than this would swamp the others (and the init's scale) many times over.
WEIGHT_RANGE = (0.0, 1000.0)  # exclusive below, inclusive above

_CHOICES = {
    ("color_hist", "space"): COLOR_SPACES,
    ("bow", "encoding"): ENCODINGS,
    ("bow", "pooling"): POOLINGS,
}
_BOOLS = {("bow", "whiten"), ("bow", "symmetric")}

# Inclusive integer ranges. A cell larger than a 32x32 CIFAR image leaves no cell;
# more than 180 orientation bins is finer than 1 degree.
_INT_RANGES = {
    ("hog", "cell"): (1, 32),
    ("hog", "bins"): (1, 180),
    ("color_hist", "bins"): (1, 256),
    ("bow", "words"): (1, 4096),
    ("bow", "patch"): (2, 16),
    ("bow", "stride"): (1, 16),
    ("bow", "samples"): (1000, 2_000_000),
    ("bow", "iterations"): (0, 500),
    ("bow", "seed"): (0, 2**32 - 1),
}


def normalize_transforms(spec):
    """Validate a ``features`` list and fill in defaults.

    spec: list of mappings like ``{"type": "hog", "cell": 8}`` or type names like
        ``"hog"``. Already-normalized lists pass through unchanged.
    Returns a new list of dicts: ``{"type": ..., <every parameter of that type>}``.
    Raises ConfigError naming the item index, the key and what was expected.
    """
    if isinstance(spec, (str, bytes)) or not isinstance(spec, (list, tuple)) or not spec:
        raise ConfigError(
            f"features: got {spec!r}, expected a non-empty list of transforms "
            f"such as [{{type: hog}}, {{type: color_hist}}]"
        )
    out = [_normalize_one(i, item) for i, item in enumerate(spec)]
    kinds = {t["type"] in POINT_FEATURE_TYPES for t in out}
    if len(kinds) > 1:
        raise ConfigError(f"features: {', '.join(POINT_FEATURE_TYPES)} work on 2-D points and cannot be "
                          f"combined with image features, got {[t['type'] for t in out]}")
    return out


def is_point_transforms(transforms):
    """True when the (normalized) transforms take 2-D points (N, 2), not CIFAR pixel rows."""
    return all(t["type"] in POINT_FEATURE_TYPES for t in transforms)


def _normalize_one(index, item):
    where = f"features[{index}]"
    if isinstance(item, str):
        item = {"type": item}
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: got {item!r}, expected a mapping with a 'type' key or a type name")
    kind = item.get("type")
    if kind not in FEATURE_TYPES:
        raise ConfigError(f"{where}.type: got {kind!r}, expected one of: {', '.join(FEATURE_TYPES)}")
    defaults = {**DEFAULTS[kind], "weight": WEIGHT_DEFAULT}
    for key in item:
        if key != "type" and key not in defaults:
            valid = ", ".join(["type", *defaults])
            raise ConfigError(f"{where}.{key}: unknown key for type {kind!r}, valid keys: {valid}")
    out = {"type": kind}
    for key, default in defaults.items():
        value = item.get(key, default)
        if (kind, key) in _INT_RANGES:
            lo, hi = _INT_RANGES[kind, key]
            # bool is an int subclass; `cell: true` is a typo, not 1.
            if isinstance(value, bool) or not isinstance(value, Integral) or not lo <= value <= hi:
                raise ConfigError(f"{where}.{key}: got {value!r}, expected an integer from {lo} to {hi}")
            value = int(value)
        elif (kind, key) in _CHOICES and value not in _CHOICES[kind, key]:
            raise ConfigError(f"{where}.{key}: got {value!r}, expected one of: {', '.join(_CHOICES[kind, key])}")
        elif (kind, key) in _BOOLS and not isinstance(value, bool):
            raise ConfigError(f"{where}.{key}: got {value!r}, expected true or false")
        elif key == "weight":
            lo, hi = WEIGHT_RANGE
            if isinstance(value, bool) or not isinstance(value, Real) or not lo < value <= hi:
                raise ConfigError(f"{where}.weight: got {value!r}, expected a number above {lo:g} and at most {hi:g}")
            value = float(value)
        out[key] = value
    if kind == "bow" and out["samples"] < out["words"]:
        raise ConfigError(f"{where}.samples: got {out['samples']}, expected at least words ({out['words']}): "
                          f"k-means starts from that many distinct patches")
    if kind == "bow" and out["symmetric"] and out["words"] % 2:
        raise ConfigError(f"{where}.words: got {out['words']}, expected an even number: symmetric words "
                          f"come in mirror pairs")
    return out


def feature_dim(transforms, image_shape=(32, 32, 3)):
    """Length F of the concatenated feature vector for ``(H, W, C)`` images."""
    return sum(feature_sizes(transforms, image_shape))


def feature_weights(transforms, image_shape=(32, 32, 3)):
    """(F,) float64: each transform's ``weight`` repeated over its columns, or None when every weight is 1."""
    transforms = normalize_transforms(transforms)
    if all(t["weight"] == WEIGHT_DEFAULT for t in transforms):
        return None
    sizes = feature_sizes(transforms, image_shape)
    return np.repeat([t["weight"] for t in transforms], sizes).astype(np.float64)


def feature_sizes(transforms, image_shape=(32, 32, 3)):
    """Number of values of each transform, in order, for ``(H, W, C)`` images."""
    height, width, channels = image_shape
    sizes = []
    for i, t in enumerate(normalize_transforms(transforms)):
        if t["type"] == "raw":
            sizes.append(height * width * channels)
        elif t["type"] == "hog":
            if t["cell"] > min(height, width):
                raise ConfigError(
                    f"features[{i}].cell: got {t['cell']}, expected at most {min(height, width)} "
                    f"for {height}x{width} images"
                )
            sizes.append((height // t["cell"]) * (width // t["cell"]) * t["bins"])
        elif t["type"] == "color_hist":
            sizes.append(t["bins"] * (1 if t["space"] == "hsv" else channels))
        elif t["type"] == "bow":
            side = positions(t["patch"], t["stride"], min(height, width))
            # Quadrants need at least 2 x 2 patch positions.
            if side < (2 if t["pooling"] == "quadrants" else 1):
                raise ConfigError(
                    f"features[{i}]: patch {t['patch']} with stride {t['stride']} leaves {max(side, 0)} "
                    f"patch position(s) per side of a {height}x{width} image; {t['pooling']} pooling needs more"
                )
            sizes.append(t["words"] * (4 if t["pooling"] == "quadrants" else 1))
        else:  # polar: (x, y) -> (r, theta)
            sizes.append(2)
    return sizes
