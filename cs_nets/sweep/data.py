"""The data of a sweep: loaded once per distinct data config, shared by the trials.

Trials that differ only in model, optimizer or training keys see the same arrays,
so the driver prepares each distinct dataset once (``prepare_dataset``) and puts it
in Ray's object store; a trial on the same node maps it read-only instead of
loading 600 MB of float32 itself.
"""

from __future__ import annotations

import dataclasses
import json

from cs_nets.config import Config
from cs_nets.data.pipeline import Dataset, prepare_dataset


def data_key(config: Config) -> str:
    """What ``prepare_dataset(config)`` depends on, as text: equal keys give equal datasets.

    The seed matters only where it draws images (the synthetic source) or the
    validation split (``data.shuffle``); a seed grid on CIFAR-10 shares one dataset.
    """
    data = config.data
    seeded = data.source == "synthetic" or data.shuffle
    return json.dumps({"data": dataclasses.asdict(data), "features": config.features,
                       "seed": config.seed if seeded else None}, sort_keys=True)


def load_datasets(configs, data_dir=None, progress=False, log=None) -> dict[str, Dataset]:
    """{data_key: Dataset} for the distinct data of `configs`, each prepared once."""
    datasets = {}
    for config in configs:
        key = data_key(config)
        if key not in datasets:
            datasets[key] = prepare_dataset(config, data_dir, progress=progress, log=log)
    return datasets


def dataset_bytes(dataset: Dataset) -> int:
    """Bytes of the arrays of every split (what sharing saves per trial)."""
    return sum(a.nbytes for a in dataset.arrays().values())
