"""The local backend: each trial a process of its own on this machine, N at a time, no Ray needed.

    result = run_local_sweep(spec, expand_trials(spec), "sweeps/tl", jobs=2)
    result = run_local_sweep(spec, trials, "sweeps/tl", jobs=2, resume=True)   # after a stopped sweep

The same trials (cs_nets.sweep.spec), run directories (DIR/trial-NNN), sweep.json,
best.yaml and --resume as the Ray backend. Each trial runs ``python -m
cs_nets.sweep.worker`` (the library's ``run``), its output in DIR/logs/trial-NNN.log,
with cpus_per_trial BLAS threads. ``scheduler: asha`` is Ray's asynchronous ASHA; here
it is synchronous successive halving: every trial runs to the first rung (grace_period
epochs), pauses (saved as ``interrupted``), the best 1/reduction_factor go on to the
next rung (x reduction_factor epochs), the others are marked ``stopped``.

Ctrl-C, SIGTERM or SIGHUP stop the sweep: the signal is passed to the running trials,
which save their state as ``interrupted`` (``resume`` continues them), and no new
trial starts. A trial whose process dies (killed, out of memory) is marked ``failed``
in its summary.json with how it ended; ``resume`` runs it again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from cs_nets.files.atomic import write_json
from cs_nets.registry import ENDED_STATUSES
from cs_nets.runs.reader import read_metrics
from cs_nets.runs.writer import RunDir, read_summary_if_any
from cs_nets.sweep.data import swept_data
from cs_nets.sweep.finalize import mark_failed
from cs_nets.sweep.folder import LOGS_DIR, SWEEP_FILE, check_sweep_dir, record
from cs_nets.sweep.results import SweepResult, best_outcome, outcome_of, trial_command, write_best_config
from cs_nets.sweep.spec import SweepSpec, Trial, check_trials_fit

POLL_SECONDS = 0.1
STOP_WAIT = 120.0  # seconds the stopped trials get to save their state before they are killed
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
EXIT_RUNTIME = 1  # a trial's exit status for a runtime error (cs_nets.errors: data, download); 2 is its config


def run_local_sweep(spec: SweepSpec, trials: list[Trial], out, *, jobs: int = 1, resume: bool = False,
                    data_dir=None, log=None) -> SweepResult:
    """Run every trial not finished yet, `jobs` at a time, into the sweep folder `out` (locked by the caller).

    Every trial is checked to fit in memory (check_trials_fit, ConfigError) before anything is written.
    """
    log = log or (lambda message: None)
    out = Path(out).absolute()
    started = time.perf_counter()
    check_trials_fit(trials)
    check_sweep_dir(spec, trials, out, resume, "local")
    log(f"sweep: {len(trials)} trials of {spec.base_path.name} into {out} (local backend, {jobs} at a time)")
    rungs = halving_rungs(spec, trials)
    if spec.scheduler.type == "asha":
        log(f"notice: scheduler asha is Ray's; the local backend halves synchronously instead: every trial "
            f"runs to epoch {', then '.join(map(str, rungs)) or '-'}, and the best 1/{spec.scheduler.reduction_factor} "
            f"of those still training go on each time")
    (out / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    if not resume:
        write_json(out / SWEEP_FILE, record(spec, trials, "local"))
    todo = [t for t in trials if not _finished(out / t.name)]
    if resume:
        log(f"resume: {len(trials) - len(todo)} trials finished before, {len(todo)} to run")
    errors: dict[str, str] = {}
    with _stop_signals() as stop:
        alive = list(trials)
        for rung in rungs:
            _run_all(spec, [t for t in alive if _to_run(out / t.name, errors, rung)], out, jobs, data_dir, log, stop,
                     errors, stop_after=rung)
            if stop.signals:
                break
            alive = _halve(spec, alive, out, rung, errors, log)
        if not stop.signals:
            _run_all(spec, [t for t in alive if _to_run(out / t.name, errors)], out, jobs, data_dir, log, stop, errors)
    outcomes = [outcome_of(t, out / t.name, errors.get(t.name)) for t in trials]
    best = best_outcome(outcomes)
    best_config = write_best_config(out, best, spec.path, spec.options.task) if best else None
    return SweepResult(out, outcomes, best, best_config, time.perf_counter() - started, 0.0,
                       stop.signals[0] if stop.signals else None)


def _finished(path: Path) -> bool:
    return read_summary_if_any(path).get("status") in ENDED_STATUSES and (path / "model.npz").is_file()


def _to_run(path: Path, errors: dict, rung: int | None = None) -> bool:
    """Whether the trial in `path` has epochs left to run (before `rung`, if given) and has not failed now."""
    if path.name in errors or _finished(path):
        return False
    return rung is None or (read_summary_if_any(path).get("epochs") or 0) < rung


# --------------------------------------------------------------------------- successive halving


def halving_rungs(spec: SweepSpec, trials: list[Trial]) -> list[int]:
    """The epochs where synchronous successive halving compares the trials: grace_period x reduction_factor^k,
    below the longest train.num_epochs; [] without ``scheduler: asha``."""
    if spec.scheduler.type != "asha":
        return []
    longest = max(t.config.train.num_epochs for t in trials)
    rungs, epoch = [], spec.scheduler.grace_period
    while epoch < longest:
        rungs.append(epoch)
        epoch *= spec.scheduler.reduction_factor
    return rungs


def _halve(spec: SweepSpec, alive: list[Trial], out: Path, rung: int, errors: dict, log) -> list[Trial]:
    """Keep the best ceil(n / reduction_factor) of the n trials that reached `rung` (by validation accuracy at
    that epoch, first trial first on ties); stop the others. Trials that ended before the rung leave the race.

    Only the recorded metrics decide, so a resumed sweep takes the same decisions again.
    """
    racing = {t.name: _val_at(out / t.name, rung) for t in alive
              if t.name not in errors and not _ended_before(out / t.name, rung)}
    ranked = sorted((t for t in alive if t.name in racing), key=lambda t: (-racing[t.name], t.index))
    keep = math.ceil(len(ranked) / spec.scheduler.reduction_factor)
    for trial in ranked[keep:]:
        if stop_trial(out / trial.name, rung):
            log(f"{trial.name}: stopped by successive halving after epoch {rung} (val {racing[trial.name]:.4f})")
    kept = {t.name for t in ranked[:keep]}
    return [t for t in alive if t.name in kept]


def _ended_before(path: Path, rung: int) -> bool:
    """The trial finished on its own (completed, early stopped, diverged) without reaching `rung`."""
    summary = read_summary_if_any(path)
    return summary.get("status") in ENDED_STATUSES and summary.get("status") != "stopped" \
        and (summary.get("epochs") or 0) < rung


def _val_at(path: Path, epoch: int) -> float:
    """Validation accuracy after `epoch` (from metrics.jsonl); -inf if it was not recorded (or was nan)."""
    for row in read_metrics(path):
        if row.get("epoch") == epoch and isinstance(row.get("val_accuracy"), (int, float)) \
                and not math.isnan(row["val_accuracy"]):
            return float(row["val_accuracy"])
    return -math.inf


def stop_trial(path: Path, epoch: int) -> bool:
    """Mark a trial paused at `epoch` as ``stopped`` (its model.npz and scores are those of its best epoch so
    far, written when it paused); its state.npz goes. False if it is stopped already."""
    run_dir = RunDir.existing(path)
    try:
        summary = run_dir.read_summary()
        if summary.get("status") != "interrupted":
            return False
        run_dir.write_summary({**summary, "status": "stopped", "stopped_at_epoch": summary.get("epochs", epoch)})
        run_dir.remove_state()
        return True
    finally:
        run_dir.close()


class _Stop:
    """The stop signals received, and the trial processes to pass them on to."""

    def __init__(self):
        self.signals: list[int] = []
        self.procs: dict[str, subprocess.Popen] = {}

    def __call__(self, signum, frame):
        self.signals.append(signum)
        for proc in list(self.procs.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL if len(self.signals) > 2 else signum)


@contextlib.contextmanager
def _stop_signals():
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            sig = getattr(signal, name)
            previous[sig] = signal.signal(sig, stop)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _run_all(spec: SweepSpec, todo: list[Trial], out: Path, jobs: int, data_dir, log, stop: _Stop,
             errors: dict, stop_after: int | None = None) -> None:
    """Run `todo`, `jobs` at a time; stop_after: each trial pauses after this epoch (saved as interrupted)."""
    env = dict(os.environ, **{name: str(spec.options.cpus_per_trial) for name in THREAD_VARIABLES})
    queue = list(todo)
    logs = {}
    swept = {t.name: swept_data(spec, t) for t in todo}  # named when a trial fails on its data
    stopping_since = None
    while stop.procs or (queue and not stop.signals):
        while queue and len(stop.procs) < jobs and not stop.signals:
            trial = queue.pop(0)
            job = {"sweep_dir": str(out), "name": trial.name, "command": trial_command(spec, trial, data_dir),
                   "overrides": trial.overrides, "data_dir": str(data_dir) if data_dir else None,
                   "config_name": trial.config.name, "threads": spec.options.cpus_per_trial,
                   "task": spec.options.task, "stop_after": stop_after}
            logs[trial.name] = out / LOGS_DIR / f"{trial.name}.log"
            with open(logs[trial.name], "ab") as log_file:
                stop.procs[trial.name] = subprocess.Popen(
                    [sys.executable, "-m", "cs_nets.sweep.worker", json.dumps(job)], stdin=subprocess.DEVNULL,
                    stdout=log_file, stderr=subprocess.STDOUT, env=env)
        if stop.signals and stopping_since is None:
            stopping_since = time.monotonic()
        if stopping_since is not None and time.monotonic() - stopping_since > STOP_WAIT:
            for proc in stop.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for name, proc in list(stop.procs.items()):
            code = proc.poll()
            if code is not None:
                del stop.procs[name]
                _ended(out / name, code, logs[name], log, errors, bool(stop.signals), stop_after, swept[name])
        time.sleep(POLL_SECONDS)


def _ended(path: Path, code: int, log_path: Path, log, errors: dict, stopping: bool,
           stop_after: int | None = None, swept: str = "") -> None:
    """One line for a trial whose process ended; its summary made to agree with how it ended.

    stopping: the sweep is being stopped; a trial that ends by the signal before its run
    started is left as not started. stop_after: the trial was to pause there (no line).
    swept: the trial's swept data keys with their spec lines (cs_nets.sweep.data.swept_data),
    added to a runtime error (exit 1: its data missing or damaged, a download)."""
    name = path.name
    summary = read_summary_if_any(path)
    status = summary.get("status")
    if status in ENDED_STATUSES:
        val = summary.get("val_accuracy")
        log(f"{name}: {status} after {summary.get('epochs')} epochs (val {float('nan') if val is None else val:.4f})")
        return
    if status == "interrupted" and stop_after is not None and code == 0:
        return  # paused at the rung
    if status == "interrupted":
        log(f"{name}: interrupted after {summary.get('epochs') or 0} epochs (saved; --resume continues it)")
        return
    if stopping and status is None and code > 128:
        return
    how = f"its process was killed by {_signal_name(-code)}" if code < 0 else f"exit {code}"
    error = f"{how}: {_last_line(log_path)}" if code > 0 else how
    if code == EXIT_RUNTIME and swept:
        error += f" ({swept})"
    if status == "running":  # it died without a word: its summary must not say running
        mark_failed(path, error)
    errors[name] = summary.get("error") if status == "failed" and summary.get("error") else error


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [line for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:600] if lines else "(no output)"  # long paths: the message, not a clipped half of it


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
