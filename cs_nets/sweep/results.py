"""What a sweep left: one outcome per trial, the best trial, and its config as DIR/best.yaml."""

from __future__ import annotations

import contextlib
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from cs_nets.config import dump_config
from cs_nets.files.atomic import write_text
from cs_nets.runs.writer import read_summary_if_any
from cs_nets.sweep.spec import Trial

RANKED = ("completed", "early_stopped", "stopped")  # trials whose validation accuracy counts for "best"
BEST_FILE = "best.yaml"


@dataclass
class TrialOutcome:
    """How one trial ended, from its run directory's summary.json (and Ray's error, if it failed).

    status: completed, early_stopped, stopped, diverged, failed, interrupted, or
    not_started (the sweep ended before it).
    """

    trial: Trial
    status: str
    val_accuracy: float | None = None
    epochs: int | None = None
    stopped_at_epoch: int | None = None
    node_ip: str | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        return self.trial.name


@dataclass
class SweepResult:
    """The outcome of ``run_sweep``. signal: the stop signal received (None: none, or Ctrl-C)."""

    out: Path
    outcomes: list[TrialOutcome]
    best: TrialOutcome | None
    best_config: Path | None
    seconds: float
    ray_start_seconds: float
    signal: int | None = None
    datasets: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def interrupted(self) -> bool:
        return self.signal is not None or any(o.status in ("interrupted", "not_started") for o in self.outcomes)


def outcome_of(trial: Trial, run_path: Path, error: str | None) -> TrialOutcome:
    """The outcome of `trial` from its run directory; `error`: Ray's message if the trial failed."""
    summary = read_summary_if_any(run_path)
    status = summary.get("status") or ("failed" if error else "not_started")
    if error:
        status = "failed"
    return TrialOutcome(trial, status, summary.get("val_accuracy"), summary.get("epochs"),
                        summary.get("stopped_at_epoch"), summary.get("node_ip"),
                        error or summary.get("error"))


def best_outcome(outcomes: list[TrialOutcome]) -> TrialOutcome | None:
    """The trial with the highest validation accuracy among those that ran properly (first on ties)."""
    ranked = [o for o in outcomes if o.status in RANKED and o.val_accuracy is not None]
    return max(ranked, key=lambda o: (o.val_accuracy, -o.trial.index), default=None)


def command_name(task: str) -> str:
    """The csnets command of a task: train, random-search."""
    return task.replace("_", "-")


def base_command(spec, data_dir=None) -> list[str]:
    """csnets train --config BASE [--set k=v of the command line] [--data-dir D]: each trial's command
    starts so and its swept values follow (what summary.json records: paste it to run the trial alone)."""
    base = spec.base_path
    with contextlib.suppress(ValueError):
        base = base.resolve().relative_to(Path.cwd().resolve())
    data = ["--data-dir", str(data_dir)] if data_dir else []
    return ["csnets", command_name(spec.options.task), "--config", str(base), *sets(spec.overrides), *data]


def trial_command(spec, trial: Trial, data_dir=None) -> str:
    return shlex.join([*base_command(spec, data_dir), *sets(trial.overrides)])


def sets(overrides) -> list[str]:
    return [word for o in overrides for word in ("--set", o)]


def best_command(best_config: Path, task: str = "train", data_dir=None) -> str:
    """The command that trains the best config again into a new run directory (no --out: pasted, it runs)."""
    data = ["--data-dir", str(data_dir)] if data_dir else []
    return shlex.join(["csnets", command_name(task), "--config", str(best_config), *data])


def write_best_config(out: Path, best: TrialOutcome, spec_path, task: str = "train") -> Path:
    """DIR/best.yaml: the best trial's resolved config, ready for ``csnets train --config``."""
    config = best.trial.config
    swept = ", ".join(best.trial.overrides)
    text = (f"# Best trial of the sweep {spec_path}: {best.name}, validation accuracy {best.val_accuracy:.4f} "
            f"({best.status}).\n# Swept values: {swept}\n# Train it: {best_command(Path(out) / BEST_FILE, task)}\n"
            + dump_config(config))
    path = Path(out) / BEST_FILE
    write_text(path, text)
    return path
