"""One run, from a resolved config to a finished run directory: the library's entry point.

    result = run(config, "runs/tl")            # csnets train
    result = run(config, "runs/rs", task="random_search")
    result = resume("runs/tl")                  # csnets train --resume

``run`` does: check the run directory may be written -> load the images -> (extract
features) -> split -> normalize -> build the model -> [nothing is written before this
point] -> train, saving the state after every epoch (or random search) -> score every
split -> write model.npz and summary.json. ``csnets train``, ``csnets random-search``,
``csnets sweep``'s trials and the benchmark scripts all call it. The files it writes
are listed in cs_nets/run_dir.py.

Interruptions (Ctrl-C, or SIGTERM/SIGHUP through cs_nets.runs.signals) end the training
early; the run is still scored and saved with status ``interrupted`` and can be
continued with ``resume``, which ends with the parameters an uninterrupted run has.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cs_nets.config import Config, config_from_dict, yaml_load
from cs_nets.data.pipeline import Dataset, prepare_dataset
from cs_nets.errors import ArgumentError, ConfigError, DataError
from cs_nets.files.untrusted import clip, read_text
from cs_nets.memory import storage_that_fits
from cs_nets.nn.models import build_model
from cs_nets.nn.models.base import SCORING_ROWS
from cs_nets.nn.random_search import random_search
from cs_nets.registry import ENDED_STATUSES, TASKS
from cs_nets.runs.checkpoint import save_checkpoint
from cs_nets.runs.layout import STATE_FILE
from cs_nets.runs.reader import config_changes, describe_changes
from cs_nets.runs.signals import StoppedAgain, finishing
from cs_nets.runs.writer import (
    RunDir,
    check_new_run_dir,
    default_run_dir,
    read_summary_if_any,
    refuse_special_folder,
)
from cs_nets.training.metrics import accuracy_of, accuracy_of_views, confusion_matrix
from cs_nets.training.state import TrainState
from cs_nets.training.trainer import fit, train_eval_rows

MAX_RUN_CONFIG_BYTES = 1 << 20


@dataclass
class RunResult:
    """What a run left: its directory, final status (see cs_nets.runs.writer), a message and summary.json."""

    run_dir: Path
    status: str
    message: str
    summary: dict

    @property
    def test_accuracy(self) -> float:
        return self.summary["test_accuracy"]


Pictures = Callable[[Path], list]  # run directory -> the PNG files drawn


def _silent(message: str) -> None:
    pass


def build_model_for(config: Config, data: Dataset):
    """The configured model, sized for `data`, with weights from default_rng(config.seed)."""
    try:
        return build_model(config.model.type, data.X_train.shape[1], len(data.class_names),
                           dtype=config.data.dtype, seed=config.seed, **config.model.build_kwargs())
    except ArgumentError as err:  # the values came from the model section
        raise ConfigError(f"model: {err}") from None


def run(config: Config, out=None, *, task: str = "train", data_dir=None, dataset: Dataset | None = None,
        overwrite: bool = False, config_path=None, progress: bool = False, log=None, on_epoch=None,
        command: str | None = None, overrides=(), pictures: Pictures | None = None,
        extra_summary: dict | None = None) -> RunResult:
    """Train (or random-search) the model of `config` into the run directory `out`.

    out: the run directory (None: output.dir, else runs/<config name>-<time>); an
        existing folder that holds a run is refused (ConfigError) unless ``overwrite``.
    task: "train" (minibatch SGD, cs_nets.training.trainer) or "random_search" (cs_nets.nn.random_search).
    data_dir: the CIFAR-10 folder (None: data.dir, $CS_NETS_DATA, ~/.cache/cs_nets).
    dataset: already prepared data for this config (e.g. shared by a sweep's trials);
        None loads it.
    config_path: the config file, so that --overwrite never deletes it.
    log: callable(str) for status lines; on_epoch: callable(metrics: dict) after each epoch.
    command, overrides: recorded in summary.json (how to reproduce the run).
    pictures: called with the run directory once the run has ended (not when it was
        interrupted) to draw its PNGs, e.g. cs_nets.plots.plot_run; it returns their paths.
        The callers that draw (csnets train, sweeps, cs_nets.run) pass it for --plot or
        output.plot, having checked that matplotlib is there before training.
    extra_summary: more fields for summary.json, kept from the first epoch on (e.g. the
        node a sweep's trial runs on).
    Returns a RunResult; raises ConfigError, DataError before anything is written.
    """
    if task not in TASKS:
        raise ConfigError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
    log = log or _silent
    path = Path(out) if out else default_run_dir(config)
    unique = not out and not config.output.dir  # a default name: RunDir.new picks a free one
    if unique:
        refuse_special_folder(path)
    else:
        check_new_run_dir(path, overwrite, config_path)
    data = dataset if dataset is not None else _prepare(config, data_dir, progress, log)
    model = build_model_for(config, data) if task == "train" else None
    run_dir = RunDir.new(path, overwrite, config_path, unique=unique)
    log(f"data: {len(data.y_train)} train, {len(data.y_val)} val, {len(data.y_test)} test, "
        f"{data.X_train.shape[1]} inputs ({_held(data)}); run directory {run_dir.path}")
    header = {"task": task, "model": config.model.type if task == "train" else "random_search",
              "overrides": list(overrides), "command": command or "", "data_fingerprint": data.inputs.data_fingerprint,
              "class_names": list(data.class_names), "config": config.to_dict(), **(extra_summary or {})}

    def work():
        # summary.json first: from now on the folder says which task wrote it, even if killed at once
        run_dir.write_summary({**_running(header), "epochs": 0})
        run_dir.write_config(config)
        if task == "random_search":
            return _search(config, data, run_dir, header, progress, log)
        return _train(config, data, model, run_dir, None, header, progress, log, on_epoch)

    return _carry_out(run_dir, header, work, pictures, log)


def resume(run_path, *, data_dir=None, dataset: Dataset | None = None, progress: bool = False, log=None,
           on_epoch=None, pictures: Pictures | None = None, extra_summary: dict | None = None,
           allow_changed_config: bool = False) -> RunResult:
    """Continue the training run in `run_path` from its last saved epoch, with its own config.

    config.yaml must be the config the run started with (summary.json records it): an
    edited one is refused (ConfigError naming each changed key, old and new value) unless
    ``allow_changed_config``; the run then goes on with the edited config and summary.json
    lists the changes in ``config_changes`` (with the epoch they took effect after).

    A run that already finished is returned as it is. The data must be the data the
    run started on (its fingerprint is checked; DataError otherwise). The result's
    parameters are bit-identical to those of a run that was never stopped.
    pictures, extra_summary: as for ``run`` (fields of the same name the run recorded are replaced).
    """
    log = log or _silent
    if (Path(run_path) / "config.yaml").exists() and (Path(run_path) / "summary.json").exists():
        # refused before the folder is even locked; checked again below, once it is
        _changed_config(Path(run_path), read_run_config(run_path), read_summary_if_any(run_path), allow_changed_config)
    run_dir = RunDir.existing(run_path)
    try:
        config = read_run_config(run_dir.path)
        summary = run_dir.read_summary()
        if summary.get("status") in ENDED_STATUSES and (run_dir.path / "model.npz").is_file():
            run_dir.close()
            if summary["status"] == "diverged":  # its loss became NaN: going on from there cannot help
                return RunResult(run_dir.path, "diverged", f"{run_dir.path} diverged (see its summary.json); "
                                 f"resuming cannot help: start it again with other settings, e.g. a smaller "
                                 f"optim.learning_rate", summary)
            log(f"{run_dir.path} has finished already (status {summary['status']}); nothing to resume")
            return RunResult(run_dir.path, summary["status"], "", summary)
        if summary.get("task", "train") != "train":
            raise ConfigError(f"--resume {run_dir.path}: a {clip(summary['task'], 40)} run cannot be resumed; "
                              f"start it again")
        changes = _changed_config(run_dir.path, config, summary, allow_changed_config)
        # an edited (or crafted) config.yaml may ask for more memory than there is: _prepare checks
        data = dataset if dataset is not None else _prepare(config, data_dir, progress, log)
        expected = summary.get("data_fingerprint")
        if expected and expected != data.inputs.data_fingerprint:
            raise DataError(f"{run_dir.path} was trained on other data (fingerprint {expected}, this data "
                            f"{data.inputs.data_fingerprint}): resume with the same data folder and source")
        model = build_model_for(config, data)
        state_path = run_dir.path / STATE_FILE
        state = TrainState.load(state_path) if state_path.exists() or state_path.is_symlink() else None
        if state is not None:
            _check_finite_state(state, state_path)
    except BaseException:
        run_dir.close()
        raise
    log(f"resuming {run_dir.path} after epoch {state.epoch if state else 0}")
    header = {key: summary[key] for key in ("task", "model", "overrides", "command", "config_changes")
              if key in summary}
    header.update({"task": "train", "model": config.model.type, "data_fingerprint": data.inputs.data_fingerprint,
                   "class_names": list(data.class_names), "config": config.to_dict(), **(extra_summary or {})})
    if changes:
        warnings.warn(f"continuing with the edited config.yaml ({describe_changes(changes)})", stacklevel=2)
        done = state.epoch if state else 0
        earlier = header.get("config_changes")
        header["config_changes"] = [*(earlier if isinstance(earlier, list) else []),
                                    *({"after_epoch": done, "key": k, "old": old, "new": new}
                                      for k, old, new in changes)]
    return _carry_out(run_dir, header, lambda: _train(config, data, model, run_dir, state, header, progress,
                                                      log, on_epoch), pictures, log)


def _prepare(config: Config, data_dir, progress: bool, log) -> Dataset:
    """The data of `config`, once a run of it is known to fit in memory (ConfigError before any
    download otherwise), with data.storage resolved once for both."""
    storage = storage_that_fits(config, data_dir)
    return prepare_dataset(config, data_dir, progress=progress, log=log, storage=storage)


def _held(data: Dataset) -> str:
    """The dtype of the model inputs, and how the training images are held when that differs."""
    dtype = str(data.X_train.dtype)
    return dtype if data.storage == dtype else f"{dtype}; training images held as {data.storage}"


def _check_finite_state(state: TrainState, path: Path) -> None:
    """DataError when a saved array holds NaN or infinity: the trainer saves only finite states (a
    diverging run stops before saving), so such a file was damaged and must not be trained on."""
    groups = {"params": state.params, "best": state.best_params,
              **{f"rule/{name}": buffers for name, buffers in state.rule_state.items()}}
    for group, arrays in groups.items():
        for name, value in arrays.items():
            value = np.asarray(value)
            if value.dtype.kind in "fc" and not np.isfinite(value).all():
                raise DataError(f"{path} is corrupt: {group}/{name} holds values that are not finite "
                                f"(NaN or infinity); start the run again")


def _changed_config(path: Path, config: Config, summary: dict, allow: bool) -> list:
    """The keys of config.yaml edited since the run started (its config in summary.json); ConfigError
    naming them unless ``allow``. A run whose summary records no config (an older cs_nets) is not checked."""
    recorded = summary.get("config")
    if not isinstance(recorded, dict):
        return []
    try:
        started = config_from_dict(recorded, name=config.name).to_dict()
    except ConfigError as err:
        raise DataError(f"{path}/summary.json: its config is not valid: {err}") from None
    changes = config_changes(started, config.to_dict())
    if changes and not allow:
        raise ConfigError(f"--resume {path}: config.yaml was edited since the run started ("
                          f"{describe_changes(changes)}): restore it, or continue with the edited config "
                          f"with --allow-changed-config")
    return changes


def _carry_out(run_dir: RunDir, header: dict, work, pictures: Pictures | None, log) -> RunResult:
    """work() -> RunResult, with the run directory locked; a crash is recorded; pictures at the end."""
    try:
        result = work()
    except BaseException as err:
        _record_failure(run_dir, header, err)
        raise
    finally:
        run_dir.close()
    if pictures is not None and result.status != "interrupted":
        log(f"pictures: {', '.join(str(p) for p in pictures(run_dir.path))}")
    return result


def read_run_config(run_path) -> Config:
    """The resolved config a run directory was started with (its config.yaml)."""
    path = Path(run_path) / "config.yaml"
    if not (path.exists() or path.is_symlink()):
        raise ConfigError(f"--resume {run_path}: not a run directory (no config.yaml)")
    text = read_text(path, "config", MAX_RUN_CONFIG_BYTES)  # a regular file only, bounded
    try:
        raw = yaml_load(text)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    except Exception as err:  # yaml.YAMLError and friends: a corrupt file
        raise DataError(f"{path} is not valid YAML: {str(err).splitlines()[0][:200]}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path} is not a cs_nets config")
    try:
        return config_from_dict(raw, name=Path(run_path).name)
    except ConfigError as err:
        raise DataError(f"{path}: {err}") from None


# ------------------------------------------------------------------------ the tasks


def _running(header: dict) -> dict:
    """The fields of summary.json while the run is going on."""
    return {**header, "status": "running", "pid": os.getpid(), "host": socket.gethostname(),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _train(config, data, model, run_dir: RunDir, state, header, progress, log, on_epoch) -> RunResult:
    every = config.train.checkpoint_every
    num_epochs = config.train.num_epochs
    if state is not None:
        run_dir.write_metrics(state.history)  # drop epochs finished after the last saved state
    run_dir.write_summary({**_running(header), "epochs": state.epoch if state else 0})

    def epoch_done(metrics, state):
        if state.epoch % every == 0 or state.epoch == num_epochs:
            run_dir.save_state(state)
            run_dir.promote()  # a replaced run gives way once the new one has saved its first state
        run_dir.write_metrics(state.history)
        run_dir.write_summary({**_running(header), "epochs": state.epoch, "best_epoch": state.best_epoch,
                               "best_val_accuracy": state.best_val_accuracy})
        if on_epoch is not None:
            on_epoch(metrics)

    # A diverging run overflows before its loss turns NaN; the trainer reports that in one line.
    with np.errstate(over="ignore", invalid="ignore"):
        result = fit(model, data.X_train, data.y_train, data.X_val, data.y_val, config.optim, config.train,
                     seed=config.seed, progress=progress, on_epoch=epoch_done, state=state,
                     X_val_views=data.X_val_views)
    if result.status == "interrupted" and run_dir.staging is not None:
        run_dir.discard()  # nothing saved yet: the run that was there stays as it was
        return RunResult(run_dir.path, "interrupted", result.message + f"; {run_dir.path} was left unchanged", {})
    fields = {**header, "epochs": len(result.history), "best_epoch": result.best_epoch,
              "train_seconds": result.train_seconds}
    try:
        with finishing():  # training is over: one stop signal now must not cut the saving short
            run_dir.write_array("batch_losses.npy", result.batch_losses)
            log(f"training: {len(result.history)} epochs in {result.train_seconds:.1f} s")
            started = time.perf_counter()
            summary = finish_run(config, data, model, run_dir, {**fields, "status": result.status})
            views = len(data.inputs.views)  # data.hflip_average, data.shift_average
            scored = f" ({views} views of each image)" if views > 1 else ""
            log(f"test split scored{scored} and the run saved in {time.perf_counter() - started:.1f} s")
            if result.status != "interrupted":
                run_dir.remove_state()  # finished: nothing left to resume
            run_dir.promote()
    except StoppedAgain:
        # Stopped twice: no scores, but the saved training state stays, so --resume ends the run.
        summary = {**fields, "status": "interrupted", "epochs": run_dir.saved_epochs(),
                   "note": "stopped again while scoring and saving: no scores; the training state is kept"}
        run_dir.write_summary(summary)
        run_dir.promote()
        return RunResult(run_dir.path, "interrupted", "stopped again while scoring and saving: the test scores "
                         "were not computed, the training state is kept", summary)
    return RunResult(run_dir.path, result.status, result.message, summary)


def _search(config, data, run_dir: RunDir, header, progress, log) -> RunResult:
    search = config.search
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=search.attempts, desc="random search", unit="W", file=sys.stderr,
                   disable=not sys.stderr.isatty())

    def on_attempt(attempt, best_loss):
        if bar is not None:
            bar.n = attempt + 1
            bar.set_postfix(best_loss=f"{best_loss:.4f}", refresh=False)
            bar.refresh()

    start = time.perf_counter()
    # random search scores whole arrays: uint8 storage (a NormalizedRows) gives its float copy here
    X_train = data.X_train if isinstance(data.X_train, np.ndarray) else data.X_train[:]
    try:
        result = random_search(X_train, data.y_train, attempts=search.attempts, scale=search.scale,
                               loss=config.model.loss, subsample=search.subsample, seed=config.seed,
                               num_classes=len(data.class_names), progress=on_attempt)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    log(f"best loss {result.best_loss:.4f} at attempt {result.best_attempt + 1}/{search.attempts}")
    run_dir.write_metrics([{"epoch": 1, "train_loss": float(result.best_loss), "train_accuracy": None,
                            "val_accuracy": None, "lr": None, "seconds": seconds}])
    run_dir.write_array("search_losses.npy", result.losses)
    summary = finish_run(config, data, result.model, run_dir, {
        **header, "status": "completed", "epochs": 1, "train_seconds": seconds,
        "best_loss": float(result.best_loss), "best_attempt": int(result.best_attempt)})
    run_dir.promote()
    return RunResult(run_dir.path, "completed", "", summary)


def finish_run(config, data, model, run_dir: RunDir, fields: dict) -> dict:
    """Save the model, score every split, write the final summary.json; return it.

    train_accuracy is measured on the same fixed training rows as every epoch's
    train_accuracy in metrics.jsonl (cs_nets.training.trainer.train_eval_rows).
    """
    save_checkpoint(run_dir.folder / "model.npz", model, data.inputs,
                    meta={"class_names": list(data.class_names), "config": config.to_dict()})
    test_labels = data.inputs.predict(model, data.test_rows, mirrored=data.test_rows_mirrored, images=data.test_images)
    confusion = confusion_matrix(data.y_test, test_labels, len(data.class_names))
    rows = train_eval_rows(len(data.y_train), config.train.train_eval_size, np.random.default_rng(config.seed))
    summary = {
        **fields,
        "test_accuracy": accuracy_of(confusion),
        "val_accuracy": _accuracy_in_chunks(model, data.X_val, data.y_val, views=data.X_val_views),
        "train_accuracy": _accuracy_in_chunks(model, data.X_train, data.y_train, rows),
        "test_confusion": confusion.tolist(),
    }
    run_dir.write_summary(summary)
    return summary


def _accuracy_in_chunks(model, X, y, rows=None, chunk: int = SCORING_ROWS, views=()) -> float:
    """accuracy(model, X[rows], y[rows]) scored `chunk` rows at a time: no copy of X[rows], and a stop
    signal is acted on between chunks (a second or so), whatever the split's size.
    views: the inputs of other views of the images (Dataset.X_val_views; rows must be None): scores averaged."""
    if views:
        return accuracy_of_views(model, [X, *views], y, chunk)
    rows = np.arange(len(y)) if rows is None else rows
    if len(rows) == 0:
        return float("nan")
    right = 0
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        right += int(np.count_nonzero(model.predict(X[part]) == y[part]))
    return right / len(rows)


def _record_failure(run_dir: RunDir, header: dict, err: BaseException) -> None:
    """Leave summary.json saying the run failed (a crash, not an interruption), if a folder is there."""
    if isinstance(err, KeyboardInterrupt) or run_dir.staging is not None:
        run_dir.discard()
        return
    try:
        summary = run_dir.read_summary()
        run_dir.write_summary({**header, **{k: v for k, v in summary.items() if k not in ("pid", "host")},
                               "status": "failed", "error": f"{type(err).__name__}: {str(err)[:300]}"})
    except (OSError, DataError):
        pass  # the original error matters more
