"""One trial of a local sweep, in a process of its own (the local backend's ``csnets train``).

    python -m cs_nets.sweep.worker '{"sweep_dir": ..., "name": "trial-003", "command": ..., "data_dir": null}'

The trial's config is read from DIR/sweep.json (written by the driver, cs_nets.sweep.local).
It runs the library's ``run`` into DIR/NAME, as ``csnets train`` would, and records the
trial's own command (base config and --set values, no --out) in summary.json. A trial
that was interrupted (its state.npz saved) continues with ``resume``; one that failed
before saving anything starts again in its folder.

Exit status: 0 finished (completed, early_stopped), 1 diverged or failed, 2 config
error, 128 + signal when stopped by SIGINT/SIGTERM/SIGHUP (the run is saved as
``interrupted``). On Linux the worker gets SIGTERM when the driver dies, so a killed
sweep never leaves trials running on their own.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from cs_nets.errors import ConfigError, CsNetsError

EXIT_DIVERGED = 1


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m cs_nets.sweep.worker JSON (started by csnets sweep --backend local)", file=sys.stderr)
        return 2
    _die_with_parent()
    from cs_nets.runs.signals import stop_signals_as_interrupt

    with stop_signals_as_interrupt() as signals:
        try:
            return _run_trial(json.loads(argv[0]))
        except KeyboardInterrupt:  # stopped before the run started: nothing written
            return signals.exit_code()
        except CsNetsError as err:
            print(f"error: {err}", file=sys.stderr)
            return err.exit_code
        finally:
            if signals.received is not None:
                print(f"stopped by {signal.Signals(signals.received).name}", file=sys.stderr)


def _run_trial(job: dict) -> int:
    from cs_nets.config import config_from_dict
    from cs_nets.plots import run_pictures
    from cs_nets.registry import ENDED_STATUSES
    from cs_nets.runs.layout import STATE_FILE
    from cs_nets.runs.task import resume, run
    from cs_nets.runs.writer import holds_run, read_summary_if_any
    from cs_nets.sweep.folder import read_record

    sweep_dir = Path(job["sweep_dir"])
    record = read_record(sweep_dir)
    trial = next((t for t in record["trials"] if isinstance(t, dict) and t.get("name") == job["name"]), None)
    if trial is None:
        raise ConfigError(f"{sweep_dir}/sweep.json has no trial {job['name']}")
    task = job.get("task", "train")
    path = sweep_dir / job["name"]
    extra = {"trial": job["name"], "backend": "local", "blas_threads": _blas_threads(job.get("threads"))}
    summary = read_summary_if_any(path)
    if summary.get("status") in ENDED_STATUSES and (path / "model.npz").is_file():
        result_status = summary["status"]  # finished before: nothing to do
    else:
        config = config_from_dict(trial["config"], name=job.get("config_name") or "run")
        pause = _Pause(path, job.get("stop_after"), config.train) if task == "train" else None
        pictures = run_pictures(config.output.plot)  # output.plot: the PNGs of each trial, as csnets train does
        if task == "train" and (path / STATE_FILE).is_file():
            result_status = resume(path, data_dir=job.get("data_dir"), extra_summary=extra, on_epoch=pause,
                                   pictures=pictures).status
        else:
            # A run that failed before its first saved epoch starts again in its own folder.
            result_status = run(config, path, task=task, data_dir=job.get("data_dir"), overwrite=holds_run(path),
                                command=job["command"], overrides=job["overrides"], extra_summary=extra,
                                on_epoch=pause, pictures=pictures).status
        if result_status == "interrupted" and pause is not None and pause.paused:
            print(f"{job['name']}: paused after epoch {pause.paused} (successive halving)", file=sys.stderr)
            return 0
    if result_status == "interrupted":
        raise KeyboardInterrupt
    print(f"{job['name']}: {result_status}", file=sys.stderr)
    return 0 if result_status in ("completed", "early_stopped", "stopped") else EXIT_DIVERGED


class _Pause:
    """on_epoch for successive halving: stop the training after epoch `stop_after` (saved as interrupted),
    unless the run would end there anyway (its last epoch, or its patience used up)."""

    def __init__(self, path: Path, stop_after: int | None, train):
        self.path, self.stop_after, self.train = path, stop_after, train
        self.paused = None

    def __call__(self, metrics: dict) -> None:
        from cs_nets.runs.writer import read_summary_if_any

        epoch = metrics["epoch"]
        if self.stop_after is None or epoch < self.stop_after or epoch >= self.train.num_epochs:
            return
        if self.train.patience is not None:  # the summary of this epoch is written before on_epoch
            best = read_summary_if_any(self.path).get("best_epoch") or 0
            if epoch - best >= self.train.patience:
                return
        self.paused = epoch
        raise KeyboardInterrupt  # the trainer saves the run as interrupted


def _blas_threads(requested):
    """The BLAS threads NumPy uses here (the driver set them through OMP/OPENBLAS_NUM_THREADS)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # an optional package: report what was asked for
        return requested
    import numpy  # noqa: F401 - loads the BLAS library threadpoolctl looks at

    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=requested)


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the sweep's driver dies (even by SIGKILL); the run is saved."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the driver died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
