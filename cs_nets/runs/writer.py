"""The run directory: the user's work, written so that it is never clobbered, mixed or lost.

    config.yaml        the resolved config (written first)
    metrics.jsonl      one JSON line per finished epoch, each epoch exactly once
    state.npz          the whole training state after the last saved epoch (cs_nets.training.state);
                       kept while a run can still be resumed, removed once it has finished
    summary.json       status (running, completed, early_stopped, diverged, interrupted), the
                       best validation accuracy so far, pid and host; at the end also the
                       test/val/train accuracy, confusion matrix, command and data fingerprint
    batch_losses.npy   (num_batches,) float32, the loss of every minibatch in order (at the end)
    model.npz          best parameters + input pipeline + metadata (cs_nets.runs.checkpoint; at the end)

Every file is written to a temporary name and renamed into place. summary.json is
written first, before config.yaml, so a folder says which task wrote it from the
start (a random search stopped early is never resumed as a training run). A run
is written only into a new or empty folder; a folder that already holds a run is
never written into unless the caller resumes it; with ``overwrite`` the new run is
written beside it (``.NAME.new-PID``) and replaces it only once it has saved its
first checkpoint, so the two are never mixed. A folder of the user's files is
never taken, nor ``/`` or the home folder. Staging folders and temporary files a
killed run left are removed when the next run takes the folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from cs_nets.config import Config, dump_config
from cs_nets.errors import ConfigError, CsNetsError
from cs_nets.files.atomic import atomic_open, write_json, write_text
from cs_nets.runs.layout import RUN_FILES, STATE_FILE
from cs_nets.runs.reader import read_summary

MAX_NAME_TRIES = 1000  # default run names tried before giving up (runs/<config>-<time>-<n>)

# A temporary file cs_nets.files.atomic_open leaves when its process is killed mid-write.
_RUN_FILE_NAMES = "|".join(re.escape(name) for name in RUN_FILES)
_STALE_TMP = re.compile(rf"\.(?:{_RUN_FILE_NAMES}|[A-Za-z0-9_]+\.npy)\.[A-Za-z0-9_.]+\.tmp")  # .NAME.PID.HEX.tmp


def default_run_dir(config: Config) -> Path:
    """output.dir, else runs/<config name>-<timestamp> (``RunDir.new(..., unique=True)`` makes it unique)."""
    if config.output.dir:
        return Path(config.output.dir)
    return Path("runs") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def holds_run(path: Path) -> bool:
    """True if `path` is a folder a run wrote: summary.json (written first) or a later run file.

    config.yaml alone does not make a run: it is as likely the user's own config.
    """
    return Path(path).is_dir() and any((Path(path) / name).exists() for name in RUN_FILES if name != "config.yaml")


# scripts/sweep.sh makes each run's folder and writes these before it starts the run in it.
SWEEP_SCRIPT_FILES = ("sweep_args", "log", "exit_status")


def user_files(path: Path) -> list[str]:
    """Names in the folder `path` that no run wrote (a killed run's temporary files do not count, nor the
    bookkeeping files of scripts/sweep.sh beside its sweep_args)."""
    if not Path(path).is_dir():
        return []
    names = [p.name for p in Path(path).iterdir() if not _STALE_TMP.fullmatch(p.name)]
    if "sweep_args" in names:
        names = [n for n in names if n not in SWEEP_SCRIPT_FILES]
    return sorted(names)


def refuse_special_folder(path: Path, flag: str = "--out") -> None:
    """ConfigError for ``/`` and the home folder (never a run directory, whatever the options), and for a
    path below a file."""
    _refuse_file_parents(Path(path))
    resolved = Path(path).expanduser().resolve()
    home = Path.home().resolve()
    if resolved == Path(resolved.anchor) or resolved == home:
        raise ConfigError(f"{flag} {path}: the {'home' if resolved == home else 'root'} folder is never a run "
                          f"directory; choose a new folder")


def check_new_run_dir(path: Path, overwrite: bool, config_path: str | Path | None = None) -> None:
    """ConfigError unless a new run may be written to `path` (call before any work is done).

    A new run goes into a new or empty folder. A folder that holds a run needs
    ``overwrite``, which replaces the whole folder: it is refused when the folder
    also holds files of the user's (anything but a run's files and pictures), or
    the input config file. A folder of the user's files is never taken.
    """
    path = Path(path)
    refuse_special_folder(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path}: exists and is not a directory")
    _refuse_file_parents(path)
    if not holds_run(path):
        others = user_files(path)
        if others:
            raise ConfigError(f"--out {path} holds files that are not a run ({_names(others)}); "
                              f"a run is written only into a new or empty folder: choose another --out")
        return
    if not overwrite:
        raise ConfigError(f"--out {path} already holds a run: continue it with `csnets train --resume {path}` "
                          f"or replace it with --overwrite")
    if config_path is not None and Path(config_path).resolve().is_relative_to(path.resolve()):
        raise ConfigError(f"--overwrite would delete the config file {config_path} inside {path}; "
                          f"choose another --out")
    others = sorted(p.name for p in path.iterdir() if not _is_run_output(p.name))
    if others:
        raise ConfigError(f"--overwrite would delete {_names(others)} in {path}, which a run did not write; "
                          f"choose another --out")


def _refuse_file_parents(path: Path) -> None:
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"--out {path}: {blocking} is a file, not a folder")


def _names(names: list[str]) -> str:
    return ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")


def _lock(path: Path, wait: float = 0.0) -> FileLock:
    """Hold `.NAME.lock` beside the run directory: one process writes a run at a time.

    Beside, not inside: an overwrite swaps the folder itself. The OS drops the lock
    when its process dies, so a killed run never leaves its folder locked.
    wait: seconds to wait for another process to let go before giving up.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # e.g. a file where a parent folder should be
        raise ConfigError(f"{path}: cannot make the folder {path.parent} ({err.strerror or err})") from None
    lock = FileLock(path.parent / f".{path.name}.lock")
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise ConfigError(f"{path} is being written by another csnets process; wait for it or stop it") from None
    return lock


