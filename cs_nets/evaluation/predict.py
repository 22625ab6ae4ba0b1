"""Apply a trained model to images: ``TrainedModel.predict`` from Python, ``predict_files`` for ``csnets predict``.

    >>> from cs_nets.evaluation.predict import TrainedModel
    >>> trained = TrainedModel.load("runs/two_layer-20260101-120000")
    >>> result = trained.predict(["horse.jpg", "ship.png"])   # or (N, 32, 32, 3) uint8, or PIL images
    >>> result.names, result.confidence                       # class names; probability (softmax) or score (SVM)

Layouts are never guessed: ``predict`` takes images in the image-library order
(height, width, channel); CIFAR's flat channel-major rows (N, 3072) only through
``predict_cifar_rows``. Anything else is an ``ArgumentError`` saying what was expected.
Image files go through ``cs_nets.data.images.load_image`` (EXIF orientation, RGB,
centre crop, Lanczos resize to the model's input size).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cs_nets import registry
from cs_nets.data.images import from_cifar_rows, load_image, require_pillow, to_cifar_rows
from cs_nets.errors import ArgumentError, DataError
from cs_nets.files.atomic import atomic_open
from cs_nets.runs.checkpoint import checkpoint_path, load_checkpoint

CHUNK = 1024  # images decoded, then scored, at a time: bounded memory on any number of files
DEFAULT_SIZE = 32  # input size of checkpoints that do not record one (CIFAR-10's)


@dataclass
class Prediction:
    """What a model says about N images.

    indices: (N,) int64 predicted classes; names: their N class names;
    scores: (N, C) float32 class scores; probabilities: (N, C) float32 softmax of
    the scores for a Softmax model, None for an SVM (its scores are not probabilities);
    class_names: the C names; kind: "probability" or "score" (what ``values`` holds).
    """

    indices: np.ndarray
    names: list
    scores: np.ndarray
    probabilities: np.ndarray | None
    class_names: list
    kind: str

    @property
    def values(self) -> np.ndarray:
        """(N, C): probabilities for a Softmax model, scores for an SVM."""
        return self.scores if self.probabilities is None else self.probabilities

    @property
    def confidence(self) -> np.ndarray:
        """(N,) the probability (Softmax) or score (SVM) of each predicted class."""
        return self.values[np.arange(len(self.indices)), self.indices]

    def top_k(self, k: int) -> list[list[tuple[str, float]]]:
        """For each image, the k most likely classes as (name, probability or score), best first."""
        k = max(1, min(int(k), len(self.class_names)))
        order = np.argsort(-self.values, axis=1, kind="stable")[:, :k]
        return [[(self.class_names[j], float(row[j])) for j in top] for row, top in zip(self.values, order)]


def softmax(scores: np.ndarray) -> np.ndarray:
    """(N, C) scores -> (N, C) probabilities, computed stably (max subtracted)."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


