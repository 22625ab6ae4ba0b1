"""The data of a sweep: loaded once per distinct data config, shared by the trials, and named in errors.

Trials that differ only in model, optimizer or training keys see the same arrays,
so the Ray driver prepares each distinct dataset once (``load_datasets``) and puts it
in Ray's object store; a trial on the same node maps it read-only instead of
loading 600 MB of float32 itself. A data folder that lost a file is then one error
for several trials: it names them, and the spec line of a swept data key
(``data_context``), on both backends.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from cs_nets.config import Config
from cs_nets.errors import CsNetsError, DataError
from cs_nets.sweep.spec import SweepSpec, Trial, format_value

if TYPE_CHECKING:  # the pipeline (features, NumPy) is imported where data is prepared, not by the local driver
    from cs_nets.data.pipeline import Dataset

DATA_KEYS = ("data", "features")  # swept keys that change a trial's data: data.* and the feature list
NAMED_TRIALS = 4  # a message lists this many trials by name, then counts the others


def data_key(config: Config) -> str:
    """What ``prepare_dataset(config)`` depends on, as text: equal keys give equal datasets.

    The seed matters only where it draws images (the synthetic source) or the
    validation split (``data.shuffle``); a seed grid on CIFAR-10 shares one dataset.
    """
    data = config.data
    seeded = data.source == "synthetic" or data.shuffle
    return json.dumps({"data": dataclasses.asdict(data), "features": config.features,
                       "seed": config.seed if seeded else None}, sort_keys=True)


def swept_data(spec: SweepSpec, trial: Trial) -> str:
    """The trial's values of the swept keys that change its data, each with its spec line:
    'data.dir=/data/b from sweep.yaml:4'; '' when no data key is swept."""
    return ", ".join(f"{p.key}={format_value(trial.params[p.key])} from {p.where}"
                     for p in spec.parameters if p.key.split(".")[0] in DATA_KEYS)


def name_trials(names: list[str]) -> str:
    """'trial-001', 'trial-000 and trial-002', 'trial-000, trial-001, trial-002, trial-003 and 8 others'."""
    if len(names) <= NAMED_TRIALS:
        return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    return f"{', '.join(names[:NAMED_TRIALS])} and {len(names) - NAMED_TRIALS} others"


def data_context(spec: SweepSpec, trials: list[Trial]) -> str:
    """'the data of trial-001 and trial-003 (data.dir=/data/b from sweep.yaml:4)': what an error in
    preparing the data these trials share is prefixed with."""
    swept = swept_data(spec, trials[0])  # trials that share data share the values of its keys
    return f"the data of {name_trials([t.name for t in trials])}" + (f" ({swept})" if swept else "")


def load_datasets(spec: SweepSpec, trials: list[Trial], data_dir=None, progress=False, log=None) -> dict[str, Dataset]:
    """{data_key: Dataset} for the distinct data of the trials, each prepared once.

    An error in preparing one (a data folder that lost a file, a failed download, too
    little memory) is the same kind of CsNetsError, one line that starts with
    ``data_context``: which trials use that data and the swept data keys' spec lines.
    """
    from cs_nets.data.pipeline import prepare_dataset

    users: dict[str, list[Trial]] = {}
    for trial in trials:
        users.setdefault(data_key(trial.config), []).append(trial)
    datasets = {}
    for key, group in users.items():
        try:
            datasets[key] = prepare_dataset(group[0].config, data_dir, progress=progress, log=log)
        except CsNetsError as err:
            raise type(err)(f"{data_context(spec, group)}: {err}") from err
        except MemoryError as err:  # the estimate (check_trials_fit) said it fits: the machine disagreed
            detail = " ".join(str(err).split())[:300] or "MemoryError"
            raise DataError(f"{data_context(spec, group)}: out of memory while preparing it ({detail})") from err
    return datasets


def dataset_bytes(dataset: Dataset) -> int:
    """Bytes of the arrays of every split (what sharing saves per trial)."""
    return sum(a.nbytes for a in dataset.arrays().values())
