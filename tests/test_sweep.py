"""scripts/sweep.sh on configs/smoke.yaml: grids, failures and exit status, list values, resuming a sweep."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def sweep(*args, cwd):
    env = dict(os.environ, CSNETS=f"{sys.executable} -m cs_nets")
    return subprocess.run(["bash", str(ROOT / "scripts" / "sweep.sh"), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_sweep_runs_the_grid_and_reports_failures(tmp_path):
    out = tmp_path / "sweep"
    proc = sweep(ROOT / "configs" / "smoke.yaml", "optim.learning_rate=1e-3,1e12", "model.reg=0,1e-3",
                 "-j", "2", "--out", out, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # two runs diverged: the sweep says so, after the table
    assert proc.stderr.strip().splitlines()[-1] == "2 of 4 runs failed"
    runs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert runs == ["run-001", "run-002", "run-003", "run-004"]
    args = {r: (out / r / "sweep_args").read_text().split() for r in runs}
    assert args["run-001"] == ["optim.learning_rate=1e-3", "model.reg=0"]
    assert args["run-004"] == ["optim.learning_rate=1e12", "model.reg=1e-3"]
    # The diverging runs (lr 1e12) exit 1 but still leave their summary; the others succeed.
    assert [(out / r / "exit_status").read_text().strip() for r in runs] == ["0", "0", "1", "1"]

    lines = proc.stdout.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("run "))
    table = [line.split() for line in lines[header + 1:header + 5]]
    vals = [json.loads((out / row[0] / "summary.json").read_text())["val_accuracy"] for row in table]
    assert vals == sorted(vals, reverse=True)
    statuses = {row[0]: row[1] for row in table}
    assert statuses["run-003"] == statuses["run-004"] == "diverged"
    best = table[0][0]
    assert lines[-1].startswith(f"best: {best} ")
    assert "--set optim.learning_rate=1e-3" in lines[-1]


def test_sweep_usage_errors(tmp_path):
    proc = sweep(ROOT / "configs" / "smoke.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "at least one" in proc.stderr
    proc = sweep(tmp_path / "missing.yaml", "model.reg=1", cwd=tmp_path)
    assert proc.returncode == 2 and "no config file" in proc.stderr
    proc = sweep(ROOT / "configs" / "smoke.yaml", "model.reg=1", "-j", "zero", cwd=tmp_path)
    assert proc.returncode == 2 and "-j takes" in proc.stderr


def test_a_sweep_where_every_run_fails_exits_1_after_the_table(tmp_path):
    out = tmp_path / "sweep"
    proc = sweep(ROOT / "configs" / "smoke.yaml", "train.batch_size=0,-1", "--out", out, cwd=tmp_path)
    assert proc.returncode == 1
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("run-")]
    assert [row[:4] for row in rows if len(row) > 3 and row[2] == "(exit"] == [
        ["run-001", "failed", "(exit", "2)"], ["run-002", "failed", "(exit", "2)"]]
    assert proc.stderr.strip().splitlines()[-1] == "2 of 2 runs failed"


def test_list_values_are_split_outside_brackets(tmp_path):
    out = tmp_path / "sweep"
    proc = sweep(ROOT / "configs" / "smoke.yaml", "model.type=fc_net", "model.hidden_dims=[16,8],[32]",
                 "train.num_epochs=1", "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    args = {r.name: (r / "sweep_args").read_text().split() for r in sorted(out.glob("run-*"))}
    assert args == {"run-001": ["model.type=fc_net", "model.hidden_dims=[16,8]", "train.num_epochs=1"],
                    "run-002": ["model.type=fc_net", "model.hidden_dims=[32]", "train.num_epochs=1"]}
    dims = [yaml.safe_load((out / r / "config.yaml").read_text())["model"]["hidden_dims"] for r in args]
    assert dims == [[16, 8], [32]]
    proc = sweep(ROOT / "configs" / "smoke.yaml", "model.hidden_dims=[16,8", "--out", tmp_path / "x", cwd=tmp_path)
    assert proc.returncode == 2 and "unbalanced brackets" in proc.stderr
    proc = sweep(ROOT / "configs" / "smoke.yaml", "model.reg=1,", "--out", tmp_path / "x", cwd=tmp_path)
    assert proc.returncode == 2 and "an empty value" in proc.stderr


def test_an_existing_sweep_folder_is_refused_or_resumed(tmp_path):
    out = tmp_path / "sweep"
    grid = [ROOT / "configs" / "smoke.yaml", "train.num_epochs=1,2"]
    assert sweep(*grid, "--out", out, cwd=tmp_path).returncode == 0
    first = (out / "run-001" / "summary.json").read_text()
    # run-002 was killed: no exit status, and its summary never said it finished.
    (out / "run-002" / "exit_status").unlink()
    (out / "run-002" / "summary.json").unlink()
    table = summarize(out, cwd=tmp_path)
    assert any(line.split()[:2] == ["run-002", "killed"] for line in table.splitlines())

    proc = sweep(*grid, "--out", out, cwd=tmp_path)
    assert proc.returncode == 2 and "already holds a sweep: use --resume" in proc.stderr
    proc = sweep(ROOT / "configs" / "smoke.yaml", "train.num_epochs=1,3", "--out", out, "--resume", cwd=tmp_path)
    assert proc.returncode == 2 and "--resume needs the same" in proc.stderr
    proc = sweep(*grid, "--out", out, "--resume", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 finished before, 1 to run" in proc.stdout
    assert (out / "run-001" / "summary.json").read_text() == first  # kept as it was
    assert sorted(p.name for p in out.glob("run-*")) == ["run-001", "run-003"]
    assert [p.name.split(".")[0] for p in (out / "superseded").iterdir()] == ["run-002"]
    assert (out / "run-003" / "sweep_args").read_text().split() == ["train.num_epochs=2"]
    rows = [line.split()[:2] for line in proc.stdout.splitlines() if line.startswith("run-0")]
    assert sorted(rows[-2:]) == [["run-001", "completed"], ["run-003", "completed"]]
    proc = sweep(*grid, "--out", tmp_path / "new", "--resume", cwd=tmp_path)
    assert proc.returncode == 2 and "holds no sweep to continue" in proc.stderr


def summarize(folder, cwd):
    proc = subprocess.run([sys.executable, "-m", "cs_nets", "summarize", str(folder)], capture_output=True,
                          text=True, cwd=cwd, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
