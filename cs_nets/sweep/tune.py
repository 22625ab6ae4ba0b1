"""The sweep's driver on Ray Tune: data once, trials on any node, early stopping, restore.

    result = run_sweep(spec, expand_trials(spec), "sweeps/tl")                 # Ray on this machine
    result = run_sweep(spec, trials, "sweeps/tl", address="HEAD:6379")        # on a Ray cluster
    result = run_sweep(spec, trials, "sweeps/tl", resume=True)                # after a killed sweep

The sweep folder DIR (cs_nets.sweep.folder; the caller locks it) holds sweep.json
(the spec and the trials), one run directory per trial (DIR/trial-NNN, written by
cs_nets.sweep.trial), best.yaml at the end, Ray Tune's own files in DIR/.ray (what
``resume`` restores from) and Ray's own messages in DIR/ray.log (unless ``debug``).
An ``address`` is probed first (``probe_ray``): Ray's own connect waits minutes
for an address where nothing, or something else, answers.

Each distinct dataset is prepared once here and put in Ray's object store; the
trials read it from there (cs_nets.sweep.data). The trials are given to Tune as
one grid of already drawn and validated configs (cs_nets.sweep.spec), so Tune
schedules, places, stops and restores them, and the search stays reproducible.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shlex
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import Callback
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from cs_nets.errors import ConfigError, CsNetsError, DataError
from cs_nets.files.atomic import write_json
from cs_nets.runs.writer import read_summary_if_any
from cs_nets.sweep.data import data_key, dataset_bytes, load_datasets
from cs_nets.sweep.finalize import finish_stopped_run, mark_failed, wait_for_exit
from cs_nets.sweep.folder import RAY_DIR, SWEEP_FILE, check_sweep_dir, record
from cs_nets.sweep.results import SweepResult, base_command, best_outcome, outcome_of, sets, write_best_config
from cs_nets.sweep.spec import SweepSpec, Trial, check_trials_fit
from cs_nets.sweep.trial import DONE, train_trial


class _WithoutRestoreHint(logging.Filter):
    """Tune's "Resume experiment with: Tuner.restore(...)" is for its Python users; ours get
    the csnets command from the CLI."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore" not in record.getMessage()


logging.getLogger("ray.tune.tune").addFilter(_WithoutRestoreHint())

EXPERIMENT = "tune"  # Tune's experiment name: DIR/.ray/tune
STOPS_FILE = "stops.json"  # DIR/.ray/stops.json: trials the scheduler stopped, with the epoch
CONNECT_TIMEOUT = 15.0  # seconds --address gets to answer
RAY_LOG = "ray.log"  # DIR/ray.log: Ray's own messages, unless --debug
STOPPED_TRIAL_WAIT = 30.0  # seconds to wait for Tune to end a stopped trial's process (it holds the run's lock)


def run_sweep(spec: SweepSpec, trials: list[Trial], out, *, address: str | None = None, resume: bool = False,
              data_dir=None, progress: bool = False, log=None, connect_timeout: float = CONNECT_TIMEOUT,
              debug: bool = False) -> SweepResult:
    """Run every trial on Ray Tune into the sweep folder `out`; return their outcomes and the best.

    address: a Ray cluster (HEAD:PORT); None starts Ray on this machine (or uses the Ray
        this process is already connected to).
    resume: continue the sweep in `out` (Ray Tune's restore): finished trials are not run
        again, an interrupted trial continues from its last saved epoch.
    connect_timeout: seconds the address gets to answer.
    debug: Ray's own messages on the terminal; else in DIR/ray.log.
    The caller holds the sweep folder's lock (cs_nets.sweep.folder.lock_sweep_dir).
    Every trial is checked to fit in memory (check_trials_fit, ConfigError) before
    anything is written, Ray is started or data is prepared. A failed trial does not
    stop the others. Ctrl-C (or SIGTERM/SIGHUP) stops the sweep: Tune stops the trials
    and saves its state, the run directories are finished as ``interrupted`` and
    ``resume`` continues them.
    """
    log = log or (lambda message: None)
    out = Path(out).absolute()
    started = time.perf_counter()
    check_trials_fit(trials)  # the driver prepares the data and the trials skip their own check
    check_sweep_dir(spec, trials, out, resume, "ray")
    _check_ray_state(out, resume)
    if address:
        probe_ray(address, connect_timeout)  # before the sweep folder is made
    at_once = spec.options.max_concurrent or "as many as the CPUs allow"
    log(f"sweep: {len(trials)} trials of {spec.base_path.name} into {out} (ray backend, {at_once} at a time)")
    out.mkdir(parents=True, exist_ok=True)
    with ray_output_to(None if debug else out / RAY_LOG):
        return _run(spec, trials, out, address, resume, data_dir, progress, log, connect_timeout, started)


