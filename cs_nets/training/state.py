"""Everything the training loop carries between epochs, and its file ``state.npz``.

A ``TrainState`` after epoch k is enough to run epochs k+1, ... exactly as an
uninterrupted run would: the current and best parameters, the update rule's
buffers (e.g. the velocity), the random generator's bit-generator state (it draws
the next shuffles and flips), the patience counter, the history and every batch loss.

File layout (``np.savez``, loaded with ``allow_pickle=False``): ``params/<name>``,
``best/<name>``, ``rule/<name>/<key>``, ``batch_losses`` (all epochs, in order) and
``meta``, a JSON string with the scalars, the history and the generator state.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cs_nets.errors import DataError
from cs_nets.files.atomic import atomic_open

FORMAT_VERSION = 1


@dataclass
class TrainState:
    """The loop's state after ``epoch`` finished epochs (0: before the first).

    params: {name: array} the current parameters (the model's own arrays while training)
    best_params: {name: array} copies of the parameters of the best validation epoch
    rule_state: {name: {key: array}} the update rule's buffers per parameter
    batch_losses: one (batches,) float32 array per finished epoch
    rng_state: the generator's ``bit_generator.state`` after the last finished epoch
    """

    params: dict
    best_params: dict
    rule_state: dict
    epoch: int = 0
    history: list = field(default_factory=list)
    batch_losses: list = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = float("nan")
    epochs_since_best: int = 0
    rng_state: dict | None = None
    train_seconds: float = 0.0

    @classmethod
    def start(cls, params: dict, rule_state: dict) -> TrainState:
        """The state before the first epoch: the initial parameters count as the best so far."""
        return cls(params=params, best_params={k: p.copy() for k, p in params.items()}, rule_state=rule_state)

    def restore_into(self, params: dict, rng: np.random.Generator) -> None:
        """Copy the saved parameters into the model's arrays and the generator state into ``rng``."""
        for name, p in params.items():
            p[...] = self.params[name]
        self.params = params
        if self.rng_state is not None:
            try:
                rng.bit_generator.state = self.rng_state
            except (TypeError, ValueError, KeyError) as err:
                raise DataError(f"the saved random generator state is not valid: {err}") from None

    def end_epoch(self, metrics: dict, losses: np.ndarray, params: dict, rng, train_seconds: float) -> None:
        """Record a finished epoch: its metrics and batch losses, the best parameters, the generator."""
        self.epoch = metrics["epoch"]
        self.history.append(metrics)
        self.batch_losses.append(losses)
        if not metrics["val_accuracy"] <= self.best_val_accuracy:  # also true while best is nan
            self.best_val_accuracy = metrics["val_accuracy"]
            self.best_epoch = self.epoch
            for name, p in params.items():
                self.best_params[name][...] = p
            self.epochs_since_best = 0
        else:
            self.epochs_since_best += 1
        self.rng_state = rng.bit_generator.state
        self.train_seconds = train_seconds

    def all_batch_losses(self) -> np.ndarray:
        """(num_batches,) float32: every batch loss so far, in order."""
        if not self.batch_losses:
            return np.zeros(0, np.float32)
        return np.concatenate(self.batch_losses).astype(np.float32, copy=False)

    def check_matches(self, params: dict, rule_state: dict) -> None:
        """DataError unless this state has the names, shapes and dtypes of a fresh model and rule."""
        def layout(arrays):
            return {k: (v.shape, v.dtype.str) for k, v in arrays.items()}

        if layout(self.params) != layout(params) or layout(self.best_params) != layout(params):
            raise DataError(f"the saved parameters {sorted(layout(self.params).items())} do not fit "
                            f"the model {sorted(layout(params).items())}")
        for name, fresh in rule_state.items():
            if layout(self.rule_state.get(name, {})) != layout(fresh):
                raise DataError(f"the saved update-rule state of {name!r} does not fit this config's optimizer")

    # ------------------------------------------------------------------ file

    def save(self, path) -> None:
        """Write ``state.npz`` atomically (temporary name, fsync, rename)."""
        arrays = {f"params/{k}": v for k, v in self.params.items()}
        arrays.update({f"best/{k}": v for k, v in self.best_params.items()})
        arrays.update({f"rule/{k}/{key}": v for k, s in self.rule_state.items() for key, v in s.items()})
        arrays["batch_losses"] = self.all_batch_losses()
        meta = {
            "format": FORMAT_VERSION,
            "epoch": self.epoch,
            "history": self.history,
            "batches_per_epoch": [len(b) for b in self.batch_losses],
            "best_epoch": self.best_epoch,
            "best_val_accuracy": None if math.isnan(self.best_val_accuracy) else self.best_val_accuracy,
            "epochs_since_best": self.epochs_since_best,
            "rng_state": self.rng_state,
            "train_seconds": self.train_seconds,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path) -> TrainState:
        """Read a ``state.npz``; DataError when it is missing, corrupt or inconsistent."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            meta = json.loads(str(arrays.pop("meta")))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
                raise ValueError("unknown format")
            params: dict[str, np.ndarray] = {}
            best: dict[str, np.ndarray] = {}
            rule: dict[str, dict[str, np.ndarray]] = {}
            for key, value in arrays.items():
                kind, _, rest = key.partition("/")
                if kind == "params":
                    params[rest] = value
                elif kind == "best":
                    best[rest] = value
                elif kind == "rule":
                    name, _, buffer = rest.rpartition("/")
                    rule.setdefault(name, {})[buffer] = value
            counts = [int(c) for c in meta["batches_per_epoch"]]
            losses = arrays["batch_losses"].astype(np.float32)
            if sum(counts) != len(losses) or min(counts, default=0) < 0:
                raise ValueError("batch_losses does not match batches_per_epoch")
            splits = np.cumsum(counts)[:-1] if counts else np.zeros(0, dtype=np.int64)
            history = meta["history"]
            epoch = int(meta["epoch"])
            if not isinstance(history, list) or len(history) != epoch or len(counts) != epoch:
                raise ValueError(f"history of {len(history)} epochs for epoch {epoch}")
            best_val = meta["best_val_accuracy"]
            return cls(params=params, best_params=best, rule_state=rule, epoch=epoch, history=history,
                       batch_losses=list(np.split(losses, splits)) if counts else [],
                       best_epoch=int(meta["best_epoch"]),
                       best_val_accuracy=float("nan") if best_val is None else float(best_val),
                       epochs_since_best=int(meta["epochs_since_best"]), rng_state=meta["rng_state"],
                       train_seconds=float(meta["train_seconds"]))
        except FileNotFoundError:
            raise DataError(f"no saved training state at {path}") from None
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
            raise DataError(f"{path} is not a cs_nets training state ({type(err).__name__}: {err})") from None
