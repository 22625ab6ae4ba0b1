"""The sweep folder: locked while a sweep writes it, refused when it holds something else, and its record.

    DIR/sweep.json     the spec as read, the backend, every trial's swept values and config
    DIR/trial-NNN/     one run directory per trial (cs_nets.runs.writer)
    DIR/logs/          the local backend: each trial's output (trial-NNN.log)
    DIR/ray.log        the Ray backend: Ray's own messages (on the terminal only with --debug)
    DIR/.ray/          the Ray backend: Ray Tune's files (what --resume restores from)
    DIR/best.yaml      the best trial's config, at the end

A sweep folder is locked like a run directory: ``.DIR.lock`` beside it, held by
the process that drives the sweep, dropped by the OS when that process dies.
Both backends use this module, so a sweep started on one is continued only by
the same one (recorded in sweep.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from filelock import FileLock, Timeout

from cs_nets.errors import ConfigError, DataError
from cs_nets.files.untrusted import loads_json, read_text
from cs_nets.runs.writer import holds_run
from cs_nets.sweep.spec import SweepSpec, Trial

SWEEP_FILE = "sweep.json"  # written by the driver into the sweep folder before any trial starts
RAY_DIR = ".ray"  # Ray Tune's files inside the sweep folder
LOGS_DIR = "logs"  # the local backend's trial logs
MAX_RECORD_BYTES = 256 << 20  # sweep.json of MAX_TRIALS trials stays far below


def lock_sweep_dir(out: Path) -> FileLock:
    """Hold ``.DIR.lock`` beside the sweep folder for this process; ConfigError (exit 2) if another holds it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if holds_run(out):
        raise ConfigError(f"--out {out} holds a csnets train run, not a sweep: choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out.parent / f".{out.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"--out {out}: another csnets sweep is running into it; wait for it or stop it") from None
    return lock


def record(spec: SweepSpec, trials: list[Trial], backend: str) -> dict:
    """What sweep.json holds: the spec as read, the backend and every trial's swept values (plain JSON)."""
    data = {"spec": str(spec.path), "base": str(spec.base_path), "overrides": list(spec.overrides),
            "backend": backend, "sweep": spec.to_dict(),
            "trials": [{"name": t.name, "params": t.params, "config": t.config.to_dict()} for t in trials]}
    return json.loads(json.dumps(data))  # as it reads back from the file


def read_record(out: Path) -> dict:
    """DIR/sweep.json, checked to be an object with a list of trials; DataError if not."""
    path = Path(out) / SWEEP_FILE
    data = loads_json(read_text(path, "sweep record", MAX_RECORD_BYTES), str(path))
    if not isinstance(data, dict) or not isinstance(data.get("trials"), list):
        raise DataError(f"{path} is not a sweep record (no list of trials)")
    return data


def recorded_backend(out: Path) -> str | None:
    """The backend the sweep in `out` was started on, or None (no sweep there, or an older record)."""
    if not (Path(out) / SWEEP_FILE).is_file():
        return None
    try:
        backend = read_record(out).get("backend", "ray")  # records before the local backend: all Ray
    except DataError:
        return None
    return backend if backend in ("local", "ray") else None


def check_sweep_dir(spec: SweepSpec, trials: list[Trial], out: Path, resume: bool, backend: str) -> None:
    """ConfigError unless `out` may take this sweep: new (or a folder without a sweep or a run) or, with
    ``resume``, the same sweep started on the same backend."""
    out = Path(out)
    path = out / SWEEP_FILE
    if resume:
        if not path.is_file():
            raise ConfigError(f"--resume: {out} holds no sweep (no {SWEEP_FILE})")
        saved = read_record(out)
        if saved.get("backend", "ray") != backend:
            raise ConfigError(f"--resume: the sweep in {out} ran on the {saved.get('backend', 'ray')} backend; "
                              f"continue it with --backend {saved.get('backend', 'ray')}")
        now = record(spec, trials, backend)
        scheduler = saved.get("sweep", {}).get("scheduler") if isinstance(saved.get("sweep"), dict) else None
        if saved["trials"] != now["trials"] or scheduler not in (None, now["sweep"]["scheduler"]):
            raise ConfigError(f"--resume: {spec.path} (with these --set values and its base config) does not give "
                              f"the trials (or scheduler) of the sweep in {out} any more; resume with what it was "
                              f"started with")
        return
    if path.exists() or (out / RAY_DIR).exists():
        raise ConfigError(f"--out {out} already holds a sweep: continue it with --resume, or choose another --out")
    taken = [t.name for t in trials if holds_run(out / t.name)]
    if taken:
        raise ConfigError(f"--out {out} already holds runs named like this sweep's trials ({taken[0]}, ...); "
                          f"choose another --out")