class TrainedModel:
    """A checkpoint ready to classify images: the model, its input pipeline and what the run recorded.

    ``TrainedModel.load(path)`` wraps ``load_checkpoint(path)``, whose
    (model, inputs, meta) tuple is still there as ``.model``, ``.inputs``, ``.meta``
    (and by unpacking: ``model, inputs, meta = trained``).
    """

    def __init__(self, model, inputs, meta: dict, path: Path | None = None):
        self.model, self.inputs, self.meta, self.path = model, inputs, meta, path
        names = meta.get("class_names")
        self.class_names = list(names) if names else [f"class{k}" for k in range(model.num_classes)]
        self.kind = "probability" if model.loss_name == "softmax" else "score"
        self.image_size = _image_size(meta)

    @classmethod
    def load(cls, path) -> TrainedModel:
        """Read a run directory or model.npz (checked as ``load_checkpoint`` does); DataError if it is not one."""
        model, inputs, meta = load_checkpoint(path)
        return cls(model, inputs, meta, path=checkpoint_path(path))

    def __iter__(self):
        return iter((self.model, self.inputs, self.meta))

    def predict(self, images, batch_size: int = CHUNK) -> Prediction:
        """Classify images -> Prediction.

        images: a uint8 array (N, S, S, 3) in height-width-channel order with S the
        model's ``image_size``, or a list of PIL images and/or image file paths (any
        size: converted as ``cs_nets.data.images`` says). A file that cannot be read
        raises DataError naming it (``predict_files`` reports failures one by one instead).
        """
        if isinstance(images, (list, tuple)):
            return self.predict_cifar_rows(to_cifar_rows(self._decode_all(images)), batch_size)
        return self.predict_cifar_rows(to_cifar_rows(self.check_images(images)), batch_size)

    def predict_cifar_rows(self, rows: np.ndarray, batch_size: int = CHUNK) -> Prediction:
        """Classify CIFAR rows: (N, 3 S S) uint8, each 1024 red, then green, then blue bytes (for S = 32)."""
        size = self._require_images()
        width = 3 * size * size
        if not isinstance(rows, np.ndarray) or rows.ndim != 2 or rows.shape[1] != width or rows.dtype != np.uint8:
            raise ArgumentError(f"predict_cifar_rows expects CIFAR rows: a uint8 array (N, {width}) in "
                                f"channel-height-width order; got {_describe(rows)}")
        scores = self.scores_of_rows(rows, batch_size)
        return self.prediction(scores)

    def scores_of_rows(self, rows: np.ndarray, batch_size: int = CHUNK) -> np.ndarray:
        """(N, 3 S S) uint8 CIFAR rows -> (N, C) float32 class scores, through the features and normalization
        (averaged over the test-time views when the run used data.hflip_average or shift_average)."""
        scores = np.empty((len(rows), self.model.num_classes), dtype=np.float32)
        for start in range(0, len(rows), batch_size):
            part = rows[start:start + batch_size]
            # with data.hflip_average or shift_average: the mean of the scores of the images' views
            X, mirrored = self.inputs.extract_views(part, None, progress=False)
            scores[start:start + batch_size] = self.inputs.scores(self.model, X, mirrored, images=part)
        return scores

    def prediction(self, scores: np.ndarray) -> Prediction:
        """(N, C) scores -> Prediction (argmax; softmax probabilities for a Softmax model)."""
        indices = scores.argmax(axis=1).astype(np.int64)
        probabilities = softmax(scores) if self.kind == "probability" else None
        return Prediction(indices, [self.class_names[i] for i in indices], scores, probabilities,
                          self.class_names, self.kind)

    def check_images(self, images) -> np.ndarray:
        """ArgumentError unless images is a uint8 (N, S, S, 3) array of this model's size S; returns it."""
        size = self._require_images()
        expected = f"uint8 images (N, {size}, {size}, 3) in height-width-channel order"
        if not isinstance(images, np.ndarray):
            raise ArgumentError(f"predict expects {expected}, or a list of PIL images or file paths; "
                                f"got {type(images).__name__}")
        shape = images.shape
        hint = ""
        if images.ndim == 2 and shape[1] == 3 * size * size:
            hint = ": for CIFAR's flat channel-major rows call predict_cifar_rows"
        elif images.ndim == 3 and shape[-1] == 3:
            hint = ": one image? add the batch axis (images[None])"
        elif images.ndim == 4 and shape[1] == 3 and shape[-1] != 3:
            hint = ": channels first? use images.transpose(0, 2, 3, 1)"
        elif images.ndim == 4 and shape[-1] == 3 and shape[1:3] != (size, size):
            hint = ": other sizes: pass PIL images or paths, which are cropped and resized"
        if images.ndim != 4 or shape[1:] != (size, size, 3):
            raise ArgumentError(f"predict expects {expected}; got {_describe(images)}{hint}")
        if images.dtype != np.uint8:
            raise ArgumentError(f"predict expects {expected}; got dtype {images.dtype} (convert 0..255 "
                                f"values with .astype(np.uint8); scale 0..1 floats by 255 first)")
        return images

    def _decode_all(self, items) -> np.ndarray:
        size = self._require_images()
        Image = require_pillow()
        out = np.empty((len(items), size, size, 3), dtype=np.uint8)
        for i, item in enumerate(items):
            if not isinstance(item, (str, os.PathLike, Image.Image)):
                raise ArgumentError(f"predict: item {i} of the list is a {type(item).__name__}; expected a PIL "
                                    f"image or a file path (arrays: pass one uint8 (N, {size}, {size}, 3) array)")
            try:
                out[i] = load_image(item, size)
            except DataError as err:
                raise DataError(f"{item if not isinstance(item, Image.Image) else f'image {i}'}: {err}") from None
        return out

    def check_can_read_images(self) -> None:
        """ArgumentError unless the model takes images (a model of 2-D toy points does not)."""
        self._require_images()

    def file_record(self, result: FileResult, top_k: int) -> dict:
        """A classified FileResult -> {"file", "index", "class", kind: value, "top": [{"class", kind}, ...]}."""
        if result.scores is None or result.index is None:
            raise ValueError(f"{result.path} was not classified: {result.error}")
        values = softmax(result.scores[None])[0] if self.kind == "probability" else result.scores
        k = max(1, min(int(top_k), len(self.class_names)))
        order = np.argsort(-values, kind="stable")[:k]
        return {"file": str(result.path), "index": result.index, "class": self.class_names[result.index],
                self.kind: float(values[result.index]),
                "top": [{"class": self.class_names[j], self.kind: float(values[j])} for j in order]}

    def _require_images(self) -> int:
        if self.image_size is None:
            raise ArgumentError(f"this model classifies 2-D points (data.source "
                                f"{self.meta.get('config', {}).get('data', {}).get('source')}), not images")
        return self.image_size


