"""Run folders a careless user points a run at: a run never writes into a folder that is neither
new or empty, nor its own run, nor an explicit --overwrite of a run; never into / or the home folder."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile import ROOT, SMOKE, TINY, invoke, one_line, snapshot, untouched

from cs_nets.errors import ConfigError
from cs_nets.runs.writer import RunDir

TRAIN = ["train", "--config", SMOKE, "--set", "train.num_epochs=1", *TINY, "--quiet"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished smoke run, to copy into worlds."""
    out = tmp_path_factory.mktemp("finished") / "run"
    outcome = invoke(out.parent, [*TRAIN, "--out", out])
    assert outcome.code == 0, outcome.out
    return out


def world_with(tmp_path, finished, layout: dict) -> Path:
    """tmp_path/world with `layout`: {relative path: text | "RUN" (a copy of a finished run) | "DIR"}."""
    world = tmp_path / "world"
    world.mkdir()
    for rel, what in layout.items():
        path = world / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if what == "RUN":
            shutil.copytree(finished, path)
        elif what == "DIR":
            path.mkdir()
        else:
            path.write_text(what)
    return world


USER_CONFIG = SMOKE.read_text()

# (layout, extra args, expected exit code, pattern of the one error line)
REFUSED = {
    "folder of notes": ({"notes/a.txt": "mine"}, ["--out", "notes"], 2, r"holds files that are not a run \(a.txt\)"),
    "folder of notes, --overwrite": ({"notes/a.txt": "mine"}, ["--out", "notes", "--overwrite"], 2,
                                     "holds files that are not a run"),
    "dot in a folder of files": ({"a.txt": "x", "b.txt": "y"}, ["--out", "."], 2,
                                 r"holds files that are not a run \(a.txt, b.txt, home\)"),
    "dot, --overwrite": ({"a.txt": "x"}, ["--out", ".", "--overwrite"], 2, "holds files that are not a run"),
    "many user files listed briefly": ({f"n/{i}.txt": "x" for i in range(9)}, ["--out", "n"], 2,
                                       r"\(0.txt, 1.txt, 2.txt \.\.\.\)"),
    "hidden user file": ({"h/.env": "SECRET=1"}, ["--out", "h"], 2, r"not a run \(.env\)"),
    "a user's subfolder": ({"s/sub/x": "x"}, ["--out", "s"], 2, r"not a run \(sub\)"),
    "a user's config.yaml: no --resume advice": ({"c/config.yaml": USER_CONFIG}, ["--out", "c"], 2,
                                                 r"^error: --out c holds files that are not a run \(config.yaml\); "
                                                 r"a run is written only into a new or empty folder"),
    "a user's config.yaml, --overwrite": ({"c/config.yaml": USER_CONFIG}, ["--out", "c", "--overwrite"], 2,
                                          "not a run"),
    "a user's tmp file not named like a run's": ({"t/.notes.tmp": "x"}, ["--out", "t"], 2, r"\(.notes.tmp\)"),
    "a log without sweep_args": ({"l/log": "x"}, ["--out", "l"], 2, r"not a run \(log\)"),
    "root": ({}, ["--out", "/"], 2, "the root folder is never a run directory"),
    "root, --overwrite": ({}, ["--out", "/", "--overwrite"], 2, "the root folder is never a run directory"),
    "root spelled //..": ({}, ["--out", "//.."], 2, "the root folder is never a run directory"),
    "home": ({}, ["--out", "HOME"], 2, "the home folder is never a run directory"),
    "home, --overwrite": ({}, ["--out", "HOME", "--overwrite"], 2, "the home folder is never a run directory"),
    "home as ~": ({}, ["--out", "~"], 2, "the home folder is never a run directory"),
    "home spelled home/../home/.": ({}, ["--out", "home/../home/."], 2, "the home folder is never a run directory"),
    "a file": ({"f": "x"}, ["--out", "f"], 2, "exists and is not a directory"),
    "inside a file": ({"f": "x"}, ["--out", "f/run"], 2, r"--out f/run: f is a file, not a folder"),
    "deep inside a file": ({"f": "x"}, ["--out", "f/a/b/run"], 2, r"f is a file, not a folder"),
    "a run without --overwrite": ({"r": "RUN"}, ["--out", "r"], 2, r"already holds a run: continue it with "
                                                                   r"`csnets train --resume r`"),
    "a run plus a user's file, --overwrite": ({"r": "RUN", "r/mine.txt": "x"}, ["--out", "r", "--overwrite"], 2,
                                              "would delete mine.txt"),
    "a run holding the input config, --overwrite": ({"r": "RUN", "r/in.yaml": USER_CONFIG},
                                                    ["--out", "r", "--overwrite", "--config", "r/in.yaml"], 2,
                                                    "would delete the config file"),
}


