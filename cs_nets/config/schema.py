"""The config's schema: typed sections with defaults, ranges and docs, and their validation.

A config file has the sections ``data``, ``features``, ``model``, ``optim``,
``train``, ``search``, ``output`` and the top-level key ``seed``. Every key has a
type and a range; anything else is a ``ConfigError`` (exit 2) that names the
key, the file and line, and what was expected or the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cs_nets import registry
from cs_nets.errors import ConfigError
from cs_nets.files.untrusted import clip, clip_text


def option(default, doc, *, choices=None, min=None, gt=None, max=None):
    """A config field with its validation rules and a one-line description."""
    return field(default=default, metadata=dict(doc=doc, choices=choices, min=min, gt=gt, max=max))


def option_list(factory, doc, *, gt=None):
    return field(default_factory=factory, metadata=dict(doc=doc, gt=gt))


@dataclass
class DataConfig:
    source: str = option("cifar10", "where images come from", choices=registry.DATA_SOURCES)
    dir: str | None = option(None, "data folder (else $CS_NETS_DATA, else ~/.cache/cs_nets)")
    format: str = option("python", "archive layout to download", choices=registry.ARCHIVE_FORMATS)
    url: str | None = option(None, "archive URL of a mirror (default: the official one)")
    md5: str | None = option(None, "MD5 of the archive at `url`")
    num_train: int | None = option(None, "training images (default: all but the validation ones)", gt=0)
    num_val: int = option(1000, "validation images carved from the training set", gt=0)
    shuffle: bool = option(False, "draw the validation split at random (seeded) instead of the last images")
    normalize: str = option("mean", "pixel preprocessing fit on the training split",
                          choices=registry.NORMALIZATIONS)
    dtype: str = option("float32", "floating type of model inputs and parameters", choices=registry.DTYPES)
    storage: str = option("auto", "how the training images are held: float32 (model inputs in data.dtype, "
                                  "normalized once), uint8 (pixels, each minibatch normalized as drawn; a folder's "
                                  "cache is memory-mapped), auto (uint8 if the float inputs would not fit in memory)",
                          choices=registry.STORAGES)
    synthetic_train: int = option(2000, "training images of the synthetic source", gt=0)
    synthetic_test: int = option(500, "test images of the synthetic source", gt=0)
    points_per_class: int = option(100, "2-D sources: training points per class (the test split is as many more)",
                                 gt=0)
    noise: float = option(0.1, "2-D sources: std of the Gaussian noise added to each coordinate (the shapes "
                                "lie within radius 1)", min=0.0, max=1000.0)
    classes: int | None = option(None, "2-D sources: number of classes (default: 2 for circles, 3 otherwise)",
                               min=2)
    label_mode: str = option("fine", "cifar100 source: fine (100 classes) or coarse (20 superclasses) labels",
                             choices=registry.LABEL_MODES)
    path: str | None = option(None, "folder source: the image folder (one subfolder per class, "
                                    "optionally under train/ and test/)")
    image_size: int = option(32, "folder source: images are centre-cropped and resized to this side", gt=0, max=512)
    test_fraction: float | None = option(None, "folder source without train/ and test/: share of each class "
                                             "held out for testing (fixed seed)", gt=0.0, max=0.9)
    hflip_copies: bool = option(False, "augment: add the left-right mirror of every training image to the "
                                       "training split, before features (validation and test unchanged)")
    hflip_average: bool = option(False, "test-time augmentation: score each validation, test or predicted image "
                                        "and its left-right mirror, and average the two score vectors")
    shift_average: int = option(0, "test-time augmentation: also score each validation, test or predicted image "
                                   "moved this many pixels right, left, down and up (edges repeated; with "
                                   "hflip_average, their mirrors too), and average all the score vectors",
                                min=0, max=8)


@dataclass
class ModelConfig:
    type: str = option("linear", "model", choices=registry.MODEL_TYPES)
    loss: str = option("softmax", "data loss", choices=registry.LOSSES)
    reg: float = option(0.0, "L2 strength: loss += reg * sum(W**2) over weight matrices", min=0.0)
    hidden_dims: list[int] = option_list(lambda: [100], "hidden layer sizes (two_layer: exactly one)", gt=0)
    activation: str = option("relu", "hidden activation",
                           choices=registry.ACTIVATIONS)
    maxout_pieces: int = option(2, "maxout: affine pieces per hidden unit (each layer's W is this many times wider)",
                                gt=0)
    init: float | str | None = option(None, "weight init: a std, 'he' or 'xavier' (default: the model's own)")

    def build_kwargs(self) -> dict:
        """The hyperparameter keywords of ``cs_nets.nn.models.build_model`` for this section."""
        hyper: dict[str, Any] = {"loss": self.loss, "reg": self.reg}
        if self.type == "two_layer":  # validation made sure it has exactly one hidden layer
            hyper.update(hidden_dim=self.hidden_dims[0], activation=self.activation)
        elif self.type == "fc_net":
            hyper.update(hidden_dims=list(self.hidden_dims), activation=self.activation)
        if self.type != "linear" and self.activation == "maxout":
            hyper["maxout_pieces"] = self.maxout_pieces
        if self.init is not None:
            hyper["init"] = self.init
        return hyper


@dataclass
class OptimConfig:
    learning_rate: float = option(1e-3, "initial learning rate", gt=0.0)
    schedule: str = option("constant", "learning-rate schedule over epochs", choices=registry.SCHEDULES)
    lr_decay: float = option(1.0, "step schedule: lr is multiplied by this after every epoch", gt=0.0, max=1.0)
    momentum: float = option(0.0, "momentum coefficient (0 = plain SGD)", min=0.0, max=0.999)
    nesterov: bool = option(False, "Nesterov momentum")


@dataclass
class TrainConfig:
    batch_size: int = option(200, "images per minibatch", gt=0)
    num_epochs: int = option(10, "passes over the training split", gt=0)
    patience: int | None = option(None, "stop after this many epochs without a better validation accuracy", gt=0)
    train_eval_size: int = option(1000, "fixed training subsample scored for train_accuracy each epoch", gt=0)
    checkpoint_every: int = option(1, "save the whole training state every this many epochs (for --resume)", gt=0)
    hflip: bool = option(False, "augment: flip each minibatch image left-right with probability 1/2 (pixels only)")


@dataclass
class SearchConfig:
    attempts: int = option(1000, "random weight matrices tried", gt=0, max=10_000_000)
    scale: float = option(1e-4, "std of the random weights", gt=0.0)
    subsample: int | None = option(None, "score each attempt on this many training images (default: all)", gt=0)


@dataclass
class OutputConfig:
    dir: str | None = option(None, "run directory (default: runs/<config name>-<timestamp>)")
    plot: bool = option(False, "write the PNG pictures at the end of training")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: list[dict] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    seed: int = 0
    name: str = "run"  # taken from the file name, not from the file

    def to_dict(self) -> dict:
        """The resolved config as plain data (what is written to config.yaml)."""
        out = dataclasses.asdict(self)
        out.pop("name")
        return out


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
SECTION_CLASSES = {
    "data": DataConfig, "model": ModelConfig, "optim": OptimConfig,
    "train": TrainConfig, "search": SearchConfig, "output": OutputConfig,
}
TOP_LEVEL = ("features", "seed")

# Old keys still read, each with a one-line warning: (section, key) -> (new key, convert).
DEPRECATED = {("model", "hidden_dim"): ("hidden_dims", lambda value: [value])}


class ConfigDeprecationWarning(UserWarning):
    """A config key that still works but has a new name (the CLI prints it as one line)."""


class Where:
    """Tells where a key came from: `file:line` or `--set key=value`."""

    def __init__(self, source: str, lines: dict[tuple, int] | None = None):
        self.source = source
        self.lines = lines or {}

    def __call__(self, path: tuple) -> str:
        line = self.lines.get(path)
        return f"{self.source}:{line}" if line else self.source


def printable(key) -> str:
    """A key as one line of text: control characters (a newline in a YAML key) escaped."""
    key = str(key)
    return key if key.isprintable() else key.encode("unicode_escape").decode("ascii")


def suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5) if len(key) < 100 else []
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(sorted(valid))}"


def type_name(tp) -> str:
    names = []
    for t in typing.get_args(tp) or (tp,):
        names.append("null" if t is type(None) else getattr(t, "__name__", str(t)))
    return " or ".join(names)


def coerce(value, tp, what: str):
    """Check `value` against the annotation `tp`; return it converted (int -> float where a float is wanted)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return coerce(value, option, what)
            except ConfigError:
                continue
        raise ConfigError(f"{what}: expected {type_name(tp)}, got {clip(value)}")
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond the float range
                number = math.inf
            if not math.isfinite(number):
                raise ConfigError(f"{what}: expected a finite number, got {clip(value)}")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, list):
            return [coerce(v, item_tp, f"{what}[{i}]") for i, v in enumerate(value)]
    else:  # pragma: no cover - only the annotations above are used
        raise TypeError(tp)
    raise ConfigError(f"{what}: expected {type_name(tp)}, got {clip(value)}")


