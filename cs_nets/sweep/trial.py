"""One trial of a sweep, as Ray Tune runs it in a worker process.

The trial is the library's ``run`` (``csnets train``'s), writing a normal run
directory under the sweep folder and reporting every epoch's validation accuracy
to Tune, so that its scheduler can stop it early. Started again after the sweep
was killed, it continues the run from its last saved epoch (``resume``).

When Tune stops the trial (its scheduler, or the end of the sweep), ``report``
raises SystemExit in the trial's thread and Tune ends the process moments later.
The trial then writes nothing more: the state saved after the epoch just reported
is complete, and the driver finishes the run directory from it
(cs_nets.sweep.finalize), so no file is ever written by two processes.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from cs_nets.config import config_from_dict
from cs_nets.errors import DataError
from cs_nets.plots import run_pictures
from cs_nets.registry import ENDED_STATUSES
from cs_nets.runs.layout import STATE_FILE
from cs_nets.runs.task import resume, run
from cs_nets.runs.writer import holds_run, read_summary_if_any
from cs_nets.sweep.finalize import wait_for_exit
from cs_nets.sweep.folder import SWEEP_FILE
from cs_nets.training.state import TrainState

DONE = ENDED_STATUSES  # a run with nothing left to do
REPORTED = ("epoch", "val_accuracy", "train_accuracy", "train_loss")  # what Tune sees of each epoch


def train_trial(config: dict, datasets: dict, sweep_dir: str) -> None:
    """Ray Tune's function trainable for one trial.

    config["trial"]: plain data made by cs_nets.sweep.tune: name, config_name,
        config (the resolved config as a dict), overrides, command, data_key, cpus.
    sweep_dir: the sweep folder; the run directory is sweep_dir/name.
    datasets: {data key: ObjectRef of a cs_nets.data.pipeline.Dataset}, from tune.with_parameters.
    """
    import ray
    from threadpoolctl import threadpool_info, threadpool_limits

    report = _tune_report()
    trial = config["trial"]
    run_path = Path(sweep_dir) / trial["name"]
    node_ip = ray.util.get_node_ip_address()
    if not (run_path.parent / SWEEP_FILE).is_file():
        raise DataError(f"{run_path.parent} is not visible on node {node_ip}: on a cluster, --out must be a "
                        f"folder every node sees at the same path (e.g. on NFS)")
    dataset = ray.get(datasets[trial["data_key"]])  # zero-copy, read-only arrays on this node

    reported = []

    def on_epoch(metrics: dict) -> None:
        reported.append(metrics["epoch"])
        try:
            report({key: metrics[key] for key in REPORTED})
        except SystemExit:
            threading.Event().wait()  # stopped by Tune: write nothing more (see the module docstring)

    with threadpool_limits(limits=trial["cpus"], user_api="blas"):
        blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        extra = {"trial": trial["name"], "node": ray.get_runtime_context().get_node_id(), "node_ip": node_ip,
                 "blas_threads": max(blas, default=None)}
        summary = read_summary_if_any(run_path)
        if summary.get("status") in DONE and (run_path / "model.npz").is_file():
            replay(read_metrics(run_path), on_epoch)  # finished before the sweep was stopped
        elif (run_path / "config.yaml").is_file():
            wait_for_exit(summary)  # a killed sweep's trial may still be ending on this node
            state = run_path / STATE_FILE
            replay(TrainState.load(state).history if state.is_file() else [], on_epoch)
            summary = resume(run_path, dataset=dataset, on_epoch=on_epoch, extra_summary=extra).summary
        else:
            # New, or killed before its config was written (summary.json comes first): start it afresh.
            run_config = config_from_dict(trial["config"], name=trial["config_name"])
            summary = run(run_config, run_path, dataset=dataset, task=trial.get("task", "train"),
                          on_epoch=on_epoch, overwrite=holds_run(run_path), command=trial["command"],
                          overrides=trial["overrides"], pictures=run_pictures(run_config.output.plot),
                          extra_summary=extra).summary
    if not reported:  # Tune wants the metric at least once (e.g. a run that diverged in its first epoch)
        val = summary.get("val_accuracy")
        on_epoch({"epoch": summary.get("epochs", 0), "val_accuracy": float("nan") if val is None else val,
                  "train_accuracy": summary.get("train_accuracy"), "train_loss": None})


def replay(history: list[dict], on_epoch) -> None:
    """Report the epochs a run had done before, in order, as if they ran now.

    A trial continued after a restore would otherwise reach the scheduler's rungs with
    later, better epochs than the trials that start fresh; replayed, every rung sees
    each trial's accuracy at that epoch (and may stop it there, as it could have then).
    """
    for metrics in history:
        on_epoch(metrics)


def read_metrics(run_path: Path) -> list[dict]:
    path = run_path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _tune_report():
    from ray import train, tune

    # Ray >= 2.41 reports from Tune's own module (its RunConfig came with it); before,
    # ray.tune.report was an old API that only raises, and ray.train.report was the one.
    return tune.report if hasattr(tune, "RunConfig") else train.report