@pytest.mark.parametrize("layout,args,code,pattern", REFUSED.values(), ids=REFUSED.keys())
def test_a_run_refuses_a_folder_it_may_not_take(tmp_path, finished, layout, args, code, pattern):
    world = world_with(tmp_path, finished, layout)
    args = [str(world / "home") if a == "HOME" else a for a in args]
    outcome = invoke(world, [*TRAIN, *args])
    one_line(outcome, code, pattern)
    untouched(outcome)


RESUME_REFUSED = {
    "a user's config.yaml": ({"c/config.yaml": USER_CONFIG}, "c", 2,
                             r"--resume c: not a run directory \(a config.yaml but no summary.json"),
    "an empty folder": ({"e": "DIR"}, "e", 2, r"not a run directory \(no config.yaml\)"),
    "a folder of notes": ({"n/a.txt": "x"}, "n", 2, r"not a run directory \(no config.yaml\)"),
}


@pytest.mark.parametrize("layout,folder,code,pattern", RESUME_REFUSED.values(), ids=RESUME_REFUSED.keys())
def test_resume_refuses_what_is_not_a_run(tmp_path, finished, layout, folder, code, pattern):
    world = world_with(tmp_path, finished, layout)
    outcome = invoke(world, ["train", "--resume", folder, "--quiet"])
    one_line(outcome, code, pattern)
    untouched(outcome)


TAKEN = {
    "a new folder": ({}, "new"),
    "a new folder inside a folder of notes": ({"notes/a.txt": "x"}, "notes/run"),
    "an empty folder": ({"e": "DIR"}, "e"),
    "a killed start's temporary files": ({"k/.config.yaml.ab12_x.tmp": "half", "k/.summary.json.zz9.tmp": "{"}, "k"),
    "a killed array write": ({"k/.batch_losses.npy.q1.tmp": "x"}, "k"),
    "atomic_open's own names": ({"k/.summary.json.4242.0a1b2c3d4e5f.tmp": "{", "k/.config.yaml.77.ff.tmp": ""}, "k"),
    "the folder scripts/sweep.sh made": ({"s/sweep_args": "model.reg=1\n", "s/log": ""}, "s"),
}


@pytest.mark.parametrize("layout,out", TAKEN.values(), ids=TAKEN.keys())
def test_a_run_takes_a_new_or_empty_folder_and_clears_what_a_killed_run_left(tmp_path, finished, layout, out):
    world = world_with(tmp_path, finished, layout)
    outcome = invoke(world, [*TRAIN, "--out", out], own=(out, str(Path(out).parent / f".{Path(out).name}.lock")))
    assert outcome.code == 0 and outcome.out.startswith("test accuracy: "), outcome.out
    untouched(outcome)
    assert sorted(p.name for p in (world / out).iterdir() if p.name not in layout_names(layout, out)) == [
        "batch_losses.npy", "config.yaml", "metrics.jsonl", "model.npz", "summary.json"]


def layout_names(layout, out):
    """The names the case put in `out` that stay there (scripts/sweep.sh's files)."""
    return {Path(rel).name for rel in layout if Path(rel).parent == Path(out) and not rel.endswith(".tmp")}


