"""Save and load a trained model as one ``.npz`` file, without pickle, and without trusting it.

Layout: ``params/<name>`` (the model's arrays), ``inputs/<name>`` (the input
pipeline's statistics) and ``meta``, a JSON string with the architecture, the
input pipeline's config, the class names, the resolved run config and the
fingerprint of the data the model was trained on, and the side of the square
images it takes (``image_size``; absent in older checkpoints: 32).

A checkpoint is untrusted input: it may come from anywhere. Loading checks,
in this order and before allocating anything big: the file size; the zip's
central directory (entries, declared sizes, methods; a member that declares
gigabytes is refused without decompressing a byte); the meta JSON (length,
nesting, every field's type and range, hidden sizes and the total parameter
bytes); then each array's .npy header against the shape and dtype the
architecture implies. Only then are the arrays read, straight into the model.
Every failure is one ``DataError`` line.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from cs_nets import registry
from cs_nets.errors import ArgumentError, ConfigError, DataError
from cs_nets.files.atomic import atomic_open
from cs_nets.files.untrusted import (
    clip,
    clip_text,
    format_bytes,
    loads_json,
    open_regular,
    read_into,
    read_npy_header,
)
from cs_nets.memory import available_memory, param_shapes

FORMAT_VERSION = 1

# What a checkpoint may be. The largest shipped model (3072 -> 1000 -> 10, float32) is 12 MB.
MAX_PARAM_BYTES = 1 << 30  # all parameters together
MAX_FILE_BYTES = MAX_PARAM_BYTES + (64 << 20)
MAX_META_CHARS = 1 << 18
MAX_MEMBERS = 64
MAX_CENTRAL_DIRECTORY = 1 << 16  # bytes; MAX_MEMBERS entries take a few KB
MAX_INPUT_DIM = 1 << 20
MAX_HIDDEN = 1 << 16
MAX_LAYERS = 16
MAX_MAXOUT_PIECES = 1 << 10
MAX_CLASSES = 1000
MAX_NAME_CHARS = 200
MAX_IMAGE_SIZE = 512  # side of the square input images (3 * 512**2 < MAX_INPUT_DIM)

_MEMBER = re.compile(r"(meta|params/[A-Za-z0-9_]{1,32}|inputs/[A-Za-z0-9_]{1,32}"
                     r"|inputs/features/(?:0|[1-9][0-9]?)/(?:centroids|whiten_mean|whiten_matrix))\.npy")
_CODEBOOK_MEMBER = re.compile(r"features/(0|[1-9][0-9]?)/(centroids|whiten_mean|whiten_matrix)")
_FINGERPRINT = re.compile(r"[0-9a-f]{32}")
_FLOATS = [np.dtype("<f4"), np.dtype("<f8")]


def checkpoint_path(path: str | Path) -> Path:
    """A run directory or a model.npz file -> the model.npz file."""
    path = Path(path)
    return path / "model.npz" if path.is_dir() else path


def save_checkpoint(path, model, inputs, meta: dict | None = None) -> Path:
    """Write `model` (params + architecture) and `inputs` (an InputPipeline) to `path` atomically.

    The fingerprint of the data `inputs` was fit on (``inputs.data_fingerprint``), when
    known, goes into the metadata, so that evaluate can tell other data apart.
    """
    path = Path(path)
    arrays = {f"params/{k}": v for k, v in model.params.items()}
    arrays.update({f"inputs/{k}": v for k, v in inputs.state().items()})
    info = {
        "format": FORMAT_VERSION,
        "model_type": model.model_type,
        "input_dim": int(model.input_dim),
        "num_classes": int(model.num_classes),
        "dtype": np.dtype(model.dtype).name,
        "hyperparams": model.hyperparams(),
        "inputs": inputs.config(),
        **({"data_fingerprint": inputs.data_fingerprint} if getattr(inputs, "data_fingerprint", None) else {}),
        **({"image_size": int(inputs.image_size)} if getattr(inputs, "image_size", None) else {}),
        **(meta or {}),
    }
    arrays["meta"] = np.array(json.dumps(info))
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def load_checkpoint(path):
    """Read a checkpoint -> (model, inputs: InputPipeline, meta: dict), checked as the module says.

    Raises DataError, in one line, for anything that is not a checkpoint this code wrote.
    """
    path = checkpoint_path(path)
    if not path.exists():
        raise DataError(f"no checkpoint at {path}")
    try:
        with open_regular(path, "checkpoint") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise DataError(f"{path} is {format_bytes(size)}; a checkpoint is at most "
                                f"{format_bytes(MAX_FILE_BYTES)}: refused")
            _check_central_directory(f, path)
            with zipfile.ZipFile(f) as zf:
                members = _check_members(zf, path)
                meta = _read_meta(zf, members, path)
                model = _build_model(meta, path)
                _read_params(zf, members, model, path)
                inputs = _read_inputs(zf, members, meta, model.input_dim, path)
    except DataError:
        raise
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error,
            NotImplementedError, ArgumentError) as err:
        # EOFError from an empty file would otherwise reach click as "Aborted!".
        raise DataError(f"{path} is not a cs_nets checkpoint ({type(err).__name__}: {clip_text(err, 160)})") from None
    return model, inputs, meta


# ------------------------------------------------------------------------- the zip


def _check_central_directory(f, path) -> None:
    """Refuse a zip whose central directory is big before zipfile reads all of it into memory."""
    end_record = getattr(zipfile, "_EndRecData", None)  # private, but in every CPython since 2.x
    if end_record is None:  # pragma: no cover
        return
    record = end_record(f)
    if record is None:
        raise DataError(f"{path} is not a cs_nets checkpoint (not a zip file)")
    entries, size = record[zipfile._ECD_ENTRIES_TOTAL], record[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if entries > MAX_MEMBERS or size > MAX_CENTRAL_DIRECTORY:
        raise DataError(f"{path} lists {entries} members in {format_bytes(size)}; a checkpoint has at most "
                        f"{MAX_MEMBERS}: refused")
    f.seek(0)


def _check_members(zf, path) -> dict[str, zipfile.ZipInfo]:
    """The members by name (without .npy), each with a known name, method and a bounded declared size."""
    members, total = {}, 0
    for info in zf.infolist():
        match = _MEMBER.fullmatch(info.filename)
        if match is None:
            raise DataError(f"{path}: unexpected member {clip(info.filename)} (not a cs_nets checkpoint)")
        name = match.group(1)
        if name in members:
            raise DataError(f"{path}: member {name} appears twice")
        if info.flag_bits & 0x1:
            raise DataError(f"{path}: member {name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise DataError(f"{path}: member {name} uses compression method {info.compress_type}")
        total += info.file_size
        if total > MAX_PARAM_BYTES + 4 * MAX_META_CHARS:
            # Declared sizes bound what zipfile decompresses: this refuses a zip bomb unread.
            raise DataError(f"{path}: its members declare {format_bytes(total)} or more once decompressed, "
                            f"more than the {format_bytes(MAX_PARAM_BYTES)} a checkpoint may hold: refused")
        members[name] = info
    if "meta" not in members:
        raise DataError(f"{path} is not a cs_nets checkpoint: it has no meta")
    return members


def _open_array(zf, info, what, allowed, max_bytes, shape=None):
    """Open a member, check its .npy header (and ``shape``); return (stream, shape, dtype)."""
    f = zf.open(info)
    try:
        found, dtype, nbytes = read_npy_header(f, what, allowed, max_bytes)
        if shape is not None and found != tuple(shape):
            raise DataError(f"{what} has shape {clip(found)}, the architecture needs {tuple(shape)}")
        if info.file_size != f.tell() + nbytes:
            raise DataError(f"{what}: the header declares {nbytes} data bytes, the member holds "
                            f"{info.file_size - f.tell()}")
    except BaseException:
        f.close()
        raise
    return f, found, dtype


# ------------------------------------------------------------------------- meta


def _read_meta(zf, members, path) -> dict:
    what = f"{path}: meta"
    f, shape, dtype = _open_array(zf, members["meta"], what, lambda d: d.kind == "U" and d.byteorder in "<=|",
                                  4 * MAX_META_CHARS, shape=())
    with f:
        text = str(read_into(f, np.empty(shape, dtype), what)[()])
    meta = loads_json(text, what)
    if not isinstance(meta, dict):
        raise DataError(f"{what} is a JSON {type(meta).__name__}, not an object")
    _check_meta(meta, path)
    return meta


def _check_meta(meta: dict, path) -> None:
    """Every field load_checkpoint and evaluate use: present, of the right type, in range."""
    def bad(key, expected):
        return DataError(f"{path}: meta {key} is {clip(meta.get(key))}, expected {expected}")

    if meta.get("format") != FORMAT_VERSION:
        raise bad("format", f"{FORMAT_VERSION} (this cs_nets reads format {FORMAT_VERSION})")
    if meta.get("model_type") not in registry.MODEL_TYPES:
        raise bad("model_type", f"one of {', '.join(registry.MODEL_TYPES)}")
    if not _is_int(meta.get("input_dim"), 1, MAX_INPUT_DIM):
        raise bad("input_dim", f"an integer from 1 to {MAX_INPUT_DIM}")
    if not _is_int(meta.get("num_classes"), 2, MAX_CLASSES):
        raise bad("num_classes", f"an integer from 2 to {MAX_CLASSES}")
    if meta.get("dtype") not in registry.DTYPES:
        raise bad("dtype", f"one of {', '.join(registry.DTYPES)}")
    hyper = meta.get("hyperparams")
    if not isinstance(hyper, dict):
        raise bad("hyperparams", "an object")
    if "hidden_dim" in hyper and not _is_int(hyper["hidden_dim"], 1, MAX_HIDDEN):
        raise DataError(f"{path}: hidden_dim {clip(hyper['hidden_dim'])} is not an integer from 1 to {MAX_HIDDEN}")
    if "maxout_pieces" in hyper and not _is_int(hyper["maxout_pieces"], 1, MAX_MAXOUT_PIECES):
        raise DataError(f"{path}: maxout_pieces {clip(hyper['maxout_pieces'])} is not an integer "
                        f"from 1 to {MAX_MAXOUT_PIECES}")
    dims = hyper.get("hidden_dims", [])
    if not (isinstance(dims, list) and len(dims) <= MAX_LAYERS and all(_is_int(h, 1, MAX_HIDDEN) for h in dims)):
        raise DataError(f"{path}: hidden_dims {clip(dims)} is not a list of at most {MAX_LAYERS} integers "
                        f"from 1 to {MAX_HIDDEN}")
    shapes = param_shapes(meta["model_type"], meta["input_dim"], meta["num_classes"], hyper)
    nbytes = sum(math.prod(s) for s in shapes.values()) * np.dtype(meta["dtype"]).itemsize
    free = available_memory()
    limit = MAX_PARAM_BYTES if free is None else min(MAX_PARAM_BYTES, free // 3)
    if nbytes > limit:
        raise DataError(f"{path}: the architecture needs {format_bytes(nbytes)} of parameters, more than "
                        f"{format_bytes(limit)}: refused")
    names = meta.get("class_names")
    if names is not None and not (isinstance(names, list) and len(names) == meta["num_classes"] and all(
            isinstance(n, str) and 0 < len(n) <= MAX_NAME_CHARS for n in names)):
        raise bad("class_names", f"a list of {meta['num_classes']} names")
    size = meta.get("image_size")
    if size is not None and not _is_int(size, 1, MAX_IMAGE_SIZE):
        raise bad("image_size", f"an integer from 1 to {MAX_IMAGE_SIZE}")
    fingerprint = meta.get("data_fingerprint")
    if fingerprint is not None and not (isinstance(fingerprint, str) and _FINGERPRINT.fullmatch(fingerprint)):
        raise bad("data_fingerprint", "32 hex digits")
    _check_inputs_meta(meta, path)
    if size is not None and not meta["inputs"]["features"] and meta["input_dim"] != 3 * size * size:
        raise bad("image_size", f"the side of the images its {meta['input_dim']} raw-pixel inputs hold")
    if "config" in meta:
        from cs_nets.config import config_from_dict

        try:
            config_from_dict(meta["config"])
        except ConfigError as err:
            raise DataError(f"{path}: its run config is not valid: {clip_text(err, 240)}") from None


def _feature_width(features: list[dict], size: int) -> int | None:
    """What the (normalized) image features give for size x size images; None when they cannot read them."""
    from cs_nets.features import feature_dim, is_point_transforms

    if is_point_transforms(features):
        return None
    try:
        return feature_dim(features, (size, size, 3))
    except ConfigError:
        return None


def _check_inputs_meta(meta: dict, path) -> None:
    inputs = meta.get("inputs")
    if not isinstance(inputs, dict) or not isinstance(inputs.get("features"), list) \
            or not isinstance(inputs.get("normalizer"), dict):
        raise DataError(f"{path}: meta inputs is {clip(inputs)}, expected {{features: [...], normalizer: {{...}}}}")
    if inputs["features"]:
        from cs_nets.features import normalize_transforms

        try:
            inputs["features"] = normalize_transforms(inputs["features"])
        except ConfigError as err:
            raise DataError(f"{path}: meta inputs: {clip_text(err, 240)}") from None
    norm = inputs["normalizer"]
    n_features = norm.get("n_features")
    eps = norm.get("eps", 1e-8)
    if norm.get("mode") not in registry.NORMALIZATIONS or norm.get("dtype", "float32") not in registry.DTYPES \
            or not (n_features is None or n_features == meta["input_dim"]) \
            or isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise DataError(f"{path}: meta normalizer {clip(norm)} is not valid for {meta['input_dim']} inputs")


def _is_int(value, low, high) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


# ------------------------------------------------------------------------- arrays


def _build_model(meta, path):
    from cs_nets.nn.models import MODEL_CLASSES, build_model

    hyper = meta["hyperparams"]
    unknown = sorted(set(hyper) - set(MODEL_CLASSES[meta["model_type"]].HYPERPARAMS))
    if unknown:
        raise DataError(f"{path}: hyperparameter {clip(unknown[0])} does not belong to {meta['model_type']}")
    try:
        return build_model(meta["model_type"], meta["input_dim"], meta["num_classes"], dtype=meta["dtype"], **hyper)
    except ArgumentError as err:
        raise DataError(f"{path}: its architecture is not valid ({clip_text(err, 200)})") from None


def _read_params(zf, members, model, path) -> None:
    """Read each params/<name> straight into the model's own array, after its header matched."""
    stored = {name[len("params/"):] for name in members if name.startswith("params/")}
    if stored != set(model.params):
        raise DataError(f"{path}: parameters {clip(sorted(stored))}, the {model.model_type} needs "
                        f"{sorted(model.params)}")
    for name, target in model.params.items():
        what = f"{path}: params/{name}"
        f, _, _ = _open_array(zf, members[f"params/{name}"], what, [target.dtype], target.nbytes, shape=target.shape)
        with f:
            read_into(f, target, what)


