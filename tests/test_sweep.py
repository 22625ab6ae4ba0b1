"""csnets sweep on the local backend (no Ray) and scripts/sweep.sh, its thin wrapper, on configs/smoke.yaml.

Grids, failures and exit status, list values, the sweep folder's lock, the trial
bound, pasteable best commands, Ctrl-C / SIGTERM / a killed trial, and resuming.
The specs' own validation is tested in tests/test_sweep_ray.py (it runs without Ray too).
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from filelock import FileLock
from processes import wait_gone

from cs_nets.cli import main
from cs_nets.config import config_from_dict, load_config
from cs_nets.runs.checkpoint import load_checkpoint
from cs_nets.runs.task import run
from cs_nets.sweep import expand_trials, grid_spec, load_spec
from cs_nets.sweep.spec import MAX_TRIALS

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"


def sweep_sh(*args, cwd):
    env = dict(os.environ, CSNETS=f"{sys.executable} -m cs_nets")
    return subprocess.run(["bash", str(ROOT / "scripts" / "sweep.sh"), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def cli(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def summaries(out):
    return {p.name: json.loads((p / "summary.json").read_text())
            for p in sorted(Path(out).glob("trial-*")) if (p / "summary.json").is_file()}


def table(output):
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("run "))
    return [line.split() for line in lines[header + 1:] if line.startswith("trial-")]


def line_after(output, prefix):
    return next(line for line in output.splitlines() if line.startswith(prefix))[len(prefix):]


def run_printed(command, monkeypatch, cwd):
    """Run a printed `csnets ...` command through the CLI, as pasted, in `cwd`.

    With one BLAS thread, as each trial has: OpenBLAS may split a product's sums differently
    with two threads, so only the same thread count promises the same bits.
    """
    from threadpoolctl import threadpool_limits

    words = shlex.split(command)
    assert words[0] == "csnets"
    monkeypatch.chdir(cwd)
    with threadpool_limits(limits=1, user_api="blas"):
        return CliRunner().invoke(main, words[1:])


def params_of(run_dir):
    model, _, _ = load_checkpoint(run_dir)
    return model.params


# --------------------------------------------------------------------------- sweep.sh, the wrapper


@pytest.mark.slow
def test_sweep_sh_runs_the_grid_and_its_best_commands_run_as_printed(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    proc = sweep_sh(SMOKE, "optim.learning_rate=1e-3,1e12", "model.reg=0,1e-3", "-j", "2", "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # diverged trials are results, not failures
    found = summaries(out)
    assert sorted(found) == ["trial-000", "trial-001", "trial-002", "trial-003"]
    assert found["trial-000"]["overrides"] == ["optim.learning_rate=0.001", "model.reg=0"]
    assert found["trial-003"]["overrides"] == ["optim.learning_rate=1000000000000.0", "model.reg=0.001"]
    assert [found[t]["status"] for t in sorted(found)] == ["completed", "completed", "diverged", "diverged"]
    assert all(s["backend"] == "local" and s["blas_threads"] == 1 for s in found.values())
    assert sorted(p.name for p in (out / "logs").iterdir()) == [f"trial-00{i}.log" for i in range(4)]
    assert "--backend local" not in proc.stdout  # the trials' commands are theirs, not the sweep's

    rows = table(proc.stdout)
    vals = [found[row[0]]["val_accuracy"] for row in rows]
    assert vals == sorted(vals, reverse=True) and [row[1] for row in rows[2:]] == ["diverged", "diverged"]
    best = rows[0][0]
    assert load_config(out / "best.yaml").to_dict() == config_from_dict(
        yaml.safe_load((out / best / "config.yaml").read_text())).to_dict()

    # Every best command printed runs as pasted: a new run directory, the same parameters.
    train_it = line_after(proc.stdout, "train it: ")
    assert train_it == f"csnets train --config {out / 'best.yaml'}"
    result = run_printed(train_it, monkeypatch, tmp_path)
    assert result.exit_code == 0, result.output
    (again,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    for name, value in params_of(out / best).items():
        np.testing.assert_array_equal(params_of(again)[name], value, err_msg=name)
    from_table = line_after(proc.stdout, f"best: {best} (val accuracy ").split("): ", 1)[1]
    assert "--out" not in from_table and "--set optim.learning_rate=0.001" in from_table
    result = run_printed(from_table, monkeypatch, tmp_path)
    assert result.exit_code == 0, result.output
    assert len([p for p in (tmp_path / "runs").iterdir() if p.is_dir()]) == 2


def test_sweep_sh_usage_errors(tmp_path):
    proc = sweep_sh(SMOKE, cwd=tmp_path)
    assert proc.returncode == 2 and "at least one" in proc.stderr
    proc = sweep_sh(tmp_path / "missing.yaml", "model.reg=1", cwd=tmp_path)
    assert proc.returncode == 2 and "no config file" in proc.stderr
    proc = sweep_sh(SMOKE, "model.reg=1", "-j", "zero", cwd=tmp_path)
    assert proc.returncode == 2 and "'zero' is not a valid integer" in proc.stderr
    proc = sweep_sh(SMOKE, "model.reg=1", "stray", cwd=tmp_path)
    assert proc.returncode == 2 and "expected section.key=v1,v2" in proc.stderr
    assert not (tmp_path / "sweeps").exists()


def test_sweep_sh_refuses_bad_values_before_any_trial_runs(tmp_path):
    out = tmp_path / "sweep"
    proc = sweep_sh(SMOKE, "train.batch_size=100,0", "--out", out, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --grid train.batch_size: train.batch_size: expected a value > 0, got 0 "
        "(in trial-001: train.batch_size=0)"]
    assert not out.exists()


def test_a_failed_trial_is_one_line_after_the_table_and_exit_1(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "trial-001").write_text("not a run directory")  # trial-001 cannot write its run
    proc = sweep_sh(SMOKE, "train.num_epochs=1,2", "--out", out, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert errors[-1] == "error: 1 of 2 trials failed"
    assert [line for line in errors if line.startswith("trial-001 failed")] == [
        f"trial-001 failed: exit 2: error: --out {out / 'trial-001'}: exists and is not a directory"]
    assert [row[:2] for row in table(proc.stdout)] == [["trial-000", "completed"]]


def test_a_trial_that_fails_on_its_data_names_the_swept_data_key_and_its_line(tmp_path, good_and_incomplete_cifar):
    good, bad = good_and_incomplete_cifar
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"base: {SMOKE}\nparameters:\n  data.dir: [{good}, {bad}]\n")
    out = tmp_path / "sweep"
    result = cli("sweep", spec, "--set", "data.source=cifar10", "--set", "data.num_val=50", "--set",
                 "train.num_epochs=1", "--backend", "local", "--out", out)
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("trial-001 failed")]
    assert line.startswith(f"trial-001 failed: exit 1: error: {bad / 'cifar-10-batches-py'} is incomplete: "
                           f"test_batch missing: put the file back")
    assert line.endswith(f" (data.dir={bad} from {spec}:3)")
    assert result.output.splitlines()[-1] == "error: 1 of 2 trials failed"
    assert summaries(out)["trial-000"]["status"] == "completed" and not (out / "trial-001").exists()


@pytest.mark.slow  # sweep subprocesses
def test_list_values_are_split_outside_brackets(tmp_path):
    out = tmp_path / "sweep"
    proc = sweep_sh(SMOKE, "model.type=fc_net", "model.hidden_dims=[16,8],[32]", "train.num_epochs=1", "--out", out,
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = summaries(out)
    assert [s["overrides"] for s in found.values()] == [
        ["model.type=fc_net", "model.hidden_dims=[16, 8]", "train.num_epochs=1"],
        ["model.type=fc_net", "model.hidden_dims=[32]", "train.num_epochs=1"]]
    dims = [yaml.safe_load((out / t / "config.yaml").read_text())["model"]["hidden_dims"] for t in found]
    assert dims == [[16, 8], [32]]
    proc = sweep_sh(SMOKE, "model.hidden_dims=[16,8", "--out", tmp_path / "x", cwd=tmp_path)
    assert proc.returncode == 2 and "unbalanced brackets" in proc.stderr
    proc = sweep_sh(SMOKE, "model.reg=1,", "--out", tmp_path / "x", cwd=tmp_path)
    assert proc.returncode == 2 and "an empty value" in proc.stderr


def test_grid_spec_gives_the_cartesian_product_first_key_slowest(tmp_path):
    spec = grid_spec(SMOKE, ["optim.learning_rate=1e-3,3e-3", "model.reg=0,1e-4,1e-3"])
    trials = expand_trials(spec)
    assert [t.params for t in trials] == [{"optim.learning_rate": lr, "model.reg": reg}
                                          for lr in (1e-3, 3e-3) for reg in (0, 1e-4, 1e-3)]
    assert [t.name for t in trials] == [f"trial-00{i}" for i in range(6)]
    assert trials[4].config.optim.learning_rate == 3e-3 and trials[4].config.model.reg == 1e-4
    assert spec.options.task == "train" and spec.path == SMOKE


# --------------------------------------------------------------------------- the sweep folder


def test_a_sweep_folder_in_use_is_refused_at_once(tmp_path):
    out = tmp_path / "sweep"
    with FileLock(tmp_path / ".sweep.lock"):  # what a running csnets sweep holds
        result = cli("sweep", "--config", SMOKE, "--grid", "model.reg=0", "--backend", "local", "--out", out)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --out {out}: another csnets sweep is running into it; wait for it or stop it"]
    assert not out.exists()


def test_a_folder_that_holds_a_train_run_is_refused(tmp_path):
    run(load_config(SMOKE, ["train.num_epochs=1"]), tmp_path / "run")
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    result = cli("sweep", "--config", SMOKE, "--grid", "model.reg=0", "--backend", "local", "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: --out {tmp_path / 'run'} holds a csnets train run, not a sweep: "
                                     f"choose another --out")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before


def test_too_many_trials_is_one_line_before_expanding(tmp_path):
    spec = tmp_path / "huge.yaml"
    spec.write_text(f"base: {SMOKE}\nnum_samples: 1000000000\nparameters:\n  model.reg: {{uniform: [0, 1]}}\n")
    result = cli("sweep", spec, "--backend", "local", "--out", tmp_path / "a")
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: {spec}:2: num_samples 1000000000 is 1,000,000,000 trials, more than a "
                                     f"sweep may have ({MAX_TRIALS:,}); sweep fewer values")
    values = ",".join(str(i) for i in range(3000))
    result = cli("sweep", "--config", SMOKE, "--grid", f"seed={values}", "--grid", f"data.num_val={values}",
                 "--backend", "local", "--out", tmp_path / "b")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --grid of {SMOKE}: num_samples 1 x grid 3000 x 3000 is 9,000,000 trials, more than a sweep may "
        f"have ({MAX_TRIALS:,}); sweep fewer values"]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_asha_on_the_local_backend_is_synchronous_successive_halving(tmp_path):
    # rungs at 1 and 3 epochs (grace 1, factor 3) below the 9 epochs; the learning rates 1e-8 and 1e-9 barely
    # learn: at rung 1 the best 2 of 4 go on, at rung 3 the best 1 of 2.
    spec = tmp_path / "asha.yaml"
    spec.write_text(f"base: {SMOKE}\nscheduler: {{type: asha, grace_period: 1, reduction_factor: 3}}\n"
                    f"parameters:\n  optim.learning_rate: [1.0e-3, 1.0e-8, 3.0e-3, 1.0e-9]\n"
                    f"  train.num_epochs: [9]\n")
    out = tmp_path / "out"
    result = cli("sweep", spec, "--backend", "local", "-j", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert ("notice: scheduler asha is Ray's; the local backend halves synchronously instead: every trial runs to "
            "epoch 1, then 3, and the best 1/3 of those still training go on each time") in result.output
    found = summaries(out)
    vals = {name: [json.loads(line)["val_accuracy"] for line in (out / name / "metrics.jsonl").read_text().splitlines()]
            for name in found}
    at_1 = sorted(found, key=lambda n: (-vals[n][0], n))
    assert {n for n in at_1[2:]} == {"trial-001", "trial-003"}  # the tiny learning rates
    for name in at_1[2:]:
        assert found[name]["status"] == "stopped" and found[name]["stopped_at_epoch"] == found[name]["epochs"] == 1
        assert f"{name}: stopped by successive halving after epoch 1 (val {vals[name][0]:.4f})" in result.output
    at_3 = sorted(at_1[:2], key=lambda n: (-vals[n][2], n))
    assert found[at_3[1]]["status"] == "stopped" and found[at_3[1]]["epochs"] == 3
    assert found[at_3[0]]["status"] == "completed" and len(vals[at_3[0]]) == 9
    # paused twice and continued: the parameters of a run never paused (one BLAS thread, as the trials)
    from threadpoolctl import threadpool_limits
    winner = next(t for t in expand_trials(load_spec(spec)) if t.name == at_3[0])
    with threadpool_limits(limits=1, user_api="blas"):
        alone = run(winner.config, tmp_path / "alone")
    for name, value in params_of(alone.run_dir).items():
        np.testing.assert_array_equal(params_of(out / at_3[0])[name], value, err_msg=name)
    assert not any((out / name / "state.npz").exists() for name in found)
    # every run directory is a finished one: evaluate reads the stopped ones' best parameters
    evaluated = cli("evaluate", "--checkpoint", out / at_3[1], "--split", "val", "--json")
    assert json.loads(evaluated.output)["accuracy"] == found[at_3[1]]["val_accuracy"]
    # --resume takes the same decisions from the recorded metrics: nothing runs again
    again = cli("sweep", spec, "--out", out, "--resume")
    assert again.exit_code == 0 and "resume: 4 trials finished before, 0 to run" in again.output
    assert summaries(out) == found
    spec.write_text(spec.read_text().replace("reduction_factor: 3", "reduction_factor: 2"))
    again = cli("sweep", spec, "--out", out, "--resume")
    assert again.exit_code == 2 and "does not give the trials (or scheduler) of the sweep" in again.output


def test_a_resume_needs_the_same_sweep_on_the_same_backend(tmp_path):
    out = tmp_path / "sweep"
    grid = ["sweep", "--config", SMOKE, "--grid", "train.num_epochs=1,2", "--backend", "local", "--out", out]
    assert cli(*grid).exit_code == 0
    result = cli(*grid)
    assert result.exit_code == 2 and "already holds a sweep: continue it with --resume" in result.output
    result = cli("sweep", "--config", SMOKE, "--grid", "train.num_epochs=1,3", "--out", out, "--resume")
    assert result.exit_code == 2 and "does not give the trials (or scheduler) of the sweep" in result.output
    result = cli("sweep", "--config", SMOKE, "--grid", "train.num_epochs=1,2", "--out", out, "--resume",
                 "--backend", "ray")
    assert result.exit_code in (1, 2)  # 1 without Ray installed: it says how to install it
    assert "continue it with --backend local" in result.output or "needs Ray Tune" in result.output
    result = cli("sweep", "--config", SMOKE, "--grid", "train.num_epochs=1,2", "--out", tmp_path / "new", "--resume")
    assert result.exit_code == 2 and "holds no sweep" in result.output
    # the backend is the sweep's own on --resume: nothing left to run, the table again
    result = cli("sweep", "--config", SMOKE, "--grid", "train.num_epochs=1,2", "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert "resume: 2 trials finished before, 0 to run" in result.output


def test_without_ray_auto_is_local_and_ray_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from cs_nets.cli import main; "
            f"main(['sweep', '--config', {str(SMOKE)!r}, '--grid', 'train.num_epochs=1', '--out', 'o', *sys.argv[1:]])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "(local backend, 1 at a time)" in proc.stderr
    proc = subprocess.run([sys.executable, "-c", code, "--backend", "ray", "--out", "p"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: csnets sweep needs Ray Tune: pip install 'cs_nets[sweep]'"


# --------------------------------------------------------------------------- stopped, killed, resumed


def start(out, *grids, jobs=1):
    args = [a for g in grids for a in ("--grid", g)]
    return subprocess.Popen([sys.executable, "-m", "cs_nets", "sweep", "--config", str(SMOKE), *args, "--backend",
                             "local", "-j", str(jobs), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its group: the driver and its trials (the reap fixture)


def wait_for_epochs(run_dir, count, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = Path(run_dir) / "metrics.jsonl"
        if path.is_file() and len(path.read_text().splitlines()) >= count and (Path(run_dir) / "state.npz").is_file():
            return json.loads((Path(run_dir) / "summary.json").read_text())
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"{run_dir} did not reach epoch {count}")


@pytest.mark.slow
def test_sigterm_stops_the_sweep_and_resume_finishes_it_bit_for_bit(tmp_path, reap):
    out = tmp_path / "sweep"
    proc = reap(start(out, "train.num_epochs=2,200,200"))
    wait_for_epochs(out / "trial-001", 2, proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted; continue with: csnets sweep --config {SMOKE} --grid train.num_epochs=2,200,200 "
        f"--out {out} --resume")
    first = summaries(out)
    assert first["trial-000"]["status"] == "completed"
    assert first["trial-001"]["status"] == "interrupted" and 2 <= first["trial-001"]["epochs"] < 200
    assert "trial-002" not in first  # never started
    assert [row[:2] for row in table(stdout)] == [["trial-000", "completed"], ["trial-001", "interrupted"]]
    done = (out / "trial-000" / "summary.json").read_bytes()

    result = cli("sweep", "--config", SMOKE, "--grid", "train.num_epochs=2,200,200", "--out", out, "--resume",
                 "-j", "2")
    assert result.exit_code == 0, result.output
    assert "resume: 1 trials finished before, 2 to run" in result.output
    final = summaries(out)
    assert [s["status"] for s in final.values()] == ["completed"] * 3
    assert (out / "trial-000" / "summary.json").read_bytes() == done
    epochs = [json.loads(line)["epoch"] for line in (out / "trial-001" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 201))  # each epoch once
    # interrupted and continued: the parameters of a run never stopped (one BLAS thread, as the trials)
    trial = expand_trials(grid_spec(SMOKE, ["train.num_epochs=2,200,200"]))[1]
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        alone = run(trial.config, tmp_path / "alone")
    for name, value in params_of(alone.run_dir).items():
        np.testing.assert_array_equal(params_of(out / "trial-001")[name], value, err_msg=name)


@pytest.mark.slow
def test_a_killed_trial_is_one_line_and_its_summary_table_and_exit_status_agree(tmp_path, reap):
    out = tmp_path / "sweep"
    proc = reap(start(out, "train.num_epochs=200,2", jobs=2))
    running = wait_for_epochs(out / "trial-000", 2, proc)
    os.kill(running["pid"], signal.SIGKILL)  # e.g. the out-of-memory killer
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    failed = [line for line in stderr.splitlines() if "trial-000" in line and "fail" in line]
    assert failed == ["trial-000 failed: its process was killed by SIGKILL"]
    assert stderr.strip().splitlines()[-1] == "error: 1 of 2 trials failed"
    found = summaries(out)
    assert found["trial-000"]["status"] == "failed" and found["trial-000"]["error"] == \
        "its process was killed by SIGKILL"
    assert found["trial-001"]["status"] == "completed"
    assert {row[0]: row[1] for row in table(stdout)} == {"trial-000": "failed", "trial-001": "completed"}
    # --resume runs it again, from its last saved epoch
    result = cli("sweep", "--config", SMOKE, "--grid", "train.num_epochs=200,2", "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert summaries(out)["trial-000"]["status"] == "completed"


@pytest.mark.slow
def test_a_second_sweep_into_a_running_sweeps_folder_is_refused_at_once(tmp_path, reap):
    """Two real sweep processes, one folder: the second (new or --resume) exits 2 at once and changes nothing;
    the first goes on until it is stopped."""
    out = tmp_path / "sweep"
    grid = ["--config", str(SMOKE), "--grid", "train.num_epochs=200,200", "--backend", "local", "--out", str(out)]
    proc = reap(start(out, "train.num_epochs=200,200"))
    running = wait_for_epochs(out / "trial-000", 1, proc)
    sweep_json = (out / "sweep.json").read_bytes()
    folders = sorted(p.name for p in out.iterdir())
    for extra in ([], ["--resume"]):
        started = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "cs_nets", "sweep", *grid, *extra], capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2 and second.stdout == "", second.stderr
        assert second.stderr.splitlines() == [
            f"error: --out {out}: another csnets sweep is running into it; wait for it or stop it"]
        assert time.monotonic() - started < 60  # the lock is tried, never waited for
        assert (out / "sweep.json").read_bytes() == sweep_json
        assert sorted(p.name for p in out.iterdir()) == folders  # no trial folder, log or record of its own
        assert proc.poll() is None  # the first sweep goes on
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    wait_gone(running["pid"])  # its trial was stopped with it
    assert summaries(out)["trial-000"]["status"] == "interrupted"


def test_spec_trials_are_the_same_on_both_backends(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(f"base: {SMOKE}\nnum_samples: 2\nseed: 3\nparameters:\n"
                         f"  train.num_epochs: [1]\n  model.reg: {{loguniform: [1.0e-5, 1.0e-2]}}\n")
    trials = expand_trials(load_spec(spec_path))
    result = cli("sweep", spec_path, "--backend", "local", "-j", "2", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    found = summaries(tmp_path / "out")
    assert [s["overrides"] for s in found.values()] == [t.overrides for t in trials]
    record = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert record["backend"] == "local" and [t["params"] for t in record["trials"]] == [t.params for t in trials]
    assert f"train it: csnets train --config {tmp_path / 'out' / 'best.yaml'}" in result.output


@pytest.mark.parametrize("script", sorted((ROOT / "scripts").glob("sweep_*.sh")), ids=lambda p: p.name)
def test_each_example_grid_becomes_a_valid_local_sweep(script, tmp_path):
    # CSNETS=echo: the wrapper prints the csnets command it would exec; its trials must all validate.
    proc = subprocess.run(["bash", str(script), "--out", "x"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, CSNETS="echo"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    words = shlex.split(proc.stdout)
    assert words[:3] == ["sweep", "--config", words[2]] and words[3:5] == ["--backend", "local"]
    grids = [words[i + 1] for i, w in enumerate(words) if w == "--grid"]
    command = words[words.index("--command") + 1] if "--command" in words else "train"
    trials = expand_trials(grid_spec(words[2], grids, task=command.replace("-", "_")))
    assert len(trials) == np.prod([len(g.split("=", 1)[1].split(",")) for g in grids]) >= 4


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the trials follow their driver through prctl")
def test_a_killed_driver_takes_its_trials_with_it_and_they_are_saved(tmp_path, reap):
    out = tmp_path / "sweep"
    proc = reap(start(out, "train.num_epochs=200"))
    running = wait_for_epochs(out / "trial-000", 2, proc)
    proc.kill()  # SIGKILL: the driver has no say
    proc.communicate(timeout=60)
    wait_gone(running["pid"])
    summary = summaries(out)["trial-000"]
    assert summary["status"] == "interrupted" and 2 <= summary["epochs"] < 200
    assert (out / "trial-000" / "state.npz").is_file()
    assert (out / "logs" / "trial-000.log").read_text().splitlines()[-1] == "stopped by SIGTERM"


@pytest.mark.parametrize("recorded, shown", [
    ("csnets train --config c.yaml --set model.reg=0 --out sweeps/grid/run-006 --quiet",
     "csnets train --config c.yaml --set model.reg=0 --quiet"),
    ("csnets train --config c.yaml --out=runs/a --overwrite", "csnets train --config c.yaml"),
    ("csnets train --resume runs/a", ""),  # no config left: the table shows no command
    ("csnets train --set model.reg=1", ""),
    ("csnets train --config 'my dir/c.yaml'", "csnets train --config 'my dir/c.yaml'"),
    ("csnets train --config 'unclosed", ""),  # a hand-edited summary: nothing to paste, rather than a wrong command
])
def test_summarize_shows_a_command_that_never_writes_into_the_run(recorded, shown):
    from cs_nets.runs.reader import rerun_command

    assert rerun_command(recorded) == shown


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"trials": 3}', "[" * 100_000])
def test_a_damaged_sweep_record_is_one_line_on_resume(tmp_path, text):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text(text)
    result = cli("sweep", "--config", SMOKE, "--grid", "model.reg=0", "--backend", "local", "--out", out, "--resume")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {out / 'sweep.json'}") and len(line) < 400
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]


def make_killed_before_config(run_dir):
    """Leave `run_dir` as a trial killed between its first two writes: summary.json (running, by a dead
    process) and nothing else: summary.json is written before config.yaml."""
    summary = json.loads((run_dir / "summary.json").read_text())
    for path in run_dir.iterdir():
        path.unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    summary.update(status="running", pid=int(dead.stdout), epochs=0)
    (run_dir / "summary.json").write_text(json.dumps(summary))


@pytest.mark.slow  # sweep subprocesses
def test_a_trial_killed_before_its_config_was_written_starts_afresh_on_resume(tmp_path):
    out = tmp_path / "sweep"
    grid = ["sweep", "--config", SMOKE, "--grid", "train.num_epochs=1,2", "--backend", "local", "--out", out]
    assert cli(*grid).exit_code == 0
    before = params_of(out / "trial-001")
    make_killed_before_config(out / "trial-001")
    result = cli(*grid, "--resume")
    assert result.exit_code == 0, result.output
    assert summaries(out)["trial-001"]["status"] == "completed"
    assert (out / "trial-001" / "config.yaml").is_file()
    for name, value in params_of(out / "trial-001").items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)  # the same seed, the same run