@pytest.mark.parametrize("command", ["overwrite", "resume"])
def test_stale_staging_folders_go_when_the_next_run_takes_the_folder(tmp_path, finished, command):
    """kill -9 during --overwrite staging leaves .DIR.new-PID (and in the rename, .DIR.old-PID): the next run
    into DIR removes them; a user's look-alike (not a folder, or another name) stays."""
    world = world_with(tmp_path, finished, {"r": "RUN", ".r.new-12345/state.npz": "x", ".r.old-999/x": "x",
                                            ".r.new-77": "a user's file", ".r.new-x/y": "y", ".rr.new-1/z": "z"})
    if command == "resume":
        summary = json.loads((world / "r" / "summary.json").read_text())
        (world / "r" / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
        (world / "r" / "model.npz").unlink()
        args = ["train", "--resume", "r", "--quiet"]
    else:
        args = [*TRAIN, "--out", "r", "--overwrite"]
    outcome = invoke(world, args, own=("r", ".r.lock", ".r.new-12345", ".r.old-999"))
    assert outcome.code == 0, outcome.out
    untouched(outcome)
    assert sorted(p.name for p in world.iterdir() if p.name.startswith(".r")) == [
        ".r.lock", ".r.new-77", ".r.new-x", ".rr.new-1"]


def test_a_half_swapped_overwrite_is_never_removed(tmp_path, finished):
    """Killed between the two renames of promote: no DIR, the old run in .DIR.old-PID, the new in .DIR.new-PID.
    Those are all there is of both runs: a new run into DIR leaves them."""
    world = world_with(tmp_path, finished, {".r.old-5": "RUN", ".r.new-5": "RUN"})
    outcome = invoke(world, [*TRAIN, "--out", "r"], own=("r", ".r.lock"))
    assert outcome.code == 0, outcome.out
    untouched(outcome)


def test_default_run_names_never_collide(tmp_path, monkeypatch):
    """Two runs of one config in the same second: the second takes NAME-2, also while the first holds NAME."""
    monkeypatch.chdir(tmp_path)
    path = Path("runs") / "smoke-20260101-000000"
    first = RunDir.new(path, unique=True)
    second = RunDir.new(path, unique=True)  # the first is still being written (its lock held)
    third_path = path.with_name(path.name + "-3")
    third_path.mkdir()  # someone's folder, empty: taken by nobody else either
    fourth = RunDir.new(path, unique=True)
    try:
        assert (first.path, second.path, fourth.path) == (path, path.with_name(path.name + "-2"),
                                                          path.with_name(path.name + "-4"))
    finally:
        for run_dir in (first, second, fourth):
            run_dir.close()


@pytest.mark.slow
def test_two_default_runs_started_together_both_finish(tmp_path, reap):
    """Without --out, two processes of one config started at once: two folders, both exit 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [reap(subprocess.Popen([sys.executable, "-m", "cs_nets", *map(str, TRAIN)], cwd=tmp_path, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    runs = sorted((tmp_path / "runs").iterdir())
    folders = [p for p in runs if p.is_dir()]
    assert len(folders) == 2 and all((p / "model.npz").is_file() for p in folders)


def test_the_root_is_refused_by_the_library_too(tmp_path):
    with pytest.raises(ConfigError, match="root folder"):
        RunDir.new(Path("/"), overwrite=True)


@pytest.mark.slow
def test_a_random_search_stopped_early_is_never_resumed_as_training(tmp_path, reap):
    """kill -9 during a random search: the folder already says random_search; --resume refuses in one line."""
    world = tmp_path
    proc = reap(subprocess.Popen([sys.executable, "-m", "cs_nets", "random-search", "--config", str(SMOKE),
                                  "--set", "model.type=linear", "--set", "model.loss=svm", "--set",
                                  "search.attempts=10000000", "--out", "rs", "--quiet"], cwd=world,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE))
    deadline = time.monotonic() + 60
    while not (world / "rs" / "config.yaml").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert json.loads((world / "rs" / "summary.json").read_text())["task"] == "random_search"
    (world / "home").mkdir()
    before = snapshot(world)
    outcome = invoke(world, ["train", "--resume", "rs", "--quiet"])
    one_line(outcome, 2, r"--resume rs: a 'random_search' run cannot be resumed; start it again")
    untouched(outcome)
    assert snapshot(world) == before  # not even the run's own folder


def test_a_file_named_runs_is_refused_before_any_work(tmp_path):
    """Without --out, runs/<name>-<time> below a file called runs: one line, exit 2, nothing written."""
    (tmp_path / "runs").write_text("my notes")
    outcome = invoke(tmp_path, ["train", "--config", SMOKE, *TINY, "--quiet"])
    one_line(outcome, 2, r"^error: --out runs/smoke-\d{8}-\d{6}: runs is a file, not a folder$")
    untouched(outcome)
