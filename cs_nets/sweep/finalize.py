"""Finishing a trial's run directory after Ray Tune ended the trial's process.

A trial stopped by the scheduler (or by the end of an interrupted sweep) leaves a
run directory whose summary still says ``running``, with the state saved after
its last epoch (state.npz, cs_nets.training.state). ``finish_stopped_run`` turns that
into what ``csnets train`` leaves: model.npz with the best parameters so far,
batch_losses.npy, and the final summary.json with every split scored, so that
``csnets summarize``, ``plot`` and ``evaluate`` work on it unchanged.
"""

from __future__ import annotations

import os
import socket
import time

from cs_nets.data.pipeline import Dataset
from cs_nets.errors import DataError
from cs_nets.runs.layout import STATE_FILE
from cs_nets.runs.task import build_model_for, finish_run, read_run_config
from cs_nets.runs.writer import RunDir
from cs_nets.training.state import TrainState

# Fields of a running summary that the final one replaces.
RUNNING_FIELDS = ("status", "pid", "host", "updated", "epochs", "best_epoch", "best_val_accuracy")


def finish_stopped_run(run_path, dataset: Dataset, *, stopped_by_scheduler: bool, wait: float = 0.0) -> dict:
    """Write model.npz and the final summary of a run whose process was ended after an epoch.

    run_path: a run directory with summary.json and (normally) config.yaml and state.npz.
    dataset: the data the run trained on (its fingerprint is checked).
    stopped_by_scheduler: True if the sweep's scheduler stopped the trial.
    wait: seconds to wait for the trial's process to let go of the run directory.
    The status written says how the run ended:
      completed      every epoch had run (the stop came with the last one)
      early_stopped  train.patience was used up by the last epoch
      stopped        the scheduler stopped it; ``stopped_at_epoch`` says after which epoch
      interrupted    the sweep was interrupted: state.npz is kept for --resume
    Returns the summary written. DataError if the state does not belong to this run.
    """
    # Locked; also drops temporary files a killed process left. Its config.yaml may be missing: the
    # process may have been ended right after its first write (summary.json).
    run_dir = RunDir.existing(run_path, wait, need_config=False)
    try:
        return _finish_stopped(run_dir, dataset, stopped_by_scheduler)
    finally:
        run_dir.close()


def _finish_stopped(run_dir: RunDir, dataset: Dataset, stopped_by_scheduler: bool) -> dict:
    summary = run_dir.read_summary()
    header = {key: value for key, value in summary.items() if key not in RUNNING_FIELDS}
    state_path = run_dir.path / STATE_FILE
    if not state_path.is_file():  # ended before its first saved epoch: nothing to score, a resume starts it afresh
        fields = {**header, "status": "stopped" if stopped_by_scheduler else "interrupted", "epochs": 0}
        run_dir.write_summary(fields)
        return fields
    expected = summary.get("data_fingerprint")
    if expected and expected != dataset.inputs.data_fingerprint:
        raise DataError(f"{run_dir.path} was trained on other data (fingerprint {expected}, this data "
                        f"{dataset.inputs.data_fingerprint})")
    config = read_run_config(run_dir.path)
    state = TrainState.load(state_path)
    status = _status(config, state, stopped_by_scheduler)
    model = build_model_for(config, dataset)
    model.load_params(state.best_params)
    run_dir.write_metrics(state.history)  # drop an epoch finished after the last saved state
    run_dir.write_array("batch_losses.npy", state.all_batch_losses())
    fields = {**header, "status": status, "epochs": state.epoch, "best_epoch": state.best_epoch,
              "train_seconds": state.train_seconds}
    if status == "stopped":
        fields["stopped_at_epoch"] = state.epoch
    summary = finish_run(config, dataset, model, run_dir, fields)
    if status != "interrupted":
        run_dir.remove_state()  # finished: nothing left to resume
    return summary


def _status(config, state: TrainState, stopped_by_scheduler: bool) -> str:
    patience = config.train.patience
    if state.epoch >= config.train.num_epochs:
        return "completed"
    if patience is not None and state.epochs_since_best >= patience:
        return "early_stopped"
    return "stopped" if stopped_by_scheduler else "interrupted"


def mark_failed(run_path, error: str) -> None:
    """Record in summary.json that a run's process died (e.g. its node was lost); state.npz stays."""
    run_dir = RunDir.existing(run_path)
    try:
        summary = run_dir.read_summary()
        if summary.get("status") == "running":
            run_dir.write_summary({**{k: v for k, v in summary.items() if k not in ("pid", "host", "updated")},
                                   "status": "failed", "error": error[:300]})
    finally:
        run_dir.close()


def wait_for_exit(summary: dict, timeout: float = 30.0) -> None:
    """Wait until the process that wrote a running summary is gone (if it ran on this host).

    Tune ends a stopped trial's process moments after the stop; the driver must not
    write the run directory while that process could still be finishing an epoch.
    """
    pid, host = summary.get("pid"), summary.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # a process of another user has that pid now
            return
        time.sleep(0.05)