def check_range(value, meta: Mapping, what: str):
    if value is None:
        return
    choices = meta.get("choices")
    if choices:
        if value not in choices:
            raise ConfigError(f"{what}: expected one of {', '.join(choices)}, got {clip(value)}")
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, (int, float)):
            continue
        if meta.get("min") is not None and v < meta["min"]:
            raise ConfigError(f"{what}: expected a value >= {meta['min']}, got {clip(v)}")
        if meta.get("gt") is not None and v <= meta["gt"]:
            raise ConfigError(f"{what}: expected a value > {meta['gt']}, got {clip(v)}")
        if meta.get("max") is not None and v > meta["max"]:
            raise ConfigError(f"{what}: expected a value <= {meta['max']}, got {clip(v)}")


def build_section(cls, raw, section: str, where: Where):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where((section,))}: section '{section}' must be a mapping, got {clip(raw)}")
    raw = renew_deprecated(raw, section, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        key = str(key)
        path = (section, key)
        if key not in fields:
            shown = clip_text(printable(key), 60)
            raise ConfigError(f"{where(path)}: unknown key '{section}.{shown}'{suggest(key, fields)}")
        what = f"{where(path)}: {section}.{key}"
        value = coerce(value, hints[key], what)
        check_range(value, fields[key].metadata, what)
        values[key] = value
    return cls(**values)


def renew_deprecated(raw: dict, section: str, where: Where) -> dict:
    """`raw` with deprecated keys of `section` renamed (and warned about once each)."""
    raw = dict(raw)
    for (old_section, old_key), (new_key, convert) in DEPRECATED.items():
        if old_section != section or old_key not in raw:
            continue
        if new_key in raw:
            raise ConfigError(f"{where((section, old_key))}: {section}.{old_key} and {section}.{new_key} "
                              f"both given; keep only {section}.{new_key}")
        warnings.warn(f"{where((section, old_key))}: {section}.{old_key} is deprecated; "
                      f"use {section}.{new_key}: {convert(raw[old_key])!r}", ConfigDeprecationWarning, stacklevel=2)
        raw[new_key] = convert(raw.pop(old_key))
    return raw


def build_config(raw: dict, where: Where, name: str = "run") -> Config:
    """Validate plain data (as read from YAML) into a ``Config``."""
    for key in raw:
        if key not in SECTIONS or key == "name":
            valid = [k for k in SECTIONS if k != "name"]
            raise ConfigError(f"{where((str(key),))}: unknown section '{clip_text(printable(key), 60)}'"
                              f"{suggest(str(key), valid)}")
    sections = {s: build_section(cls, raw.get(s), s, where) for s, cls in SECTION_CLASSES.items()}
    features = raw.get("features") or []
    if not isinstance(features, list):
        raise ConfigError(f"{where(('features',))}: features must be a list of transforms, got {clip(features)}")
    seed = coerce(raw.get("seed", 0), int, f"{where(('seed',))}: seed")
    check_range(seed, {"min": 0}, f"{where(('seed',))}: seed")
    config = Config(features=features, seed=seed, name=name, **sections)
    check_features(config, where)
    check_image_source(config, where)
    if config.model.type == "two_layer" and len(config.model.hidden_dims) != 1:
        raise ConfigError(f"{where(('model', 'hidden_dims'))}: two_layer has one hidden layer, got "
                          f"model.hidden_dims={config.model.hidden_dims}; use model.type: fc_net for more")
    check_storage(config, where)
    if config.train.hflip and config.features:
        raise ConfigError(f"{where(('train', 'hflip'))}: train.hflip flips images; it cannot be combined with features")
    if config.data.hflip_copies and config.data.source in registry.POINT_SOURCES:
        raise ConfigError(f"{where(('data', 'hflip_copies'))}: data.hflip_copies mirrors images; "
                          f"data.source {config.data.source} gives 2-D points")
    if config.data.hflip_average and config.data.source in registry.POINT_SOURCES:
        raise ConfigError(f"{where(('data', 'hflip_average'))}: data.hflip_average mirrors images; "
                          f"data.source {config.data.source} gives 2-D points")
    if config.train.hflip and config.data.source in registry.POINT_SOURCES:
        raise ConfigError(f"{where(('train', 'hflip'))}: train.hflip flips images; "
                          f"data.source {config.data.source} gives 2-D points")
    check_shift_average(config, where)
    return config


def check_shift_average(config: Config, where: Where):
    """data.shift_average moves images: not 2-D points, less than half their side, and whole steps of
    every bag of words' grid (its moved views reuse the image's patches)."""
    shift, data = config.data.shift_average, config.data
    if not shift:
        return
    here = where(("data", "shift_average"))
    if data.source in registry.POINT_SOURCES:
        raise ConfigError(f"{here}: data.shift_average moves images; data.source {data.source} gives 2-D points")
    side = data.image_size if data.source in registry.IMAGE_FOLDER_SOURCES else 32
    if 2 * shift >= side:
        raise ConfigError(f"{here}: a move of {shift} pixels is half or more of the {side}-pixel images")
    for i, t in enumerate(config.features):
        if t["type"] == "bow" and shift % t["stride"]:
            raise ConfigError(f"{here}: {shift} pixels is not a multiple of features[{i}].stride "
                              f"({t['stride']}): the moved images' patches would leave the grid")


def check_image_source(config: Config, where: Where):
    """The folder source's keys: given where they apply, and an image size the features can read."""
    data = config.data
    folder = data.source in registry.IMAGE_FOLDER_SOURCES
    if folder and not data.path:
        raise ConfigError(f"{where(('data', 'path'))}: data.source {data.source} needs data.path, the image folder")
    if not folder:
        for key, default in (("path", None), ("test_fraction", None), ("image_size", 32)):
            if getattr(data, key) != default:
                raise ConfigError(f"{where(('data', key))}: data.{key} applies to data.source folder only "
                                  f"(data.source is {data.source})")
    if data.source != "cifar100" and data.label_mode != "fine":
        raise ConfigError(f"{where(('data', 'label_mode'))}: data.label_mode applies to data.source cifar100 only "
                          f"(data.source is {data.source})")
    if data.source == "cifar100" and data.format != "python":
        raise ConfigError(f"{where(('data', 'format'))}: data.source cifar100 reads the python archive only; "
                          f"remove data.format {data.format}")
    size = data.image_size
    for t in config.features:
        if t.get("type") == "hog" and size % t["cell"]:
            raise ConfigError(f"{where(('features',))}: hog cell {t['cell']} does not divide the "
                              f"{size}x{size} images (data.image_size); choose a divisor of {size}")
        if t.get("type") == "bow" and t["patch"] > size:
            raise ConfigError(f"{where(('features',))}: bow patch {t['patch']} is larger than the "
                              f"{size}x{size} images (data.image_size); choose at most {size}")
    if config.features and folder:
        from cs_nets.features import feature_dim

        try:  # e.g. too few bow patch positions for quadrant pooling (32x32 images always have enough)
            feature_dim(config.features, (size, size, 3))
        except ConfigError as err:
            raise ConfigError(f"{where(('features',))}: {clip_text(err, 300)} (data.image_size)") from None


def check_storage(config: Config, where: Where):
    """data.storage uint8 holds image pixels: refused where the model reads features or 2-D points."""
    data = config.data
    if data.storage != "uint8":
        return
    if data.source in registry.POINT_SOURCES:
        raise ConfigError(f"{where(('data', 'storage'))}: data.storage uint8 keeps image pixels as bytes; "
                          f"data.source {data.source} gives 2-D points: remove data.storage")
    if config.features:
        types = ", ".join(str(t.get("type")) for t in config.features)
        raise ConfigError(f"{where(('data', 'storage'))}: data.storage uint8 keeps the pixels the model reads as "
                          f"bytes, but this model reads features ({types}), which are floats: remove data.storage")


def check_features(config: Config, where: Where):
    """Validate and fill in the feature transforms (their schema lives with the transforms)."""
    if not config.features:
        return
    from cs_nets.features import is_point_transforms, normalize_transforms

    try:
        config.features = normalize_transforms(config.features)
    except ConfigError as err:
        raise ConfigError(f"{where(('features',))}: {clip_text(err, 300)}") from None
    points = config.data.source in registry.POINT_SOURCES
    if points != is_point_transforms(config.features):
        kind = "2-D points" if points else "images"
        wanted = registry.POINT_FEATURE_TYPES if points else \
            [t for t in registry.FEATURE_TYPES if t not in registry.POINT_FEATURE_TYPES]
        raise ConfigError(f"{where(('features',))}: data.source {config.data.source} gives {kind}; "
                          f"its features can only be {', '.join(wanted)}, "
                          f"got {', '.join(t['type'] for t in config.features)}")