def _is_run_output(name: str) -> bool:
    return name in RUN_FILES or name.endswith((".npy", ".png", ".tmp"))


class RunDir:
    """Writes the files of one run directory (see the module docstring).

    Made by ``RunDir.new`` (a fresh run) or ``RunDir.existing`` (to resume one).
    While ``staging`` is set, files go to a hidden folder beside ``path`` that
    ``promote`` moves into place.
    """

    def __init__(self, path: Path, lock: FileLock, staging: Path | None = None):
        self.path = Path(path)
        self.staging = staging
        self._lock = lock

    @classmethod
    def new(cls, path, overwrite: bool = False, config_path=None, unique: bool = False) -> RunDir:
        """A run directory for a new run at `path` (see check_new_run_dir), locked for this process.

        unique: `path` is a default name: when another run has it (or is taking it), use
        ``path-2``, ``path-3``, ... instead, so two runs started in one second never collide.
        """
        path = Path(path)
        refuse_special_folder(path)
        if unique:
            return cls._new_unique(path)
        lock = _lock(path)
        try:
            check_new_run_dir(path, overwrite, config_path)  # again, now that no one else can write here
            _remove_stale(path)
            if holds_run(path):
                staging = path.parent / f".{path.name}.new-{os.getpid()}"
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
                return cls(path, lock, staging)
            path.mkdir(parents=True, exist_ok=True)
            return cls(path, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _new_unique(cls, path: Path) -> RunDir:
        _refuse_file_parents(path)
        for n in range(1, MAX_NAME_TRIES + 1):
            candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
            if candidate.exists():
                continue
            try:
                lock = _lock(candidate)
            except ConfigError:  # another process is taking this name right now
                continue
            if candidate.exists():  # taken between the look and the lock
                lock.release()
                continue
            candidate.mkdir(parents=True)
            return cls(candidate, lock)
        raise ConfigError(f"{path}: {MAX_NAME_TRIES} run folders of that name exist already; give --out")

    @classmethod
    def existing(cls, path, wait: float = 0.0, need_config: bool = True) -> RunDir:
        """An existing run directory to continue, locked; temporary files a killed process left are removed.

        wait: seconds to wait for the process that writes it to end (default: refuse at once).
        need_config: False to take a run killed between its first two writes (summary.json, config.yaml).
        """
        path = Path(path)
        if need_config and not ((path / "config.yaml").exists() or (path / "config.yaml").is_symlink()):
            raise ConfigError(f"--resume {path}: not a run directory (no config.yaml)")
        if not holds_run(path):
            raise ConfigError(f"--resume {path}: not a run directory (a config.yaml but no summary.json: "
                              f"no csnets run was started there)")
        lock = _lock(path, wait)
        _remove_stale(path)
        return cls(path, lock)

    def close(self) -> None:
        """Let other processes write here again."""
        self._lock.release()

    @property
    def folder(self) -> Path:
        """Where files are written now: the staging folder until promoted, else ``path``."""
        return self.staging or self.path

    def promote(self) -> None:
        """Replace the old run at ``path`` by this one (staged runs only; a no-op otherwise)."""
        if self.staging is None:
            return
        old = self.path.parent / f".{self.path.name}.old-{os.getpid()}"
        os.replace(self.path, old)
        os.replace(self.staging, self.path)
        self.staging = None
        shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        """Drop a staged run that never saved anything (the old run stays as it was)."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    # ---------------------------------------------------------------- files

    def write_config(self, config: Config) -> None:
        write_text(self.folder / "config.yaml", dump_config(config))

    def write_metrics(self, history: list[dict]) -> None:
        """metrics.jsonl from the whole history (small): each epoch once, never half-written."""
        write_text(self.folder / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in history))

    def write_array(self, name: str, values: np.ndarray) -> None:
        """A float32 .npy file, e.g. batch_losses.npy."""
        with atomic_open(self.folder / name, "wb") as f:
            np.save(f, np.asarray(values, np.float32))

    def write_summary(self, summary: dict) -> None:
        write_json(self.folder / "summary.json", summary)

    def save_state(self, state) -> None:
        state.save(self.folder / STATE_FILE)

    def saved_epochs(self) -> int | None:
        """How many epochs the saved training state holds (None: no readable state)."""
        from cs_nets.training.state import TrainState

        try:
            return TrainState.load(self.folder / STATE_FILE).epoch
        except CsNetsError:
            return None

    def remove_state(self) -> None:
        (self.folder / STATE_FILE).unlink(missing_ok=True)

    def read_summary(self) -> dict:
        return read_summary_if_any(self.folder)


def _remove_stale(path: Path) -> None:
    """Remove what killed runs left at `path` (call with its lock held): temporary files inside it, and
    staging (``.NAME.new-PID``) and replaced (``.NAME.old-PID``) folders beside it.

    The folders beside go only while `path` exists: a run killed between the two renames of
    ``promote`` has no `path`, and its two folders are then all there is of it and of the old run.
    """
    if not path.is_dir():
        return
    for stale in path.iterdir():
        if _STALE_TMP.fullmatch(stale.name):
            stale.unlink(missing_ok=True)
    prefix = f".{path.name}."
    for stale in path.parent.iterdir():
        if stale.name.startswith(prefix) and re.fullmatch(r"(?:new|old)-[0-9]+", stale.name[len(prefix):]) \
                and stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def read_summary_if_any(path) -> dict:
    """summary.json of the run directory `path`, {} when it has none; DataError when it is corrupt."""
    summary = Path(path) / "summary.json"
    return read_summary(path) if summary.exists() or summary.is_symlink() else {}