def _read_inputs(zf, members, meta, input_dim, path):
    from cs_nets.data.pipeline import InputPipeline  # the pipeline imports the data layer; keep this module light

    arrays = {}
    for name in (n for n in members if n.startswith("inputs/")):
        key, what = name[len("inputs/"):], f"{path}: {name}"
        if key in ("mean", "std"):
            expected = (input_dim,)
        elif _CODEBOOK_MEMBER.fullmatch(key):
            expected = _codebook_shape(key, meta["inputs"]["features"], path)
        else:
            raise DataError(f"{path}: unexpected member {name}")
        f, shape, dtype = _open_array(zf, members[name], what, _FLOATS, math.prod(expected) * 8, shape=expected)
        with f:
            arrays[key] = read_into(f, np.empty(shape, dtype), what)
    try:
        inputs = InputPipeline.from_state(meta["inputs"], arrays)
    except ArgumentError as err:
        raise DataError(f"{path}: its input statistics are not valid ({clip_text(err, 200)})") from None
    inputs.data_fingerprint = meta.get("data_fingerprint")
    inputs.image_size = meta.get("image_size")
    if inputs.image_size is not None and inputs.features \
            and _feature_width(inputs.features, inputs.image_size) != input_dim:  # features are read at that size
        raise DataError(f"{path}: its features ({', '.join(t['type'] for t in inputs.features)}) do not give its "
                        f"{input_dim} inputs for {inputs.image_size}x{inputs.image_size} images (meta image_size)")
    return inputs


def _codebook_shape(key: str, features: list[dict], path) -> tuple[int, ...]:
    """The shape of ``features/<i>/<array>`` that transform i (a ``bow``, checked in the meta) implies."""
    match = _CODEBOOK_MEMBER.fullmatch(key)
    if match is None:  # pragma: no cover (the caller matched it)
        raise DataError(f"{path}: unexpected member inputs/{key}")
    index, array = int(match.group(1)), match.group(2)
    if index >= len(features) or features[index]["type"] != "bow":
        raise DataError(f"{path}: member inputs/{key} belongs to no bow transform of its meta")
    t = features[index]
    dim = 3 * t["patch"] * t["patch"]  # patch and words are bounded by normalize_transforms
    if array != "centroids" and not t["whiten"]:
        raise DataError(f"{path}: member inputs/{key}, but transform {index} does not whiten")
    return {"centroids": (t["words"], dim), "whiten_mean": (dim,), "whiten_matrix": (dim, dim)}[array]
