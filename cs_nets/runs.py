"""Reading run directories back (their files: cs_nets/run_dir.py) and the table of a sweep folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from cs_nets.config import yaml_load
from cs_nets.errors import DataError

FINISHED = ("completed", "early_stopped")


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_summary(run_dir: Path) -> dict:
    path = Path(run_dir) / "summary.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{run_dir} is not a finished run directory (no summary.json)") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON: {err}") from None


def read_batch_losses(run_dir: Path) -> np.ndarray | None:
    path = Path(run_dir) / "batch_losses.npy"
    return np.load(path, allow_pickle=False) if path.exists() else None


def read_config_dict(run_dir: Path) -> dict:
    return yaml.safe_load((Path(run_dir) / "config.yaml").read_text())


def parse_overrides(overrides: list[str]) -> dict:
    """['optim.learning_rate=1e-3'] -> {'optim.learning_rate': 0.001} (values read as YAML)."""
    params = {}
    for text in overrides:
        key, _, value = text.partition("=")
        try:
            params[key.strip()] = yaml_load(value)
        except yaml.YAMLError:
            params[key.strip()] = value
    return params


def collect_runs(sweep_dir: str | Path) -> list[dict]:
    """One row per run below `sweep_dir`, best validation accuracy first; failed runs last.

    A run is a folder with a summary.json (finished) or a `sweep_args` file that
    scripts/sweep.sh writes before starting it (so a run that died early still shows).
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise DataError(f"{sweep_dir} is not a directory")
    rows = []
    for run in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        summary_path, args_path = run / "summary.json", run / "sweep_args"
        if summary_path.exists():
            summary = read_summary(run)
            rows.append({"run": run.name, "status": summary.get("status", "ok"),
                         "params": parse_overrides(summary.get("overrides", [])),
                         "val_accuracy": summary.get("val_accuracy"),
                         "test_accuracy": summary.get("test_accuracy"),
                         "train_accuracy": summary.get("train_accuracy"),
                         "epochs": summary.get("epochs"), "train_seconds": summary.get("train_seconds"),
                         "command": summary.get("command", "")})
        elif args_path.exists():
            overrides = [line for line in args_path.read_text().splitlines() if line.strip()]
            status_path = run / "exit_status"
            status = f"failed (exit {status_path.read_text().strip()})" if status_path.exists() else "running"
            rows.append({"run": run.name, "status": status, "params": parse_overrides(overrides),
                         "val_accuracy": None, "test_accuracy": None, "train_accuracy": None,
                         "epochs": None, "train_seconds": None, "command": ""})
    if not rows:
        raise DataError(f"no runs found in {sweep_dir}")

    def rank(row):  # finished runs by validation accuracy, then diverged/interrupted, then failed
        finished = row["status"] in FINISHED
        scored = row["val_accuracy"] is not None
        return (not finished, not scored, -(row["val_accuracy"] or 0.0), row["run"])

    return sorted(rows, key=rank)
