"""scripts/sweep.sh on configs/smoke.yaml: a 2x2 grid, one run failing, the table sorted by validation accuracy."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(*args, cwd):
    env = dict(os.environ, CSNETS=f"{sys.executable} -m cs_nets")
    return subprocess.run(["bash", str(ROOT / "scripts" / "sweep.sh"), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_sweep_runs_the_grid_and_reports_failures(tmp_path):
    out = tmp_path / "sweep"
    proc = sweep(ROOT / "configs" / "smoke.yaml", "optim.learning_rate=1e-3,1e12", "model.reg=0,1e-3",
                 "-j", "2", "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
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
