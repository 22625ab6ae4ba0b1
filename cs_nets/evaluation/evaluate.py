"""Score a saved model on one split of its data, trusting nothing the checkpoint says about where data lives.

A checkpoint stores its run config, including ``data.url``, ``data.md5`` and
``data.dir``. Those are ignored: data comes from the folder and mirror the user
names (``data_dir``, ``url``, ``md5``), else from ``$CS_NETS_DATA`` or the cache
folder and the official archive with its official MD5. What the checkpoint does
decide is how to rebuild the split (source, sizes, seed) and the preprocessing.

Two consistency checks: the data must be the data the model was trained on (its
fingerprint is in the checkpoint; other data is refused unless
``allow_other_data``), and a ``config.yaml`` beside ``model.npz`` (a run
directory) must be the config stored in the checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cs_nets.config import Config, config_from_dict, load_config
from cs_nets.errors import ConfigError, DataError
from cs_nets.files.untrusted import clip, clip_text
from cs_nets.runs.checkpoint import checkpoint_path, load_checkpoint
from cs_nets.runs.reader import config_changes


def evaluate_checkpoint(checkpoint, split: str = "test", data_dir=None, url: str | None = None,
                        md5: str | None = None, allow_other_data: bool = False, progress: bool = True,
                        log=None) -> dict:
    """Accuracy, per-class accuracy and confusion matrix of a saved model on one split.

    checkpoint: a run directory or its model.npz. split: "test", "val" or "train".
    data_dir / url / md5: where the data is and which archive to download if it is not
    there (default: $CS_NETS_DATA or the cache folder; the official URL and MD5).
    allow_other_data: score data whose fingerprint differs from the training data's.
    log: optional callable(str) for notes.
    Returns {"split", "accuracy", "num_images", "per_class_accuracy": {name: acc},
    "confusion": (C, C) list, "class_names", "data_fingerprint", "same_data": bool or
    None (the checkpoint records no fingerprint)}. Raises DataError.
    """
    from cs_nets import registry
    from cs_nets.data.cifar10 import data_fingerprint
    from cs_nets.data.pipeline import load_images, split_of
    from cs_nets.memory import check_fits
    from cs_nets.training.metrics import accuracy_of, confusion_matrix, per_class_accuracy

    log = log or (lambda message: None)
    if split not in registry.SPLITS:
        raise DataError(f"unknown split {clip(split)}; expected one of {', '.join(registry.SPLITS)}")
    path = checkpoint_path(checkpoint)
    model, inputs, meta = load_checkpoint(path)
    if "config" not in meta:
        raise DataError(f"{path} holds no run config: it cannot tell which data split to rebuild")
    config = config_from_dict(meta["config"])  # checked by load_checkpoint
    check_matches_run_config(path, config)
    data = trusted_data_config(config, url, md5)
    stored_dir = config.data.dir
    try:
        check_fits(config, training=False)
    except ConfigError as err:
        raise DataError(f"{path}: {err}") from None

    raw, folder = load_images(data, config.seed, data_dir, progress, log)
    if stored_dir and folder is not None and Path(stored_dir).expanduser().absolute() != folder:
        log(f"note: the run used data.dir {clip(stored_dir)}; this evaluates {folder} (--data-dir chooses)")
    found = data_fingerprint(raw)
    recorded = meta.get("data_fingerprint")
    same = None if recorded is None else found == recorded
    where = folder if folder is not None else "the synthetic data"
    if same is None:
        log(f"note: {path} records no data fingerprint (saved by an older cs_nets): "
            f"cannot check that {where} is the data it was trained on")
    elif not same:
        message = (f"{where} is not the data {path} was trained on (fingerprint {found}, "
                   f"the checkpoint records {recorded})")
        if not allow_other_data:
            raise DataError(f"{message}: give the right --data-dir, or --allow-other-data to score it anyway")
        log(f"warning: {message}; scoring it anyway (--allow-other-data)")

    parts = split_of(raw, data, config.seed)
    del raw
    # only the split asked for goes through the (fitted) feature transforms
    images = getattr(parts, f"X_{split}")
    # with data.hflip_average or shift_average, each image scores as the mean over its views
    rows, mirrored = inputs.extract_views(images, folder, progress, log)
    y = getattr(parts, f"y_{split}")
    inputs.check_width(rows)
    if rows.shape[1] != model.input_dim:  # normalization keeps the width
        raise DataError(f"the checkpoint expects {model.input_dim} inputs per image "
                        f"(features: {inputs.features or 'raw pixels'}) but the data gives {rows.shape[1]}")
    class_names = parts.class_names
    confusion = confusion_matrix(y, inputs.predict(model, rows, mirrored=mirrored, images=images), len(class_names))
    per_class = per_class_accuracy(confusion)
    return {"split": split, "accuracy": accuracy_of(confusion), "num_images": int(len(y)),
            "per_class_accuracy": {n: float(a) for n, a in zip(class_names, per_class)},
            "confusion": confusion.tolist(), "class_names": list(class_names),
            "data_fingerprint": found, "same_data": same}


def trusted_data_config(config: Config, url: str | None, md5: str | None):
    """``config.data`` with the checkpoint's url, md5 and dir replaced by the user's (None: the defaults)."""
    return dataclasses.replace(config.data, url=url, md5=md5, dir=None)


def check_matches_run_config(path: Path, config: Config) -> None:
    """DataError when a config.yaml beside the checkpoint differs from the config stored inside it."""
    beside = Path(path).parent / "config.yaml"
    if not beside.is_file():
        return
    try:
        run_config = load_config(beside)
    except ConfigError as err:
        raise DataError(f"{beside} beside {path.name} is not a valid config: {clip_text(err, 240)}") from None
    differ = config_changes(config.to_dict(), run_config.to_dict())
    if differ:
        key, stored, written = differ[0]
        more = f" (and {len(differ) - 1} more keys)" if len(differ) > 1 else ""
        raise DataError(f"{path} does not match {beside}: {key} is {clip(stored)} in the checkpoint but "
                        f"{clip(written)} in config.yaml{more}; one of them was replaced")
