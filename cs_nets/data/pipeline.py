"""From a config to model-ready arrays: images -> split -> (features) -> normalize.

Data flows one way: the raw uint8 images (CIFAR-10 or synthetic; or 2-D points
of a toy source) are split into train/val/test first; transforms that learn
something (the ``bow`` codebook) are fit on the training split alone, then every
split goes through the feature transforms (cached on disk), and a ``Normalizer``
fit on the training split turns the training and validation splits into float
inputs. The test split is kept before normalization (uint8 pixels or feature
vectors) and normalized chunk by chunk when it is scored (``InputPipeline.predict``).
``InputPipeline`` holds the transforms, the codebooks and the fitted statistics so
that a checkpoint is evaluated with exactly the preprocessing it was trained with.

Memory: a run on raw CIFAR-10 pixels reads the training images straight into the
model's float dtype and normalizes them in place, so the float32 training split
(600 MB on the full set) is the only copy of the training images, and the test
split stays uint8 (30 MB instead of 123 MB of float32). With ``data.storage: uint8``
(or ``auto`` when the float inputs would not fit, cs_nets.memory.choose_storage) the
training split stays uint8 instead (a folder's cache mapped from disk) and X_train is
a ``NormalizedRows`` that normalizes each minibatch as the trainer draws it
(cs_nets.data.storage): a quarter of the memory, the same results bit for bit.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cs_nets import registry
from cs_nets.config import Config, DataConfig
from cs_nets.data.cifar10 import (
    RawCifar,
    content_hash,
    data_fingerprint,
    ensure_cifar10,
    resolve_data_dir,
)
from cs_nets.data.preprocess import Normalizer, Split, mirror_rows, split_train_val
from cs_nets.data.storage import ImageRows, NormalizedRows
from cs_nets.data.synthetic import make_synthetic
from cs_nets.data.toy import make_toy
from cs_nets.errors import ArgumentError, ConfigError, DataError
from cs_nets.memory import choose_storage, return_freed_memory
from cs_nets.nn.models.base import SCORING_ROWS

if TYPE_CHECKING:  # the features are imported where they are used: a run on raw pixels never loads them
    from cs_nets.features.views import View

SPLITS = registry.SPLITS


@dataclass
class Dataset:
    """What a run trains and scores on, and the pipeline that made it.

    X_train: (N, D) float model inputs, or with data.storage uint8 a NormalizedRows that gives
        them batch by batch (cs_nets.data.storage); X_val: (M, D) float; y_*: int64 labels.
    test_rows: (T, F) the test split before normalization (uint8 pixels, feature
        vectors or points): ``inputs.predict(model, test_rows)`` scores it chunk by chunk.
    inputs: the InputPipeline (``inputs.data_fingerprint``: the content hash of the data).
    X_val_views: the inputs of the validation images' other test-time views (``inputs.views``
        after the first: their mirrors with data.hflip_average, then the moved images with
        data.shift_average; row i: image i's view), averaged with X_val's when scored; else empty.
    test_rows_mirrored: with data.hflip_average, test_rows of the test images' mirrors, else None.
    test_images: with data.shift_average, the test images' (T, 3 S S) uint8 rows, whose moved views
        are made chunk by chunk as they are scored (never all held), else None.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    test_rows: np.ndarray
    y_test: np.ndarray
    class_names: list
    inputs: InputPipeline
    X_val_views: list[np.ndarray] = dataclasses.field(default_factory=list)
    test_rows_mirrored: np.ndarray | None = None
    test_images: np.ndarray | None = None

    @property
    def storage(self) -> str:
        """How the training inputs are held: "uint8" (normalized as drawn), else their float dtype."""
        return "uint8" if isinstance(self.X_train, NormalizedRows) else str(self.X_train.dtype)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array, by field name (what a sweep shares between its trials)."""
        names = ("X_train", "y_train", "X_val", "y_val", "test_rows", "y_test", "test_rows_mirrored", "test_images")
        arrays = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        return arrays | {f"X_val_views/{i}": X for i, X in enumerate(self.X_val_views)}


def load_images(data: DataConfig, seed: int, data_dir=None, progress=True, log=None,
                train_dtype="uint8", memory_map: bool = False) -> tuple[RawCifar, Path | None]:
    """The raw images (or 2-D points) of the configured source and their data folder (None: generated).

    train_dtype: what CIFAR-10's (and a folder's) training images are read into (see
    load_cifar10); generated sources ignore it. For the folder source, data_dir (the
    CLI's --data-dir) replaces data.path, and the folder returned is its cache folder
    (DIR/.cs_nets: feature caches go there, never among the class folders).
    memory_map: the folder source maps its decoded-image cache: X_train is then an
    ImageRows of the file (see load_folder); other sources ignore it.
    """
    if data.source == "synthetic":
        return make_synthetic(data.synthetic_train, data.synthetic_test, seed=seed), None
    if data.source in registry.POINT_SOURCES:
        return make_toy(data.source, data.points_per_class, data.classes, data.noise, seed=seed), None
    if data.source in registry.IMAGE_FOLDER_SOURCES:
        from cs_nets.data.folder import cache_dir, load_folder

        folder = Path(data_dir or data.path or ".").expanduser().absolute()  # data.path is required (schema)
        images = load_folder(folder, data.image_size, data.test_fraction, progress=progress, log=log,
                             memory_map=memory_map)
        if train_dtype != "uint8" and isinstance(images.X_train, np.ndarray):  # not mapped: as load_cifar10 does,
            images.X_train = images.X_train.astype(train_dtype)  # normalized in place later
        return images, cache_dir(folder)
    folder = resolve_data_dir(data_dir, data.dir)
    if data.source == "cifar100":
        from cs_nets.data.cifar100 import ensure_cifar100

        raw = ensure_cifar100(folder, data.label_mode, url=data.url, md5=data.md5, progress=progress, log=log,
                              train_dtype=train_dtype)
        return raw, folder
    raw = ensure_cifar10(folder, fmt=data.format, url=data.url, md5=data.md5, progress=progress, log=log,
                         train_dtype=train_dtype)
    return raw, folder


def pixel_dtype(config: Config, storage: str = "float32") -> str:
    """What to read the training images into: the model's float dtype when the model sees the
    pixels (they are normalized in place), uint8 when feature transforms read them or when
    they are stored as uint8 (`storage`, what data.storage resolved to)."""
    return "uint8" if config.features or storage == "uint8" else config.data.dtype


class InputPipeline:
    """uint8 images (N, 3 S S) or points (N, 2) -> model inputs (N, D): optional features, then normalization.

    S = image_size, the side of the square images (recorded in checkpoints; None: 2-D points, 32 when unknown).

    features: normalized transform list (empty: raw pixels); normalizer: a
    ``Normalizer`` (fit on the training split by ``fit``, or restored by
    ``from_state``); codebooks: {transform index: Codebook} of the ``bow``
    transforms (learned by ``fit_features`` from the training split, or restored).
    Feature vectors are always standardized (mean and std of the training split).
    hflip_average, shift_average: score every image as the mean of its scores over the test-time
    ``views`` (data.hflip_average: with its left-right mirror; data.shift_average: with the image moved
    that many pixels; cs_nets.training.metrics.mean_scores).
    """

    def __init__(self, features: list[dict], normalizer: Normalizer, codebooks: dict | None = None,
                 hflip_average: bool = False, shift_average: int = 0):
        self.features = list(features)
        self.normalizer = normalizer
        self.hflip_average = hflip_average
        self.shift_average = shift_average
        self.data_fingerprint: str | None = None  # of the raw data it was fit on (see prepare_dataset)
        self.image_size: int | None = None  # side of the square images it reads (None: 2-D points)
        self.codebooks = dict(codebooks or {})

    @classmethod
    def for_config(cls, config: Config) -> InputPipeline:
        mode = "mean_std" if config.features else config.data.normalize
        return cls(config.features, Normalizer(mode, dtype=config.data.dtype), hflip_average=config.data.hflip_average,
                   shift_average=config.data.shift_average)

    @property
    def views(self) -> list[View]:
        """The test-time views whose scores are averaged, the image itself first (``averaged_views``)."""
        from cs_nets.features.views import averaged_views

        return averaged_views(self.shift_average, self.hflip_average)

    @property
    def side(self) -> int:
        """The side S of the square images whose rows (N, 3 S S) the features read (32 when not recorded)."""
        return self.image_size or 32

    def fit_features(self, X_train: np.ndarray, log=None, cache_dir: Path | None = None) -> InputPipeline:
        """Learn the codebook of every ``bow`` transform from X_train: (N, 3 S S) uint8, the training split only.

        cache_dir: the data folder; the codebook is then cached in <cache_dir>/features,
        keyed by every byte of X_train and the transform's k-means parameters.
        """
        from cs_nets.features import cached_codebook, fit_codebook
        from cs_nets.features.cache import CODEBOOK_PARAMS

        fingerprint = None
        for i, t in enumerate(self.features):
            if t["type"] == "bow":
                if log:
                    log(f"bow: learning {t['words']} words from {t['samples']} patches of "
                        f"{len(X_train)} training images (or reading them from the cache)")
                params = {k: t[k] for k in CODEBOOK_PARAMS}
                if cache_dir is None:
                    self.codebooks[i] = fit_codebook(X_train, **params, side=self.side)
                    continue
                started = time.perf_counter()
                fingerprint = fingerprint or content_hash(X_train)
                self.codebooks[i] = cached_codebook(X_train, t, Path(cache_dir) / "features", fingerprint, log,
                                                    image_size=self.side)
                if log:
                    log(f"bow: {t['words']} words ready in {time.perf_counter() - started:.1f} s")
        return self

    def extract(self, X: np.ndarray, data_dir: Path | None, progress=True, log=None, name: str = "",
                out: np.ndarray | None = None, mirrored_out: np.ndarray | None = None) -> np.ndarray:
        """Feature vectors (N, F) float32 of one split's rows X; X itself without features.

        With a data folder the result is cached in <data_dir>/features, keyed by
        every byte of X, the transforms and the codebooks.
        name: the split, for the line logged with the time taken (e.g. "train").
        out: a C-contiguous (N, F) float32 array to fill (None: a new one), e.g. rows of a larger array.
        mirrored_out: None, or an (N, F) float32 array that gets the features of the images' left-right
        mirrors (cached as those of the mirrored rows), in the same pass where the transforms allow
        (``extract_features``); only with features.
        """
        if not self.features:
            return X
        from cs_nets.features import cached_features, extract_features

        started = time.perf_counter()
        codebooks = [self.codebooks.get(i) for i in range(len(self.features))]
        if data_dir is None:  # generated data: cheap to recompute, nothing to key a cache on
            rows = extract_features(X, self.features, progress=progress, codebooks=codebooks, image_size=self.side,
                                    out=out, mirrored_out=mirrored_out)
        else:
            mirrored_key = None if mirrored_out is None else content_hash(mirror_rows(X, self.side))
            rows = cached_features(X, self.features, Path(data_dir) / "features", content_hash(X),
                                   progress=progress, log=log, codebooks=codebooks, image_size=self.side, out=out,
                                   mirrored_out=mirrored_out, mirrored_fingerprint=mirrored_key)
        if log:
            what = "images and their mirrors" if mirrored_out is not None else "images"
            log(f"features: {len(rows)} {name + ' ' if name else ''}{what} ({rows.shape[1]} values each) "
                f"in {time.perf_counter() - started:.1f} s")
        return rows

    def extract_views(self, X: np.ndarray, data_dir: Path | None, progress=True, log=None, name: str = ""):
        """(``extract`` of the image rows X (N, 3 S S), the same for their left-right mirrors or None).

        The mirrors only with hflip_average (test-time augmentation), else None; both in one
        pass where the transforms allow. Without features: X and its mirrored rows.
        """
        if not self.hflip_average:
            return self.extract(X, data_dir, progress, log, name), None
        if not self.features:
            return X, mirror_rows(X, self.side)
        from cs_nets.features import feature_dim

        mirrored = np.empty((len(X), feature_dim(self.features, (self.side, self.side, 3))), dtype=np.float32)
        return self.extract(X, data_dir, progress, log, name, mirrored_out=mirrored), mirrored

    def moved_views(self, X: np.ndarray) -> list[np.ndarray]:
        """What ``extract`` makes of the moved test-time views of the image rows X (N, 3 S S) uint8:
        one (N, F) array per view of ``views`` that moves the images (data.shift_average), in that
        order; [] without. Never cached: scoring makes them a chunk at a time (``scores``)."""
        moved = [view for view in self.views if view.shifted]
        if not moved:
            return []
        if not self.features:  # the moved pixels themselves
            from cs_nets.features.views import view_images

            images = X.reshape(-1, 3, self.side, self.side)
            return [np.ascontiguousarray(view_images(images, view)).reshape(len(X), -1) for view in moved]
        from cs_nets.features import extract_views

        codebooks = [self.codebooks.get(i) for i in range(len(self.features))]
        return extract_views(X, self.features, moved, progress=False, codebooks=codebooks, image_size=self.side)

    def fit(self, X_train: np.ndarray) -> InputPipeline:
        """Learn the normalization of the training split's features (or pixels) X_train: (N, F).

        A transform's ``weight`` is folded into the std (std / weight), so standardizing
        multiplies its values by the weight, with no extra pass, and the checkpoint keeps it.
        """
        self.normalizer.fit(X_train)
        if self.features:
            from cs_nets.features import feature_weights

            weights = feature_weights(self.features, (self.side, self.side, 3))
            if weights is not None:
                std = self.normalizer.std_
                self.normalizer.std_ = (std.astype(np.float64) / weights).astype(std.dtype)
        return self

    def transform(self, X: np.ndarray, in_place: bool = False) -> np.ndarray:
        """X: (N, F) uint8 pixels or float32 features, as ``extract`` made them -> (N, F) float.

        in_place: write the result into X when X already has the output dtype (X is overwritten).
        """
        self.check_width(X)
        reuse = in_place and X.dtype == np.dtype(self.normalizer.dtype) and X.flags.writeable
        return self.normalizer.transform(X, out=X if reuse else None)

    def check_width(self, X: np.ndarray) -> None:
        """DataError unless X (N, F) has as many values per row as the statistics were fit on."""
        expected = self.normalizer.n_features_
        if expected is not None and X.shape[1] != expected:
            made_by = ", ".join(t["type"] for t in self.features) or "raw pixels"
            raise DataError(f"the model's input statistics expect {expected} values per image, but "
                            f"{made_by} gives {X.shape[1]} on this data: the checkpoint does not match it")

    def scores(self, model, X: np.ndarray, mirrored: np.ndarray | None = None, images: np.ndarray | None = None,
               batch_size: int = SCORING_ROWS) -> np.ndarray:
        """The model's (N, C) float32 class scores of the rows X (N, F), as ``extract`` made them.

        mirrored: the rows of the same images' mirrors (``extract_views``); images: the images'
        (N, 3 S S) uint8 rows, required with shift_average: their moved views are made ``batch_size``
        images at a time (``moved_views``). Each score is the mean over the views given.
        Normalizes ``batch_size`` rows at a time (no float copy of all of X).
        """
        from cs_nets.training.metrics import mean_scores

        if mirrored is not None and mirrored.shape != X.shape:
            raise ArgumentError(f"mirrored rows {mirrored.shape} do not match the rows {X.shape}")
        if self.shift_average and (images is None or len(images) != len(X)):
            raise ArgumentError(f"images: the moved views (shift_average {self.shift_average}) need the "
                                f"{len(X)} images themselves")
        out = np.empty((len(X), model.num_classes), dtype=np.float32)
        for start in range(0, len(X), batch_size):
            part = slice(start, start + batch_size)
            views = [self.transform(X[part])] + ([] if mirrored is None else [self.transform(mirrored[part])])
            if images is not None and self.shift_average:
                views += [self.transform(rows, in_place=True) for rows in self.moved_views(images[part])]
            out[part] = mean_scores(model, views)
        return out

    def predict(self, model, X: np.ndarray, mirrored: np.ndarray | None = None, images: np.ndarray | None = None,
                batch_size: int = SCORING_ROWS) -> np.ndarray:
        """The model's class for each row of X (N, F), as ``extract`` made them -> (N,) int64.

        mirrored, images: as in ``scores``. Normalizes ``batch_size`` rows at a time.
        """
        if mirrored is not None or self.shift_average:
            return self.scores(model, X, mirrored, images, batch_size).argmax(axis=1).astype(np.int64)
        labels = np.empty(len(X), dtype=np.int64)
        for start in range(0, len(X), batch_size):
            labels[start:start + batch_size] = model.predict(self.transform(X[start:start + batch_size]))
        return labels

    def config(self) -> dict:
        config = {"features": self.features, "normalizer": self.normalizer.config()}
        if self.hflip_average:  # only then: checkpoints without the keys load as before
            config["hflip_average"] = True
        if self.shift_average:
            config["shift_average"] = self.shift_average
        return config

    def state(self) -> dict[str, np.ndarray]:
        """The normalizer's arrays, and each codebook's as ``features/<index>/<name>``."""
        arrays = dict(self.normalizer.state())
        for i, codebook in self.codebooks.items():
            arrays.update({f"features/{i}/{k}": v for k, v in codebook.state().items()})
        return arrays

    @classmethod
    def from_state(cls, config: dict, arrays: dict) -> InputPipeline:
        """Rebuild from ``config()`` and ``state()``; ArgumentError if a codebook is missing or misshapen."""
        from cs_nets.features import Codebook, normalize_transforms

        try:
            features = normalize_transforms(config["features"]) if config["features"] else []
        except ConfigError as err:  # the transforms come from a file, not from the user's config
            raise ArgumentError(str(err)) from None
        codebooks = {}
        for i, t in enumerate(features):
            if t["type"] == "bow":
                prefix = f"features/{i}/"
                mine = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
                codebooks[i] = Codebook.from_state(mine, t["patch"], t["words"], t["whiten"], t["symmetric"])
        hflip_average, shift_average = config.get("hflip_average", False), config.get("shift_average", 0)
        if not isinstance(hflip_average, bool):
            raise ArgumentError(f"hflip_average: expected true or false, got {type(hflip_average).__name__}")
        if isinstance(shift_average, bool) or not isinstance(shift_average, int) or not 0 <= shift_average <= 8:
            raise ArgumentError(f"shift_average: expected a whole number of pixels from 0 to 8, "
                                f"got {str(shift_average)[:40]!r}")
        return cls(features, Normalizer.from_state(config["normalizer"], arrays), codebooks, hflip_average,
                   shift_average)


def split_of(raw: RawCifar, data: DataConfig, seed: int, in_place: bool = False) -> Split:
    """Train/val/test of `raw` as the config says (the same split for training and evaluation).

    in_place: a shuffled split may move the training rows within raw.X_train (see split_train_val).
    """
    try:
        return split_train_val(raw, num_train=data.num_train, num_val=data.num_val, shuffle=data.shuffle,
                               seed=seed, in_place=in_place)
    except ArgumentError as err:  # the sizes come from the config: say which keys
        raise ConfigError(f"data.num_train / data.num_val: {err}") from None


def prepare_dataset(config: Config, data_dir=None, progress=True, log=None, storage: str | None = None) -> Dataset:
    """Load, split, extract and normalize the data of `config`; everything learned sees the training split only.

    storage: "float32" or "uint8", what data.storage resolved to (None: resolve it now,
    ``cs_nets.memory.choose_storage``).
    """
    storage = storage or choose_storage(config, data_dir)
    raw, folder = load_images(config.data, config.seed, data_dir, progress, log,
                              train_dtype=pixel_dtype(config, storage), memory_map=storage == "uint8")
    data = build_dataset(config, raw, folder, progress, log, consume=True, storage=storage)
    return_freed_memory()  # the reading and normalizing threads' temporaries
    return data


def build_dataset(config: Config, raw: RawCifar, folder: Path | None = None, progress=True, log=None, *,
                  consume: bool = False, storage: str = "float32") -> Dataset:
    """``prepare_dataset`` on already loaded data `raw` (`folder`: where to cache features, or None).

    consume: `raw` is given away: a float X_train is split and normalized in place
    (the training images are never held twice), so raw.X_train is overwritten.
    storage: "uint8" keeps the training split as uint8 rows of raw.X_train (an array,
    or the ImageRows of a mapped folder cache) and gives X_train as a NormalizedRows;
    "float32" normalizes it into a float array of data.dtype.
    """
    if storage == "uint8" and (config.features or config.data.source in registry.POINT_SOURCES):
        raise ArgumentError("data.storage uint8 keeps image pixels, not features or 2-D points")
    if storage == "uint8" and not isinstance(raw.X_train, ImageRows):
        raw = dataclasses.replace(raw, X_train=ImageRows(raw.X_train))  # the split: an index into these rows
    elif storage != "uint8" and isinstance(raw.X_train, ImageRows):
        raise ArgumentError("mapped training images (ImageRows) are for data.storage uint8")
    fingerprint = data_fingerprint(raw)
    image_size = None if config.data.source in registry.POINT_SOURCES else getattr(raw, "image_size", 32)
    split = split_of(raw, config.data, config.seed, in_place=consume)
    if consume and len(split.X_train) + len(split.X_val) < len(raw.X_train) // 2:
        # a small split of a large set: copies, so the rest of the set can be freed
        split.X_train, split.X_val = _compact(split.X_train), split.X_val.copy()
    del raw  # the split holds what is needed; let the full raw arrays go as soon as possible
    inputs = InputPipeline.for_config(config)
    inputs.image_size = image_size  # saved in the checkpoint: predict resizes images to it, features read it
    inputs.fit_features(split.X_train, log, cache_dir=folder)
    inputs.data_fingerprint = fingerprint  # saved in the checkpoint: evaluate and resume check data against it
    if config.data.hflip_copies and image_size is not None:
        # The mirrors join the training split only, after the codebook was learned from the originals.
        X_train = _with_mirrors(inputs, split.X_train, image_size, folder, progress, log)
        y_train = np.concatenate([split.y_train, split.y_train])
    else:
        X_train, y_train = inputs.extract(split.X_train, folder, progress, log, name="train"), split.y_train
    inputs.fit(X_train)
    if isinstance(X_train, ImageRows):  # uint8 storage: normalized batch by batch as the trainer draws them
        X_train = NormalizedRows(X_train, inputs.normalizer)
    else:
        X_train = inputs.transform(X_train, in_place=consume)
    X_val, val_mirrored = inputs.extract_views(split.X_val, folder, progress, log, name="val")
    X_val = inputs.transform(X_val, in_place=consume)
    val_views = [] if val_mirrored is None else [inputs.transform(val_mirrored, in_place=True)]
    val_views += _moved_views(inputs, split.X_val, log)
    test_rows, test_mirrored = inputs.extract_views(split.X_test, folder, progress, log, name="test")
    return Dataset(X_train, y_train, X_val, split.y_val, test_rows, split.y_test, split.class_names, inputs,
                   X_val_views=val_views, test_rows_mirrored=test_mirrored,
                   test_images=split.X_test if inputs.shift_average else None)


def _moved_views(inputs: InputPipeline, images: np.ndarray, log) -> list[np.ndarray]:
    """The model inputs of the validation `images`' moved views (``inputs.moved_views``), held for every epoch."""
    if not inputs.shift_average:
        return []
    started = time.perf_counter()
    views = [inputs.transform(rows, in_place=True) for rows in inputs.moved_views(images)]
    if log:
        log(f"features: {len(images)} val images moved {inputs.shift_average} pixels, {len(views)} views "
            f"in {time.perf_counter() - started:.1f} s")
    return views


def _with_mirrors(inputs: InputPipeline, images, image_size: int, folder: Path | None, progress, log):
    """(2N, F): the inputs of the N training `images`, then those of their left-right mirrors."""
    n = len(images)
    if inputs.features:  # each half read or extracted in place: the features are held once (2 N F values)
        from cs_nets.features import feature_dim

        side = inputs.side
        both = np.empty((2 * n, feature_dim(inputs.features, (side, side, 3))), dtype=np.float32)
        inputs.extract(images, folder, progress, log, name="train", out=both[:n], mirrored_out=both[n:])
        return both
    stored = isinstance(images, ImageRows)  # uint8 storage: the pixels and their mirrors, in memory
    pixels = images[:] if stored else images
    both = np.empty((2 * n, pixels.shape[1]), pixels.dtype)  # raw pixels: mirrored straight into place
    both[:n] = pixels
    mirror_rows(pixels, image_size, out=both[n:])
    return ImageRows(both) if stored else both


def _compact(X):
    """A copy of X's rows in memory (an ImageRows of an in-memory array: its rows alone; a mapped
    one stays as it is, its rows are not in memory)."""
    if isinstance(X, ImageRows):
        return X if X.is_mapped() else ImageRows(X[:])
    return X.copy()
