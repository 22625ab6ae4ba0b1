"""The library's run function: what it writes, what it refuses, and resuming bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cs_nets.config import load_config
from cs_nets.data.pipeline import prepare_dataset
from cs_nets.errors import ConfigError, DataError
from cs_nets.runs.checkpoint import load_checkpoint
from cs_nets.runs.task import resume, run

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
# momentum + cosine + hflip: the update rule's buffers, the schedule and the generator all carry over
EPOCHS = 12
RESUMABLE = ["data.synthetic_train=8000", f"train.num_epochs={EPOCHS}", "train.hflip=true", "optim.schedule=cosine"]
# The same, small enough for the quick suite: what a finished run's folder holds.
QUICK_EPOCHS = 3
QUICK = ["data.synthetic_train=1000", f"train.num_epochs={QUICK_EPOCHS}", "train.hflip=true", "optim.schedule=cosine"]


def smoke(*overrides):
    return load_config(SMOKE, list(overrides))


def params_of(run_dir):
    model, _, _ = load_checkpoint(run_dir)
    return model.params


def metrics_epochs(run_dir):
    return [json.loads(line)["epoch"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def csnets(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "cs_nets", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def completed_run(folder, overrides):
    """(run directory, RunResult) of an uninterrupted run of the smoke config with `overrides`."""
    out = folder / "run"
    result = run(smoke(*overrides), out)
    assert result.status == "completed"
    return out, result


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the RESUMABLE config."""
    return completed_run(tmp_path_factory.mktemp("ref"), RESUMABLE)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """An uninterrupted run of the QUICK config."""
    return completed_run(tmp_path_factory.mktemp("finished"), QUICK)


def test_run_writes_a_complete_run_directory(finished):
    out, result = finished
    assert result.run_dir == out
    assert sorted(p.name for p in out.iterdir()) == ["batch_losses.npy", "config.yaml", "metrics.jsonl",
                                                       "model.npz", "summary.json"]  # state.npz gone: finished
    summary = json.loads((out / "summary.json").read_text())
    assert summary == result.summary and summary["status"] == "completed" and summary["epochs"] == QUICK_EPOCHS
    assert metrics_epochs(out) == list(range(1, QUICK_EPOCHS + 1))
    assert len(np.load(out / "batch_losses.npy")) == QUICK_EPOCHS * 8  # ceil(800 / 100) batches per epoch
    # train_accuracy means one thing: the best epoch's metrics line scored the same rows with the same params
    best = json.loads((out / "metrics.jsonl").read_text().splitlines()[summary["best_epoch"] - 1])
    assert summary["train_accuracy"] == best["train_accuracy"]
    assert summary["val_accuracy"] == best["val_accuracy"] == max(
        json.loads(line)["val_accuracy"] for line in (out / "metrics.jsonl").read_text().splitlines())


@pytest.mark.slow
def test_run_reports_every_epoch_and_can_share_a_prepared_dataset(tmp_path, reference):
    config = smoke(*RESUMABLE)
    data = prepare_dataset(config)
    seen = []
    result = run(config, tmp_path / "shared", dataset=data, on_epoch=lambda m: seen.append(m["epoch"]))
    assert seen == list(range(1, EPOCHS + 1))
    ref_params = params_of(reference[0])
    assert all(np.array_equal(ref_params[k], v) for k, v in params_of(result.run_dir).items())


def test_random_search_task(tmp_path):
    config = load_config(SMOKE, ["model.type=linear", "model.loss=svm", "search.attempts=20"])
    result = run(config, tmp_path / "rs", task="random_search")
    assert result.status == "completed" and result.summary["model"] == "random_search"
    assert len(np.load(tmp_path / "rs" / "search_losses.npy")) == 20
    with pytest.raises(ConfigError, match="cannot be resumed"):
        (tmp_path / "rs" / "summary.json").write_text(json.dumps({**result.summary, "status": "interrupted"}))
        resume(tmp_path / "rs")