def _image_size(meta: dict) -> int | None:
    """The side of the square images the model takes; None for a model of 2-D points."""
    source = (meta.get("config") or {}).get("data", {}).get("source")
    if source in registry.POINT_SOURCES:
        return None
    size = meta.get("image_size")
    return int(size) if size else DEFAULT_SIZE


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"a {type(x).__name__}"


# ------------------------------------------------------------------------- many files


@dataclass
class FileResult:
    """One file's outcome: its predicted class index and the (C,) scores, or the error that stopped it."""

    path: Path
    index: int | None = None
    scores: np.ndarray | None = None
    error: str | None = None


def predict_files(trained: TrainedModel, entries, workers: int | None = None,
                  chunk: int = CHUNK) -> Iterator[FileResult]:
    """Decode and classify files -> one FileResult per entry, in order.

    entries: [(path, error or None)] as ``cs_nets.data.images.walk_images`` lists
    them. Files are decoded ``chunk`` at a time by ``workers`` threads (Pillow
    decodes without the GIL), then scored together.
    """
    size = trained._require_images()
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(entries), chunk):
            part = entries[start:start + chunk]
            decoded = list(pool.map(lambda e: _decode_entry(e, size), part))
            good = [i for i, d in enumerate(decoded) if isinstance(d, np.ndarray)]
            scores = None
            if good:
                rows = to_cifar_rows(np.stack([decoded[i] for i in good]))
                scores = trained.scores_of_rows(rows)
            where = {i: k for k, i in enumerate(good)}
            for i, (path, _) in enumerate(part):
                if scores is not None and i in where:
                    row = scores[where[i]]
                    yield FileResult(Path(path), int(row.argmax()), row)
                else:
                    yield FileResult(Path(path), error=decoded[i])


def _decode_entry(entry, size):
    path, error = entry
    if error is not None:
        return error
    try:
        return load_image(path, size)
    except DataError as err:
        return str(err)


def write_predictions_csv(path, records: list[dict], top_k: int, kind: str) -> None:
    """Write ``file_record`` dicts as CSV atomically: file, class, <kind>, then class_i, <kind>_i for i = 1..k."""
    import csv

    k = max((len(r["top"]) for r in records), default=top_k)
    header = ["file", "class", kind] + [f"{name}_{i}" for i in range(1, k + 1) for name in ("class", kind)]
    with atomic_open(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for r in records:
            top = [v for t in r["top"] for v in (t["class"], f"{t[kind]:.6g}")]
            writer.writerow([r["file"], r["class"], f"{r[kind]:.6g}", *top])


def rows_as_images(rows: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """CIFAR rows (N, 3 S S) uint8 -> (N, S, S, 3) uint8 images (to write them as files, or for ``predict``)."""
    return from_cifar_rows(rows, size)
