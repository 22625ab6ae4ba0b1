"""Reading run directories back (their files: cs_nets/runs/layout.py) and the table of a sweep folder."""

from __future__ import annotations

import math
import os
import shlex
import socket
from pathlib import Path
from typing import Any

import numpy as np

from cs_nets.config import yaml_load
from cs_nets.errors import ConfigError, CsNetsError, DataError
from cs_nets.files.untrusted import clip, clip_text, load_npy, loads_json, read_text
from cs_nets.registry import RESULT_STATUSES
from cs_nets.runs.layout import (
    MAX_BATCH_LOSSES_BYTES,
    MAX_METRICS_BYTES,
    MAX_SUMMARY_BYTES,
    METRIC_KEYS,
    RUN_FILES,
    RUNNING,
)

FINISHED = RESULT_STATUSES  # ranked by validation accuracy, first

# Options of a recorded command that name its own run directory: dropped from the command
# printed as the way to run it again (pasted, it must not write into the finished run).
RUN_DIR_OPTIONS = ("--out", "--resume")
RUN_DIR_FLAGS = ("--overwrite",)


def read_metrics(run_dir: Path, problems: list | None = None) -> list[dict]:
    """The epochs of metrics.jsonl that are well-formed, in order; [] without the file.

    A line that is not a JSON object, or whose metric values (METRIC_KEYS) are not
    numbers or null, is skipped, not fatal: a run killed while writing, or a file edited
    by hand, still plots and summarizes. Each skipped line (and an unreadable or
    oversized file) is described in ``problems`` when a list is given.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    try:
        text = read_text(path, "metrics file", MAX_METRICS_BYTES)
    except DataError as err:
        _note(problems, str(err))
        return []
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = loads_json(line, f"{path} line {number}")
        except DataError as err:
            _note(problems, str(err))
            continue
        if not isinstance(record, dict) or not all(_is_metric(record.get(k)) for k in METRIC_KEYS):
            _note(problems, f"{path} line {number} is not an epoch record: {clip(record)}")
            continue
        records.append(record)
    return records


def _is_metric(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _note(problems, message: str) -> None:
    if problems is not None:
        problems.append(message)


def read_summary(run_dir: Path) -> dict:
    """summary.json as a dict; DataError if it is missing, too big, not JSON or not an object."""
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        raise DataError(f"{run_dir} has no summary.json")
    summary = loads_json(read_text(path, "summary", MAX_SUMMARY_BYTES), str(path))
    if not isinstance(summary, dict):
        raise DataError(f"{path} is a JSON {type(summary).__name__}, not an object")
    return summary


def read_batch_losses(run_dir: Path) -> np.ndarray | None:
    """batch_losses.npy as a 1-D array, or None without the file; DataError if it is not one."""
    path = Path(run_dir) / "batch_losses.npy"
    if not path.exists():
        return None
    losses = load_npy(path, str(path), [np.float32, np.float64], MAX_BATCH_LOSSES_BYTES)
    if losses.ndim != 1:
        raise DataError(f"{path} has shape {losses.shape}, expected (num_batches,)")
    return losses


def parse_overrides(overrides: list[str]) -> dict:
    """['optim.learning_rate=1e-3'] -> {'optim.learning_rate': 0.001} (values read as YAML)."""
    params = {}
    for text in overrides:
        key, _, value = str(text).partition("=")
        try:
            params[clip_text(key.strip(), 80)] = yaml_load(value)
        except ConfigError:
            params[clip_text(key.strip(), 80)] = clip_text(value, 80)
    return params


def flatten_config(config: dict) -> dict:
    """{"model": {"reg": 0.1}} -> {"model.reg": 0.1}; lists stay values."""
    flat = {}
    for section, values in config.items():
        if isinstance(values, dict):
            flat.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            flat[section] = values
    return flat


def config_changes(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """(key, old value, new value) for each dotted key whose value differs between two config dicts, sorted."""
    before, after = flatten_config(old), flatten_config(new)
    return [(key, before.get(key), after.get(key)) for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)]


def describe_changes(changes: list[tuple[str, object, object]], limit: int = 3) -> str:
    """'optim.learning_rate 0.001 -> 0.0005, ...' for an error message (at most `limit` keys named)."""
    text = ", ".join(f"{key} {clip(old, 40)} -> {clip(new, 40)}" for key, old, new in changes[:limit])
    return text + (f" (and {len(changes) - limit} more)" if len(changes) > limit else "")


def pid_alive(pid, host) -> bool | None:
    """Whether process ``pid`` runs on this machine; None when ``host`` is another machine or unknown."""
    if not isinstance(host, str) or host != socket.gethostname():
        return None
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or a pid the OS cannot even look up
    return True


def rerun_command(command: str) -> str:
    """A run's recorded command without the options that name its run directory (--out, --resume,
    --overwrite), so that it can be pasted to train the same config again; '' if it cannot be parsed or
    names no --config."""
    try:
        words = shlex.split(command)
    except ValueError:
        return ""
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        if word in RUN_DIR_OPTIONS:
            skip = True
        elif not word.startswith(tuple(f"{o}=" for o in RUN_DIR_OPTIONS)) and word not in RUN_DIR_FLAGS:
            kept.append(word)
    if not any(word == "--config" or word.startswith("--config=") for word in kept):
        return ""  # e.g. `csnets train --resume DIR`: no config left to train again
    return shlex.join(kept)


def collect_runs(sweep_dir: str | Path) -> list[dict]:
    """One row per run below `sweep_dir`, best validation accuracy first; unfinished and failed runs last.

    A run is a folder with a summary.json, a config.yaml or a metrics.jsonl, so a run
    that died early still shows. One bad run never fails the table: its row says what
    is wrong. Statuses: those of summary.json (completed, early_stopped, diverged,
    interrupted, failed, ...); ``running``, or ``killed`` when summary.json says running
    but its process is gone from this machine; ``corrupt`` for a summary.json that
    cannot be read; ``incomplete`` for a run that left no summary.
    Rows: run, status, params, val_accuracy, test_accuracy, train_accuracy, epochs,
    train_seconds, command.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise DataError(f"{sweep_dir} is not a directory")
    rows = []
    for run in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        try:
            if any((run / name).exists() for name in RUN_FILES):
                rows.append(_run_row(run))
        except (OSError, CsNetsError) as err:  # e.g. a folder we may not read: one row, not a failed table
            rows.append({"run": run.name, "status": "unreadable", "params": {}, "val_accuracy": None,
                         "test_accuracy": None, "train_accuracy": None, "epochs": None, "train_seconds": None,
                         "command": "", "problem": clip_text(err, 200)})
    if not rows:
        raise DataError(f"no runs found in {sweep_dir}")

    def rank(row):  # finished runs by validation accuracy, then the others with a score, then the rest
        finished = row["status"] in FINISHED
        scored = row["val_accuracy"] is not None
        return (not finished, not scored, -(row["val_accuracy"] or 0.0), row["run"])

    return sorted(rows, key=rank)


