"""Will a run fit in memory? Estimate its bytes from the config before anything is allocated.

A config can ask for a model or a run that no machine holds (``hidden_dim:
1000000000``, ``num_epochs: 1000000000000``); NumPy would then fail deep inside
with a MemoryError traceback, possibly after a download. ``check_fits`` adds up
the big arrays a run allocates and refuses, in one line that says how many bytes
and which keys, when they exceed the memory this process may still use.

``choose_storage`` resolves ``data.storage: auto`` with the same estimate: the training
images are kept as uint8 (1 byte a pixel, normalized as each minibatch is drawn) when
the run with float inputs (4 bytes a pixel) would not fit, else as float inputs.
The memory a run may use is what the machine still has (MemAvailable, a cgroup limit)
plus what the process holds, capped by the environment variable CS_NETS_MEMORY_LIMIT
(bytes, or with a suffix: 512M, 2G) when it is set.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
from pathlib import Path

import numpy as np

from cs_nets.data.sources import num_classes
from cs_nets.errors import ConfigError
from cs_nets.files.untrusted import format_bytes
from cs_nets.nn.models import MODEL_CLASSES
from cs_nets.nn.models.base import SCORING_ROWS
from cs_nets.registry import IMAGE_FOLDER_SOURCES, POINT_SOURCES

IMAGE_BYTES = 3072  # one 32x32x3 uint8 image
# Official CIFAR-10 sizes, used before the data is loaded (a mirror may hold fewer images).
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
LIMIT_VARIABLE = "CS_NETS_MEMORY_LIMIT"  # caps the memory a run may use (tests, shared machines)

# What each part of the estimate is and which keys make it big, for the message.
PARTS = {
    "images": ("the images (or 2-D points) and their labels", "SOURCE_SIZE"),
    "generation": ("the temporaries of generating the data", "SOURCE_SIZE"),
    "confusion": ("the test confusion matrix (classes x classes) and its copy in summary.json", "data.classes"),
    "features": ("the feature vectors", "features"),
    "inputs": ("the model inputs of the training and validation splits",
               "data.num_train / data.synthetic_train, data.dtype, data.storage, features"),
    "model": ("the parameters with their velocity and best copy",
              "model.hidden_dims"),
    "activations": ("the activations of a minibatch", "train.batch_size, model.hidden_dims"),
    "batch_losses": ("the loss of every minibatch", "train.num_epochs (x batches per epoch)"),
}


def param_shapes(model_type: str, input_dim: int, num_classes: int, hyper: dict) -> dict[str, tuple]:
    """The parameter shapes ``build_model(model_type, input_dim, num_classes, **hyper)`` would
    allocate, asked of the model class itself, so a huge one is refused without building it."""
    return MODEL_CLASSES[model_type].param_shapes(input_dim, num_classes, **hyper)


def estimate_bytes(config, num_train: int | None = None, input_dim: int | None = None, *,
                   training: bool = True, storage: str | None = None, data_dir=None,
                   folder_sizes: tuple[int, int] | None = None) -> dict[str, int]:
    """Bytes of the big arrays a run of ``config`` allocates, by part (keys of ``PARTS``).

    num_train / input_dim: the sizes when known (after loading); by default they are
    derived from the config (official CIFAR-10 sizes, the synthetic sizes, or the files
    of a folder dataset, counted; the feature list's width, else the pixels of an image).
    training=False: what scoring a saved model needs (no optimizer state, no minibatch
    losses; the images are read as uint8). storage: "float32" or "uint8", how the training
    images are held (default: data.storage, with auto taken as float32; see choose_storage).
    With uint8 a folder's training images are mapped from its cache and not counted: they
    are page cache, which the OS reads in as batches need them and may drop again.
    data_dir: the CLI's --data-dir, which replaces data.path for the folder source;
    folder_sizes: that folder's (training files, test files) when already counted
    (``count_folder``), so that it is not listed again.
    Python integers throughout, so absurd sizes give absurd numbers, not overflows.
    """
    from cs_nets.features.spec import feature_dim  # the features package is heavier than this module

    data, itemsize = config.data, np.dtype(config.data.dtype).itemsize
    if storage is None:
        storage = "uint8" if data.storage == "uint8" else "float32"
    if not training or not storage_applies(config):
        storage = "float32"
    classes = num_classes(data)
    image_shape = (data.image_size, data.image_size, 3)  # 32 but for the folder source (the schema says so)
    if data.source in POINT_SOURCES:
        # Two independent draws of points_per_class points per class: (N, 2) float32 each.
        n_images = n_test = data.points_per_class * classes
        row_bytes, raw_dim = 2 * 4, 2
        # One draw at a time: float64 points, their noise and the shuffled copy, the float32
        # result, the labels, their order and their shuffled copy (cs_nets.data.toy).
        generation = n_images * (3 * 16 + 8 + 3 * 8)
    elif data.source == "synthetic":
        n_images, n_test = data.synthetic_train, data.synthetic_test
        row_bytes, raw_dim = IMAGE_BYTES, IMAGE_BYTES
        # One draw at a time: float32 pixels and the class signal added to them (cs_nets.data.synthetic).
        generation = max(n_images, n_test) * IMAGE_BYTES * 2 * 4
    elif data.source in IMAGE_FOLDER_SOURCES:
        n_images, n_test = folder_sizes or count_folder(config, data_dir)
        row_bytes = raw_dim = 3 * data.image_size * data.image_size
        generation = 0
    else:
        n_images, n_test = CIFAR_TRAIN, CIFAR_TEST
        row_bytes, raw_dim, generation = IMAGE_BYTES, IMAGE_BYTES, 0
    if num_train is None:
        num_train = data.num_train or max(n_images - data.num_val, 1)
    if input_dim is None:
        input_dim = feature_dim(config.features, image_shape) if config.features else raw_dim
    num_val = data.num_val
    # data.hflip_copies: the training split gains a mirrored copy of each image (and its features).
    mirrors = num_train if data.hflip_copies and data.source not in POINT_SOURCES else 0
    # data.hflip_average: the validation and test images' mirrors are held beside them (pixels or features).
    scored_mirrors = num_val + n_test if data.hflip_average and data.source not in POINT_SOURCES else 0
    if storage == "uint8":
        # The training images stay uint8, with an index of the training rows; a folder's are
        # mapped from its cache (not counted, see above): only its validation rows are copied out.
        mapped = data.source in IMAGE_FOLDER_SOURCES
        held = n_test + (num_val if mapped else n_images)
        parts = {"images": held * row_bytes + (n_images + n_test) * 8 + num_train * 8
                 + mirrors * (2 * row_bytes + 8)}  # with mirrors: the training rows and theirs, in memory
    else:
        # Raw CIFAR-10 pixels are read straight into the model's dtype and normalized in
        # place (cs_nets.data.pipeline): the training images are then held once, as inputs.
        in_place = data.source == "cifar10" and not config.features
        parts = {"images": (n_test if in_place else n_images + n_test) * row_bytes + (n_images + n_test) * 8
                 + mirrors * (row_bytes + 8)}
    parts["images"] += scored_mirrors * row_bytes
    if generation:
        parts["generation"] = generation
    if config.features:
        parts["features"] = (n_images + n_test + mirrors + scored_mirrors) * feature_dim(config.features,
                                                                                         image_shape) * 4
    # The test split's (C, C) int64 confusion matrix, its flat bincount, and summary.json's
    # copy as a list of Python ints (a pointer and an int object each) and as JSON text.
    parts["confusion"] = classes * classes * (8 + 8 + 36 + 4)
    # The test split is normalized SCORING_ROWS rows at a time (counted in activations); with
    # uint8 storage so is the training split, a minibatch at a time.
    num_train += mirrors
    parts["inputs"] = (num_val if storage == "uint8" else num_train + num_val) * input_dim * itemsize
    parts["inputs"] += (num_val if scored_mirrors else 0) * input_dim * itemsize  # the val mirrors' inputs
    # data.shift_average: the validation images' moved views (4 moves, each with its mirror with
    # hflip_average) are held as inputs; the test images' are made a chunk at a time as scored.
    if data.shift_average and data.source not in POINT_SOURCES:
        parts["inputs"] += num_val * 4 * (1 + bool(scored_mirrors)) * input_dim * itemsize
    shapes = param_shapes(config.model.type, input_dim, classes, config.model.build_kwargs())
    params = sum(math.prod(s) for s in shapes.values())
    # Training holds the parameters, the best epoch's copy and, with momentum, the
    # velocity; the trainer's fused step writes each gradient straight into its update
    # (no gradient arrays). Scoring holds one copy.
    copies = 2 + (config.optim.momentum > 0) if training else 1
    parts["model"] = params * itemsize * copies
    widths = sum(shape[1] for shape in shapes.values() if len(shape) == 2)  # each layer's outputs
    rows = max(config.train.batch_size, SCORING_ROWS) if training else SCORING_ROWS
    # Per row: the gathered inputs, then pre-activation, activation and gradient of each layer
    # (with uint8 storage, also the gathered pixels of a minibatch).
    parts["activations"] = rows * (input_dim + 3 * widths) * itemsize
    if storage == "uint8":
        parts["activations"] += config.train.batch_size * input_dim
    if training:
        batches = math.ceil(num_train / min(config.train.batch_size, num_train))
        parts["batch_losses"] = config.train.num_epochs * batches * 4
        parts["inputs"] += min(config.train.train_eval_size, num_train) * input_dim * itemsize
    return parts


def storage_applies(config) -> bool:
    """Whether data.storage matters: the model reads image pixels (no features, no 2-D points)."""
    return not config.features and config.data.source not in POINT_SOURCES


def choose_storage(config, data_dir=None, available: int | None = None, *,
                   folder_sizes: tuple[int, int] | None = None) -> str:
    """What data.storage resolves to for a training run of ``config``: "float32" or "uint8".

    float32 and uint8 are kept (float32 meaning the model's float type, data.dtype). auto is
    uint8 when the run with float inputs would need more than ``available`` bytes (default:
    ``usable_memory()``; unknown: float32), else float32, so a set that fits keeps the fastest
    path. Where the model reads features or 2-D points storage does not apply: float32.
    data_dir, folder_sizes: as for ``estimate_bytes``.
    """
    if not storage_applies(config):
        return "float32"
    if config.data.storage != "auto":
        return config.data.storage
    if available is None:
        available = usable_memory()
    if available is None:
        return "float32"
    as_floats = estimate_bytes(config, storage="float32", data_dir=data_dir, folder_sizes=folder_sizes)
    return "uint8" if sum(as_floats.values()) > available else "float32"


def storage_that_fits(config, data_dir=None) -> str:
    """The storage a training run of ``config`` uses (``choose_storage``), once the run is known to fit
    in memory with it (``check_fits``: ConfigError otherwise). A folder dataset is listed once for both."""
    available = usable_memory()
    sizes = count_folder(config, data_dir) if config.data.source in IMAGE_FOLDER_SOURCES else None
    storage = choose_storage(config, data_dir, available, folder_sizes=sizes)
    check_fits(config, available=available, storage=storage, data_dir=data_dir, folder_sizes=sizes)
    return storage


def count_folder(config, data_dir=None) -> tuple[int, int]:
    """(training files, test files) of the folder dataset of ``config`` (at ``data_dir``, else data.path),
    listed without reading an image; CIFAR-10's sizes when it cannot be listed (loading then names
    the problem)."""
    from cs_nets.data.folder import count_files

    path = data_dir or config.data.path
    sizes = count_files(path, config.data.test_fraction) if path else None
    return sizes if sizes is not None else (CIFAR_TRAIN, CIFAR_TEST)


def memory_limit() -> int | None:
    """CS_NETS_MEMORY_LIMIT in bytes (digits, optionally with K, M, G or T: powers of 1024), or None
    when unset; ConfigError (exit 2) for anything else."""
    text = os.environ.get(LIMIT_VARIABLE, "").strip()
    if not text:
        return None
    found = re.fullmatch(r"(\d{1,20})\s*([KMGT]?)(?:i?B)?", text, flags=re.IGNORECASE)
    if not found:
        raise ConfigError(f"{LIMIT_VARIABLE}: expected a number of bytes such as 4000000000 or 4G, "
                          f"got {text[:40]!r}")
    return int(found[1]) * 1024 ** "_KMGT".index(found[2].upper() or "_")


def usable_memory() -> int | None:
    """Bytes a run may use: what this process holds plus what the machine still has free, at most
    CS_NETS_MEMORY_LIMIT; None when neither is known (then nothing is refused)."""
    free, limit = available_memory(), memory_limit()
    usable = None if free is None else free + resident_memory()
    if limit is not None:
        usable = limit if usable is None else min(usable, limit)
    return usable


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable (Linux), within a cgroup limit; None if unknown."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:  # a container's limit (cgroup v2) can be far below the machine's free memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def return_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc's ``malloc_trim``; elsewhere nothing).

    glibc keeps what a thread frees in that thread's arena: after the data is prepared
    on several threads (cs_nets.data), 30-60 MB of freed temporaries would otherwise
    stay in the process's RSS for the whole training.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        pass


def resident_memory() -> int:
    """Bytes this process holds now (0 where /proc is missing): they count as usable by the run."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


def check_fits(config, num_train: int | None = None, input_dim: int | None = None, *,
               training: bool = True, available: int | None = None, storage: str | None = None,
               data_dir=None, folder_sizes: tuple[int, int] | None = None) -> int:
    """Raise ConfigError when a run of ``config`` cannot fit in memory; return the estimated bytes.

    available: bytes usable by the run (default: ``usable_memory()``, what this process holds
    plus what the machine still has free, at most CS_NETS_MEMORY_LIMIT). With neither /proc
    nor sysconf nor the limit nothing is refused. storage: what data.storage resolved to
    (default: ``choose_storage`` with the same available bytes). data_dir, folder_sizes: as
    for estimate_bytes.
    """
    if available is None:
        available = usable_memory()
    if storage is None and training:  # scoring reads uint8 images whatever the storage
        storage = choose_storage(config, data_dir, available, folder_sizes=folder_sizes)
    parts = estimate_bytes(config, num_train, input_dim, training=training, storage=storage, data_dir=data_dir,
                           folder_sizes=folder_sizes)
    total = sum(parts.values())
    if available is None:
        return total
    if total > available:
        name = max(parts, key=lambda part: parts[part])
        what, keys = PARTS[name]
        if keys == "SOURCE_SIZE":  # the keys that size this source's data
            keys = ("data.points_per_class, data.classes" if config.data.source in POINT_SOURCES else
                    "data.synthetic_train / data.synthetic_test" if config.data.source == "synthetic" else
                    "data.num_train")
        raise ConfigError(
            f"the run needs about {format_bytes(total)} of memory but {format_bytes(available)} is available; "
            f"the largest part is {what}, {format_bytes(parts[name])}: lower {keys}")
    return total