def _run(spec, trials, out, address, resume, data_dir, progress, log, connect_timeout, started) -> SweepResult:
    we_started, ray_seconds = _connect(address, log, connect_timeout)
    try:
        _check_resources(spec)
        datasets = load_datasets(spec, trials, data_dir, progress=progress, log=log)
        keys = {t.name: data_key(t.config) for t in trials}
        shared = [{"bytes": dataset_bytes(ds), "trials": sum(k == key for k in keys.values())}
                  for key, ds in datasets.items()]
        for info in shared:
            log(f"data: {info['bytes'] / 2**20:.0f} MB of model inputs, loaded once for {info['trials']} trials")
        refs = {key: ray.put(ds) for key, ds in datasets.items()}  # each trial maps it, read-only
        del datasets
        tuner = _tuner(spec, trials, out, refs, keys, resume, data_dir)
        if not resume:
            write_json(out / SWEEP_FILE, record(spec, trials, "ray"))
        _DRIVER.start(log, out, lambda name: ray.get(refs[keys[name]]))
        with _stop_signals_as_interrupt() as received:
            try:
                grid = tuner.fit()
            except Exception as err:  # Tune's own failure (not a trial's): one line; --debug shows the rest
                raise CsNetsError(f"Ray Tune stopped: {type(err).__name__}: {_first_line(err)}; "
                                  f"continue with --resume") from err
            finally:
                _DRIVER.stop()
        errors = {r.config["trial"]["name"]: _error_line(r.error) for r in grid if r.error is not None}
        outcomes = _finish_trials(trials, out, refs, keys, errors)
    finally:
        if we_started:
            ray.shutdown()
    best = best_outcome(outcomes)
    best_config = write_best_config(out, best, spec.path, spec.options.task) if best else None
    return SweepResult(out, outcomes, best, best_config, time.perf_counter() - started, ray_seconds,
                       received[0] if received else None, shared)


# --------------------------------------------------------------------------- set-up


def _check_ray_state(out: Path, resume: bool) -> None:
    if resume and not (out / RAY_DIR / EXPERIMENT).is_dir():
        raise ConfigError(f"--resume: {out} has no Ray Tune state (it stopped before Tune started); "
                          f"start it again with another --out")