def test_an_existing_run_is_refused_before_any_work(tmp_path, finished):
    out, _ = finished
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(ConfigError, match=r"already holds a run: continue it with `csnets train --resume .*` "
                                          r"or replace it with --overwrite"):
        run(smoke(*QUICK), out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_config_errors_found_by_the_model_build_write_nothing(tmp_path):
    with pytest.raises(ConfigError, match="model: init"):
        run(smoke("model.init=-1"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_overwrite_replaces_the_whole_run_and_never_deletes_the_input_config(tmp_path):
    out = tmp_path / "proj"
    run(smoke("train.num_epochs=2"), out)
    result = run(smoke("train.num_epochs=3", "model.hidden_dims=[8]"), out, overwrite=True)
    assert result.summary["epochs"] == 3 and params_of(out)["W1"].shape[1] == 8
    assert metrics_epochs(out) == [1, 2, 3]
    assert [p.name for p in tmp_path.glob(".proj.*")] == [".proj.lock"]  # no staging or old folder left
    (out / "my.yaml").write_text(SMOKE.read_text())
    with pytest.raises(ConfigError, match="would delete the config file"):
        run(smoke(), out, overwrite=True, config_path=out / "my.yaml")
    with pytest.raises(ConfigError, match=r"would delete my.yaml .*which a run did not write"):
        run(smoke(), out, overwrite=True)
    assert (out / "my.yaml").read_text() == SMOKE.read_text()


def test_a_folder_of_the_users_files_is_never_taken(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=r"holds files that are not a run \(notes.txt\); a run is written "
                                              r"only into a new or empty folder"):
            run(smoke("train.num_epochs=1"), tmp_path, overwrite=overwrite)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_resume_of_a_finished_run_does_nothing(finished):
    out, result = finished
    before = (out / "model.npz").stat().st_mtime_ns
    again = resume(out)
    assert again.status == "completed" and again.summary == result.summary
    assert (out / "model.npz").stat().st_mtime_ns == before


@pytest.mark.slow
def test_resume_refuses_other_data(tmp_path):
    out = tmp_path / "run"
    config = smoke(*RESUMABLE)
    data = prepare_dataset(config)
    run(config, out, dataset=data)
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "status": "interrupted",
                                                  "data_fingerprint": "0" * 32}))
    with pytest.raises(DataError, match="was trained on other data"):
        resume(out, dataset=data)


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.002)


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_is_bit_identical(tmp_path, reference):
    """Killed with SIGKILL again and again (mid-epoch and mid-write), resumed each time: same arrays."""
    ref_dir, _ = reference
    out = tmp_path / "killed"
    sets = [a for s in RESUMABLE for a in ("--set", s)]
    rng = np.random.default_rng(0)
    kills, mid_write = 0, 0
    proc = csnets("train", "--config", SMOKE, *sets, "--out", out, "--quiet")
    while True:
        if kills < 5:
            # let this process finish at least one epoch of its own, so every kill lands in training
            done = len(metrics_epochs(out)) if (out / "metrics.jsonl").exists() else 0
            wait_for(lambda p=proc, d=done: p.poll() is not None or (
                (out / "metrics.jsonl").exists() and len(metrics_epochs(out)) > d))
            if kills in (2, 3):  # mid-write: while a temporary state file is being written
                try:
                    wait_for(lambda p=proc: list(out.glob(".state.npz.*.tmp")) or p.poll() is not None, timeout=30)
                    mid_write += bool(list(out.glob(".state.npz.*.tmp")))
                except AssertionError:
                    pass
            else:  # mid-epoch, at a random time within the next epoch or so
                time.sleep(float(rng.uniform(0.0, 0.15)))
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        proc = csnets("train", "--resume", out, "--quiet")
    print(f"killed {kills} times, {mid_write} of them while a state file was being written")
    assert kills >= 3
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    assert metrics_epochs(out) == list(range(1, EPOCHS + 1))
    ref = params_of(ref_dir)
    for name, value in params_of(out).items():
        assert (value == ref[name]).all(), name
    assert np.array_equal(np.load(out / "batch_losses.npy"), np.load(ref_dir / "batch_losses.npy"))
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_save_the_run_then_resume_finishes_it(tmp_path, reference, sig, code):
    out = tmp_path / "stopped"
    sets = [a for s in RESUMABLE for a in ("--set", s)]
    proc = csnets("train", "--config", SMOKE, *sets, "--out", out)
    wait_for(lambda: (out / "state.npz").exists())
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and f"csnets train --resume {out}" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and (out / "model.npz").exists() and (out / "state.npz").exists()
    assert not list(out.glob(".*.tmp"))
    proc = csnets("train", "--resume", out, "--quiet")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    ref = params_of(reference[0])
    assert all((v == ref[k]).all() for k, v in params_of(out).items())
    assert metrics_epochs(out) == list(range(1, EPOCHS + 1))


@pytest.mark.slow
def test_overwrite_interrupted_before_its_first_checkpoint_keeps_the_old_run(tmp_path):
    out = tmp_path / "old"
    run(smoke("train.num_epochs=1"), out)
    before = (out / "model.npz").read_bytes()
    # batch size 1 over 20,000 images: the first epoch takes seconds, time enough to stop it
    # (a tiny learning rate without momentum, so it cannot diverge first)
    slow = ["data.synthetic_train=20000", "train.batch_size=1", "optim.learning_rate=1e-6", "optim.momentum=0"]
    proc = csnets("train", "--config", SMOKE, *[a for s in slow for a in ("--set", s)], "--out", out, "--overwrite")
    wait_for(lambda: list(tmp_path.glob(".old.new-*")))
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "left unchanged" in stderr
    assert (out / "model.npz").read_bytes() == before
    assert [p.name for p in tmp_path.glob(".old.*")] == [".old.lock"]


