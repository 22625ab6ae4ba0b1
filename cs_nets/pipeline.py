"""From a config to model-ready arrays: images -> (features) -> split -> normalize.

Data flows one way: the raw uint8 images (CIFAR-10 or synthetic) optionally go
through feature transforms (cached on disk), are split into train/val/test, and
a ``Normalizer`` fit on the training split alone turns every split into float
inputs. ``InputPipeline`` holds the transforms and the fitted statistics so that
a checkpoint is evaluated with exactly the preprocessing it was trained with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

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
from cs_nets.data.preprocess import Normalizer, Split, split_train_val
from cs_nets.data.synthetic import make_synthetic
from cs_nets.errors import ArgumentError, ConfigError, DataError

SPLITS = registry.SPLITS


@dataclass
class Dataset(Split):
    """Model inputs of every split (X_*: (N, D) float, y_*: (N,) int64) and the pipeline that made them.

    fingerprint: the content hash of the images and labels they came from (before any
    split), recorded by runs so a checkpoint is never silently scored or resumed on other data.
    """

    inputs: InputPipeline
    fingerprint: str


def load_images(data: DataConfig, seed: int, data_dir=None, progress=True, log=None) -> tuple[RawCifar, Path | None]:
    """The raw uint8 images of the configured source and the data folder they live in (None: synthetic)."""
    if data.source == "synthetic":
        return make_synthetic(data.synthetic_train, data.synthetic_test, seed=seed), None
    folder = resolve_data_dir(data_dir, data.dir)
    raw = ensure_cifar10(folder, fmt=data.format, url=data.url, md5=data.md5, progress=progress, log=log)
    return raw, folder


class InputPipeline:
    """uint8 images (N, 3072) -> model inputs (N, D): optional features, then normalization.

    features: normalized transform list (empty: raw pixels); normalizer: a
    ``Normalizer`` (fit on the training split by ``fit``, or restored by ``from_state``).
    Feature vectors are always standardized (mean and std of the training split).
    """

    def __init__(self, features: list[dict], normalizer: Normalizer):
        self.features = list(features)
        self.normalizer = normalizer
        self.data_fingerprint: str | None = None  # of the raw data it was fit on (see prepare_dataset)

    @classmethod
    def for_config(cls, config: Config) -> InputPipeline:
        mode = "mean_std" if config.features else config.data.normalize
        return cls(config.features, Normalizer(mode, dtype=config.data.dtype))

    def extract(self, raw: RawCifar, data_dir: Path | None, progress=True, log=None) -> RawCifar:
        """`raw` with its images replaced by feature vectors (N, F) float32; unchanged without features."""
        if not self.features:
            return raw
        from cs_nets.features import cached_features, extract_features

        def features_of(X):
            if data_dir is None:  # synthetic data: cheap to recompute, nothing to key a cache on
                return extract_features(X, self.features, progress=progress)
            return cached_features(X, self.features, Path(data_dir) / "features", content_hash(X),
                                   progress=progress, log=log)

        return dataclasses.replace(raw, X_train=features_of(raw.X_train), X_test=features_of(raw.X_test))

    def fit(self, X_train: np.ndarray) -> InputPipeline:
        self.normalizer.fit(X_train)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """X: (N, F) uint8 pixels or float32 features, as ``extract`` made them -> (N, F) float."""
        expected = self.normalizer.n_features_
        if expected is not None and X.shape[1] != expected:
            made_by = ", ".join(t["type"] for t in self.features) or "raw pixels"
            raise DataError(f"the model's input statistics expect {expected} values per image, but "
                            f"{made_by} gives {X.shape[1]} on this data: the checkpoint does not match it")
        return self.normalizer.transform(X)

    def config(self) -> dict:
        return {"features": self.features, "normalizer": self.normalizer.config()}

    def state(self) -> dict[str, np.ndarray]:
        return self.normalizer.state()

    @classmethod
    def from_state(cls, config: dict, arrays: dict) -> InputPipeline:
        return cls(config["features"], Normalizer.from_state(config["normalizer"], arrays))


def split_of(raw: RawCifar, data: DataConfig, seed: int) -> Split:
    """Train/val/test of `raw` as the config says (the same split for training and evaluation)."""
    try:
        return split_train_val(raw, num_train=data.num_train, num_val=data.num_val, shuffle=data.shuffle, seed=seed)
    except ArgumentError as err:  # the sizes come from the config: say which keys
        raise ConfigError(f"data.num_train / data.num_val: {err}") from None


def prepare_dataset(config: Config, data_dir=None, progress=True, log=None) -> Dataset:
    """Load, extract, split and normalize the data of `config`; the pipeline is fit on train only."""
    raw, folder = load_images(config.data, config.seed, data_dir, progress, log)
    fingerprint = data_fingerprint(raw)
    inputs = InputPipeline.for_config(config)
    inputs.data_fingerprint = data_fingerprint(raw)  # saved in the checkpoint: evaluate checks its data against it
    split = split_of(inputs.extract(raw, folder, progress, log), config.data, config.seed)
    del raw  # the split holds what is needed; let the full raw arrays go as soon as possible
    inputs.fit(split.X_train)
    return Dataset(inputs.transform(split.X_train), split.y_train,
                   inputs.transform(split.X_val), split.y_val,
                   inputs.transform(split.X_test), split.y_test,
                   split.class_names, inputs, fingerprint)


def prepare_split(config: Config, inputs: InputPipeline, name: str, data_dir=None, progress=True, log=None):
    """(X, y, class_names) of one split, preprocessed by an already-fit `inputs` (e.g. from a checkpoint)."""
    if name not in SPLITS:
        raise DataError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
    raw, folder = load_images(config.data, config.seed, data_dir, progress, log)
    split = split_of(inputs.extract(raw, folder, progress, log), config.data, config.seed)
    X, y = getattr(split, f"X_{name}"), getattr(split, f"y_{name}")
    return inputs.transform(X), y, split.class_names
