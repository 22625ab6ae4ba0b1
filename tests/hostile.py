"""The harness of the hostile test family (tests/test_hostile_*.py): one case = one command in a world.

A *world* is a fresh folder that is the command's working directory; its ``home`` subfolder is
$HOME and its ``data`` subfolder $CS_NETS_DATA, so nothing a command does can reach outside it. A case prepares the world,
runs one ``csnets`` command in it and checks three things:

- the exit code;
- the output: nothing but one line ``error: ...`` matching the case's pattern (or, for a
  command that succeeds, whatever it checks itself), never a traceback;
- no file outside the folders the case names as its own changed, appeared or vanished.

``invoke`` runs the command in this process (click's CliRunner, fast); ``spawn`` runs it as a
subprocess with a timeout, for what must be a real process: FIFOs that must not hang,
closed stdout or stderr, signals. A test that starts a process of its own (to signal or kill it
while it works) holds it with ``reaped``, so that no process outlives the test, whatever fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from cs_nets.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
# The smoke config made smaller still: a run of it takes a fraction of a second.
TINY = ["--set", "data.synthetic_train=300", "--set", "data.synthetic_test=100", "--set", "data.num_val=50",
        "--set", "model.hidden_dims=[16]"]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder below `root`: relative path -> (kind, size, mtime_ns) (no following of links)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            found[str(path.relative_to(root))] = (kind, st.st_size if kind == "file" else 0,
                                                  st.st_mtime_ns if kind == "file" else 0)
    return found


def changed_outside(before: dict, after: dict, own: tuple[str, ...] = ()) -> list[str]:
    """Paths that differ between two snapshots, except those in (or equal to) one of the `own` paths."""
    def mine(rel: str) -> bool:
        return any(rel == o or rel.startswith(o.rstrip("/") + "/") for o in own)

    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p) and not mine(p))


@dataclass
class Outcome:
    code: int
    out: str  # stdout + stderr as the user sees them
    changed: list[str] = field(default_factory=list)


def invoke(world: Path, args, own: tuple[str, ...] = (), env: dict | None = None) -> Outcome:
    """`csnets ARGS` in this process with `world` as working directory and home."""
    (world / "home").mkdir(exist_ok=True)
    before = snapshot(world)
    old = os.getcwd()
    os.chdir(world)
    try:
        result = CliRunner().invoke(main, [str(a) for a in args], env={
            "HOME": str(world / "home"), "CS_NETS_DATA": str(world / "data"), **(env or {})})
    finally:
        os.chdir(old)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}\n{result.output}")
    return Outcome(result.exit_code, result.output, changed_outside(before, snapshot(world), own))


def spawn(world: Path, args, own: tuple[str, ...] = (), timeout: float = 60, env: dict | None = None,
          stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen) -> Outcome:
    """`python -m cs_nets ARGS` as a subprocess in `world`; AssertionError if it runs past `timeout` (a hang)."""
    (world / "home").mkdir(exist_ok=True)
    before = snapshot(world)
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(world / "home"), "CS_NETS_DATA": str(world / "data"),
               **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "cs_nets", *map(str, args)], cwd=world, env=environ,
                            stdout=stdout, stderr=stderr, text=True, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"csnets {' '.join(map(str, args))} hangs (still running after {timeout} s)") from None
    return Outcome(proc.returncode, (out or "") + (err or ""), changed_outside(before, snapshot(world), own))


def one_line(outcome: Outcome, code: int | None, pattern: str, start: str = "error: ") -> str:
    """Assert: exit `code` (None: the caller checks it), the whole output is one line that starts with
    `start` and matches `pattern`; return it."""
    assert code is None or outcome.code == code, (outcome.code, outcome.out)
    assert "Traceback" not in outcome.out, outcome.out
    lines = outcome.out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), outcome.out
    assert re.search(pattern, lines[0]), (pattern, lines[0])
    _checked("one line")
    return lines[0]


def untouched(outcome: Outcome) -> None:
    assert outcome.changed == [], f"changed outside the run's folder: {outcome.changed}"
    _checked("untouched")


# The checks each case made, by test id: `pytest --hostile-checks` (tests/conftest.py) counts the cases
# that passed having asserted the exit code and one line (one_line) and that nothing else changed (untouched).
CHECKED: dict[str, set[str]] = {}


def _checked(what: str) -> None:
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    CHECKED.setdefault(test, set()).add(what)


def fast_first(values, ids=None):
    """pytest.param for each value, the first one fast, the rest marked slow (one case of each kind
    stays in the quick suite; the whole table runs with the slow tests)."""
    ids = list(ids) if ids is not None else [None] * len(values)
    return [pytest.param(*(v if isinstance(v, tuple) else (v,)), id=i, marks=() if n == 0 else pytest.mark.slow)
            for n, (v, i) in enumerate(zip(values, ids))]


@contextlib.contextmanager
def reaped(proc: subprocess.Popen):
    """Yield `proc`; when the block ends, however it ends (an assertion, a timeout), the process is gone.

    Still running, it is killed (SIGKILL) and waited for, and its pipes are closed. Started with
    ``start_new_session=True``, it leads a process group of its own: whatever is left in that group
    (a local sweep's trial processes) is killed too, also when the process itself had ended.
    """
    try:
        group = os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:  # ended (and reaped) already
        group = False
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        if group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
