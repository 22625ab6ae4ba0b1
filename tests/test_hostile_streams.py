"""A closed stdout or stderr (`>&-`, `2>&-`, both) never changes a command's outcome or exit code; its
messages go to the stream that is left, and never into a run's files."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest
from hostile import ROOT, SMOKE, TINY, Outcome, changed_outside, fast_first, one_line, snapshot, untouched

CLOSE = {"stdout closed": ">&-", "stderr closed": "2>&-", "both closed": ">&- 2>&-", "both open": ""}


def shell(world, args, redirect: str, timeout: float = 120):
    """`python -m cs_nets ARGS REDIRECT` through sh in `world` -> (exit code, stdout, stderr)."""
    (world / "home").mkdir(exist_ok=True)
    command = " ".join([shlex.quote(sys.executable), "-m", "cs_nets", *map(shlex.quote, map(str, args)), redirect])
    proc = subprocess.run(["sh", "-c", command], cwd=world, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(world / "home")})
    return proc.returncode, proc.stdout, proc.stderr


def left(redirect, out, err) -> str:
    """What the user sees: the streams that are still open."""
    return ("" if ">&-" in redirect.replace("2>&-", "") else out) + ("" if "2>&-" in redirect else err)


TRAIN = ["train", "--config", SMOKE, "--set", "train.num_epochs=1", *TINY]


@pytest.mark.parametrize("redirect", fast_first(list(CLOSE.values()), CLOSE.keys()))
def test_train_succeeds_and_says_so_on_the_stream_left(tmp_path, redirect):
    code, out, err = shell(tmp_path, [*TRAIN, "--out", "r"], redirect)
    assert code == 0, err
    assert "Traceback" not in out + err
    seen = left(redirect, out, err)
    if redirect != ">&- 2>&-":
        assert "test accuracy: " in seen and "epoch   1/1" in seen
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "completed"
    # nothing meant for a terminal landed in a run's file (a closed fd 2 reused by a file would do that)
    for path in (tmp_path / "r").iterdir():
        assert b"epoch   1/1" not in path.read_bytes() and b"test accuracy" not in path.read_bytes(), path


@pytest.mark.parametrize("redirect", fast_first(["2>&-", ">&-", ">&- 2>&-", ""], ["stderr closed", "stdout closed",
                                                                                 "both closed", "both open"]))
@pytest.mark.parametrize("case,args,code,message", [
    ("config error", ["train", "--config", SMOKE, "--set", "optim.learning_rate=-1", "--out", "r"], 2,
     "error: --set optim.learning_rate"),
    ("folder refused", ["train", "--config", SMOKE, "--out", "."], 2, r"error: --out . holds files that are not a run (home, mine.txt)"),
    ("missing checkpoint", ["evaluate", "--checkpoint", "SMOKE_DIR"], 1, "error: no checkpoint at"),
    ("usage error", ["train"], 2, "Missing option '--config'"),
    ("config printed", ["config", "--config", SMOKE], 0, "learning_rate: 0.001"),
])
def test_exit_codes_and_messages_survive_a_closed_stream(tmp_path, redirect, case, args, code, message):
    (tmp_path / "mine.txt").write_text("x")
    (tmp_path / "home").mkdir()
    args = [str(ROOT / "configs") if a == "SMOKE_DIR" else a for a in args]
    before = snapshot(tmp_path)
    got, out, err = shell(tmp_path, args, redirect)
    outcome = Outcome(got, left(redirect, out, err), changed_outside(before, snapshot(tmp_path)))
    assert got == code, (out, err)
    assert "Traceback" not in out + err
    if redirect != ">&- 2>&-":
        assert message in outcome.out
        if message.startswith("error: "):  # cs_nets's own error (not click's usage text): all the user sees
            one_line(outcome, code, "^" + re.escape(message))
    untouched(outcome)


@pytest.mark.slow
@pytest.mark.parametrize("redirect", CLOSE.values(), ids=CLOSE.keys())
def test_evaluate_prints_its_table_on_the_stream_left(tmp_path, redirect):
    code, out, err = shell(tmp_path, [*TRAIN, "--out", "r", "--quiet"], "")
    assert code == 0, err
    code, out, err = shell(tmp_path, ["evaluate", "--checkpoint", "r", "--quiet"], redirect)
    assert code == 0 and "Traceback" not in out + err
    if redirect != ">&- 2>&-":
        assert "test accuracy: " in left(redirect, out, err) and "class0" in left(redirect, out, err)