def _run_row(run: Path) -> dict:
    row: dict[str, Any] = {"run": run.name, "status": "incomplete", "params": {}, "val_accuracy": None,
                           "test_accuracy": None, "train_accuracy": None, "epochs": None, "train_seconds": None,
                           "command": ""}
    summary = None
    if (run / "summary.json").exists():
        try:
            summary = read_summary(run)
        except DataError:
            row["status"] = "corrupt"
    if summary is not None:
        status = summary.get("status", "completed")
        row["status"] = clip_text(status, 40) if isinstance(status, str) and status else "unknown"
        overrides = summary.get("overrides")
        if isinstance(overrides, list):
            row["params"] = parse_overrides([o for o in overrides[:100] if isinstance(o, str)])
        for key in ("val_accuracy", "test_accuracy", "train_accuracy", "train_seconds"):
            row[key] = _number(summary.get(key))
        epochs = summary.get("epochs")
        row["epochs"] = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None
        command = summary.get("command")
        row["command"] = clip_text(command, 2000) if isinstance(command, str) else ""
        if row["status"] == RUNNING:
            alive = pid_alive(summary.get("pid"), summary.get("host"))
            row["status"] = "killed" if alive is False else RUNNING
    if row["status"] not in FINISHED and row["val_accuracy"] is None:
        # No final scores: show how far the run got, from its per-epoch metrics.
        metrics = read_metrics(run)
        vals = [v for v in (_number(m.get("val_accuracy")) for m in metrics) if v is not None]
        row["val_accuracy"] = max(vals) if vals else None
        row["epochs"] = row["epochs"] if row["epochs"] is not None else (len(metrics) or None)
    return row


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