@pytest.mark.slow
def test_a_closed_pipe_never_kills_a_run(tmp_path):
    """`csnets train ... 2>&1 | head -1`: the reader goes away, the run goes on and finishes."""
    out = tmp_path / "piped"
    proc = subprocess.Popen([sys.executable, "-m", "cs_nets", "train", "--config", str(SMOKE), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    proc = subprocess.Popen([sys.executable, "-m", "cs_nets", "evaluate", "--checkpoint", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == ""


@pytest.mark.slow
def test_a_crash_mid_run_leaves_status_failed(tmp_path):
    def explode(metrics):
        if metrics["epoch"] == 2:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        run(smoke(), tmp_path / "crash", on_epoch=explode)
    summary = json.loads((tmp_path / "crash" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == "RuntimeError: disk on fire"
    assert summary["epochs"] == 2 and (tmp_path / "crash" / "state.npz").exists()
    resumed = resume(tmp_path / "crash")  # a failed run can be continued like a stopped one
    assert resumed.status == "completed" and metrics_epochs(tmp_path / "crash") == [1, 2, 3, 4]


def test_resume_takes_no_config_or_out(tmp_path, finished):
    from click.testing import CliRunner

    from cs_nets.cli import main

    result = CliRunner().invoke(main, ["train", "--resume", str(finished[0]), "--config", str(SMOKE)])
    assert result.exit_code == 2 and "--resume continues a run with its own config" in result.output
    result = CliRunner().invoke(main, ["train"])
    assert result.exit_code == 2 and "Missing option '--config' (or --resume RUN_DIR)" in result.output


@pytest.mark.slow
def test_one_process_writes_a_run_at_a_time(tmp_path):
    """A second `--resume` (or a second run into the same --out) while the first still trains is refused."""
    out = tmp_path / "busy"
    sets = [a for s in RESUMABLE for a in ("--set", s)]
    proc = csnets("train", "--config", SMOKE, *sets, "--set", "train.num_epochs=1000", "--out", out, "--quiet")
    try:
        wait_for(lambda: (out / "state.npz").exists())
        with pytest.raises(ConfigError, match="is being written by another csnets process"):
            resume(out)
        with pytest.raises(ConfigError, match="is being written by another csnets process"):
            run(smoke(), tmp_path / "busy", overwrite=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"


# ---------------------------------------------------------------- every shipped kind of pipeline, end to end

# The CIFAR-100 configs train end to end on a served CIFAR-100 archive in tests/test_cifar100.py.
SHIPPED = sorted(p for p in (ROOT / "configs").glob("*.yaml") if not p.stem.startswith("cifar100"))


def small_copy(config_path: Path, folder: Path) -> Path:
    """The shipped config on small synthetic data, its pipeline kept (same transforms, smaller bow codebooks)."""
    import yaml

    raw = yaml.safe_load(config_path.read_text())
    data = raw.setdefault("data", {})
    if data.get("source", "cifar10") == "cifar10":
        data.update(source="synthetic", synthetic_train=400, synthetic_test=100, num_val=50)
    else:
        data.update(points_per_class=60, num_val=30)
    data.pop("num_train", None)
    for t in raw.get("features") or []:
        if t["type"] == "bow":
            t.update(words=16, samples=2000, iterations=2)
    raw.setdefault("train", {})["num_epochs"] = 2
    if "search" in raw:
        raw["search"]["attempts"] = 5
    path = folder / config_path.name
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("config_path", [
    pytest.param(p, id=p.stem, marks=() if p.stem in ("linear_bow", "toy_spiral") else pytest.mark.slow)
    for p in SHIPPED])  # the bag of words (once unreadable) and the 2-D points in the quick suite
def test_every_shipped_pipeline_trains_evaluates_and_plots(config_path, tmp_path):
    """raw pixels, hog + color, bag of words, polar, 2-D points: the run's model.npz is read back by
    evaluate (same test accuracy) and by plot (no warning)."""
    pytest.importorskip("matplotlib")
    from click.testing import CliRunner

    from cs_nets.cli import main

    config = small_copy(config_path, tmp_path)
    out = tmp_path / "run"
    command = "random-search" if "search" in config.read_text() else "train"
    runner = CliRunner()
    trained = runner.invoke(main, [command, "--config", str(config), "--out", str(out), "--quiet"])
    assert trained.exit_code == 0, trained.output
    summary = json.loads((out / "summary.json").read_text())
    evaluated = runner.invoke(main, ["evaluate", "--checkpoint", str(out), "--json", "--quiet"])
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads(evaluated.stdout)
    assert result["accuracy"] == summary["test_accuracy"] and result["same_data"] is True
    plotted = runner.invoke(main, ["plot", str(out), "--out", str(tmp_path / "pictures")])
    assert plotted.exit_code == 0, plotted.output
    assert "warning" not in plotted.output and "confusion" in plotted.output
    assert any(p.suffix == ".png" for p in (tmp_path / "pictures").iterdir())