def _connect(address: str | None, log, timeout: float = CONNECT_TIMEOUT) -> tuple[bool, float]:
    """Connect to Ray (start it here without an address); (whether we started it, seconds taken).

    With an address, first check within `timeout` seconds that something there speaks
    HTTP/2 (Ray's GCS is a gRPC server): Ray's own connect waits minutes for nothing.
    """
    if ray.is_initialized():
        return False, 0.0
    start = time.perf_counter()
    options: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING)
    if address:  # run_sweep checked it answers
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(max(1, math.ceil(timeout))))
    else:
        options["include_dashboard"] = False
    try:
        ray.init(address=address or "local", **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise CsNetsError(f"cannot connect to Ray at {address or 'this machine'}: {_first_line(err)}") from None
    seconds = time.perf_counter() - start
    cpus = int(ray.cluster_resources().get("CPU", 0))
    where = f"the cluster at {address}" if address else "this machine"
    log(f"ray: {len(ray.nodes())} node(s), {cpus} CPUs, on {where} (connected in {seconds:.1f} s)")
    return True, seconds


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(3) + b"\x04" + bytes(5)  # + an empty SETTINGS frame
HTTP2_SETTINGS = 0x04


def probe_ray(address: str, timeout: float, option: str = "--address") -> None:
    """CsNetsError (one line naming the address) unless a gRPC server answers at HOST:PORT within `timeout` s.

    option: where the address came from, for the message ('--address', or '$RAY_ADDRESS').

    A gRPC server answers the HTTP/2 preface with a SETTINGS frame; a closed port
    refuses, a web server answers something else, a dead host says nothing.
    """
    text = address.split("://", 1)[-1]
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{option} {address}: expected HOST:PORT of a Ray head node (e.g. 10.0.0.5:6379)")
    what = f"cannot connect to Ray at {address}"
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.sendall(HTTP2_PREFACE)
            reply = sock.recv(9)
    except TimeoutError:
        raise CsNetsError(f"{what}: nothing answered within {timeout:g} s (--connect-timeout)") from None
    except OSError as err:
        raise CsNetsError(f"{what}: {err.strerror or err}") from None
    if len(reply) < 4 or reply[3] != HTTP2_SETTINGS:
        raise CsNetsError(f"{what}: something listens there but it is not Ray (no gRPC answer); "
                          f"give the head node's GCS address, e.g. HEAD:6379")


@contextlib.contextmanager
def ray_output_to(path: Path | None):
    """Ray's own output goes to `path` (its C++ core writes to file descriptor 2, its loggers to stderr);
    the sweep's lines still reach the terminal. None: leave it all on the terminal (--debug)."""
    if path is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(saved, "w", buffering=1, encoding="utf-8", errors="replace")
    previous = sys.stderr
    try:
        real = previous.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a captured stderr (tests): it stays as it is
        real = False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as log_file:
        os.dup2(log_file.fileno(), 2)
    if real:
        sys.stderr = terminal
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        sys.stderr = previous
        terminal.close()


def _check_resources(spec: SweepSpec) -> None:
    largest = max((node.get("Resources", {}).get("CPU", 0) for node in ray.nodes() if node.get("Alive")), default=0)
    if spec.options.cpus_per_trial > largest:
        raise ConfigError(f"{spec.where(('cpus_per_trial',))}: cpus_per_trial is {spec.options.cpus_per_trial} "
                          f"but the largest Ray node has {largest:g} CPUs: no trial could start")


def _tuner(spec: SweepSpec, trials: list[Trial], out: Path, refs: dict, keys: dict, resume: bool, data_dir=None):
    trainable = tune.with_resources(tune.with_parameters(train_trial, datasets=refs, sweep_dir=str(out)),
                                    {"cpu": spec.options.cpus_per_trial})
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables of Tune's own on the console
    if resume:
        return tune.Tuner.restore(str(out / RAY_DIR / EXPERIMENT), trainable=trainable, resume_unfinished=True,
                                  resume_errored=True)
    command = base_command(spec, data_dir)
    space = [{"name": t.name, "config": t.config.to_dict(), "config_name": t.config.name,
              "overrides": t.overrides, "command": shlex.join([*command, *sets(t.overrides)]),
              "data_key": keys[t.name], "cpus": spec.options.cpus_per_trial, "task": spec.options.task}
             for t in trials]
    tune_config = tune.TuneConfig(metric=spec.options.metric, mode="max", scheduler=_scheduler(spec, trials),
                                  num_samples=1, max_concurrent_trials=spec.options.max_concurrent,
                                  trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
                                  reuse_actors=False)  # a stopped trial's process is ended, never reused
    run_config = _run_config_class()(name=EXPERIMENT, storage_path=str(out / RAY_DIR), verbose=0,
                                     callbacks=[_Progress()])
    return tune.Tuner(trainable, param_space={"trial": tune.grid_search(space)}, tune_config=tune_config,
                      run_config=run_config)


def _trial_name(trial) -> str:
    return trial.config["trial"]["name"]


def _run_config_class():
    if hasattr(tune, "RunConfig"):  # Ray >= 2.41
        return tune.RunConfig
    from ray import train  # pragma: no cover - older Ray

    return train.RunConfig


def _scheduler(spec: SweepSpec, trials: list[Trial]):
    if spec.scheduler.type == "none":
        return None  # Tune's FIFO: every trial runs to the end
    longest = max(t.config.train.num_epochs for t in trials)
    # max_t above the longest run: ASHA's rungs decide, never its "time is up" stop.
    return _RecordingASHA(time_attr="epoch", grace_period=spec.scheduler.grace_period,
                          reduction_factor=spec.scheduler.reduction_factor, max_t=longest + 1)


# --------------------------------------------------------------------------- while Tune runs


class _Driver:
    """Where the scheduler and the progress callback report to. Tune pickles both with its
    state, so they look up the live log and the sweep folder here, also after a restore.

    It also finishes the run directory of each trial the scheduler stops, in a thread of
    its own while the sweep goes on, instead of all of them at the end.
    """

    def __init__(self):
        self.log = lambda message: None
        self.out: Path | None = None
        self._dataset = None
        self._pool = None

    @property
    def stops(self) -> Path | None:
        return self.out / RAY_DIR / STOPS_FILE if self.out else None

    def start(self, log, out: Path, dataset) -> None:
        """dataset: callable(trial name) -> its Dataset."""
        from concurrent.futures import ThreadPoolExecutor

        self.log, self.out, self._dataset = log, out, dataset
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finish-stopped")

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def finish_stopped(self, name: str) -> None:
        """Finish a trial the scheduler just stopped. Its process is blocked in Tune's report
        (cs_nets.sweep.trial) and writes nothing more: the run directory is complete as it is,
        and it is finished once Tune has ended that process (which lets go of its lock)."""
        if self._pool is not None:
            self._pool.submit(self._finish, name)

    def _finish(self, name: str) -> None:
        from threadpoolctl import threadpool_limits

        if self.out is None:
            return
        path = self.out / name
        try:
            if _needs_finishing(path, read_summary_if_any(path)):
                with threadpool_limits(limits=1, user_api="blas"):  # the cores belong to the trials
                    finish_stopped_run(path, self._dataset(name), stopped_by_scheduler=True,
                                       wait=STOPPED_TRIAL_WAIT)
        except Exception as err:  # tried again after the sweep
            self.log(f"{name}: its run directory is finished after the sweep ({type(err).__name__}: {err})")


_DRIVER = _Driver()


def _read_stops(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        stops = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return stops if isinstance(stops, dict) else {}


class _RecordingASHA(AsyncHyperBandScheduler):
    """ASHA that writes each trial it stops (and after which epoch) to DIR/.ray/stops.json.

    After the sweep the driver must tell the unfinished run directories the scheduler
    stopped (finished as ``stopped``) from those only interrupted (continued by
    --resume), also when the driver was killed in between.
    """

    def on_trial_result(self, tune_controller, trial, result):
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and _DRIVER.stops is not None:
            name = _trial_name(trial)
            stops = _read_stops(_DRIVER.stops)
            stops[name] = {"epoch": result.get("epoch"), "val_accuracy": result.get("val_accuracy")}
            write_json(_DRIVER.stops, stops)
            _DRIVER.log(f"{name}: stopped by ASHA after epoch {result.get('epoch')} "
                        f"(val {result.get('val_accuracy', float('nan')):.4f})")
            _DRIVER.finish_stopped(name)
        return decision


class _Progress(Callback):
    """One line for each trial that ends on its own or fails (the scheduler says which it stopped)."""

    def on_trial_complete(self, iteration, trials, trial, **info):
        name = _trial_name(trial)
        summary = _summary_of(name)
        if name not in _read_stops(_DRIVER.stops) and summary.get("status") in DONE:
            _DRIVER.log(f"{name}: {summary['status']} after {summary.get('epochs')} epochs "
                        f"(val {summary.get('val_accuracy') or float('nan'):.4f}) on {summary.get('node_ip')}")

    # A trial that fails (its own error, or its node lost) is one line at the end, with the error.


def _summary_of(name: str) -> dict:
    if _DRIVER.out is None:
        return {}
    path = _DRIVER.out / name
    try:
        return read_summary_if_any(path)
    except DataError:
        return {}


@contextlib.contextmanager
def _stop_signals_as_interrupt():
    """SIGTERM and SIGHUP end the sweep like Ctrl-C (Tune stops the trials, saves its state).

    Yields the list of such signals received. Tune handles SIGINT itself while it runs.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        received.append(signum)
        signal.raise_signal(signal.SIGINT)  # Tune's own handler: stop gracefully

    previous = {signal.SIGINT: signal.getsignal(signal.SIGINT)}  # Tune replaces it and leaves its own
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            sig = getattr(signal, name)
            previous[sig] = signal.signal(sig, handler)
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --------------------------------------------------------------------------- after Tune


def _finish_trials(trials: list[Trial], out: Path, refs: dict, keys: dict, errors: dict) -> list:
    """Make every run directory consistent and return the trials' outcomes.

    A run directory still ``running`` belongs to a trial whose process Tune ended: the
    scheduler stopped it (DIR/.ray/stops.json), the sweep was interrupted, or its
    process died (Tune reports an error).
    """
    stops = _read_stops(out / RAY_DIR / STOPS_FILE)
    outcomes = []
    for trial in trials:
        path = out / trial.name
        summary = read_summary_if_any(path)
        if _needs_finishing(path, summary):
            wait_for_exit(summary)  # a process ended mid-epoch may still be writing
            if trial.name in errors:
                mark_failed(path, errors[trial.name])
            else:
                finish_stopped_run(path, ray.get(refs[keys[trial.name]]),
                                   stopped_by_scheduler=trial.name in stops)
        outcomes.append(outcome_of(trial, path, errors.get(trial.name)))
    return outcomes


def _needs_finishing(path: Path, summary: dict) -> bool:
    """True for a run directory whose process Tune ended before it wrote its model."""
    status = summary.get("status")
    return status == "running" or (status == "interrupted" and not (path / "model.npz").is_file())


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:300]


def _error_line(error: BaseException) -> str:
    """The trial's own exception in one line (Ray wraps it with the remote traceback)."""
    cause = getattr(error, "cause", None) or error
    lines = [line for line in str(cause).strip().splitlines() if line.strip()]
    return " ".join(f"{type(cause).__name__}: {lines[-1] if lines else ''}".split())[:300]
