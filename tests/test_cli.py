"""The csnets commands end to end on synthetic data (click's runner, and once the installed script)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cs_nets.cli import main


@pytest.fixture
def plt():
    """matplotlib.pyplot for the picture tests; only they are skipped without it."""
    return pytest.importorskip("matplotlib.pyplot")

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    result = run("train", "--config", SMOKE, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out, result


def test_train_writes_the_run_directory(smoke_run):
    out, result = smoke_run
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("test accuracy: ")
    summary = json.loads((out / "summary.json").read_text())
    assert float(last.split(": ")[1]) == pytest.approx(summary["test_accuracy"], abs=5e-5)
    assert summary["test_accuracy"] > 0.5  # synthetic data is learnable
    for key in ("test_accuracy", "val_accuracy", "train_accuracy", "epochs", "train_seconds", "model"):
        assert key in summary
    assert summary["model"] == "two_layer" and summary["epochs"] == 4
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4
    first = json.loads(lines[0])
    assert {"epoch", "train_loss", "train_accuracy", "val_accuracy", "lr", "seconds"} <= set(first)
    with np.load(out / "model.npz", allow_pickle=False) as npz:
        assert {"params/W1", "params/b1", "params/W2", "params/b2", "meta"} <= set(npz.files)
    assert "model:" in (out / "config.yaml").read_text()
    assert len(np.load(out / "batch_losses.npy")) == 4 * 10  # 1000 train images / batch 100
    assert not list(out.glob(".*tmp"))  # no temporary files left behind


@pytest.mark.parametrize("split", ["test", "val"])
def test_evaluate_reproduces_the_run(smoke_run, split):
    out, _ = smoke_run
    summary = json.loads((out / "summary.json").read_text())
    result = run("evaluate", "--checkpoint", out, "--split", split, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["accuracy"] == summary[f"{split}_accuracy"]
    confusion = np.array(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == report["num_images"]
    if split == "test":
        assert confusion.tolist() == summary["test_confusion"]


def test_evaluate_text_output(smoke_run):
    out, _ = smoke_run
    result = run("evaluate", "--checkpoint", out / "model.npz")
    assert result.exit_code == 0
    assert result.output.startswith("test accuracy: ")
    assert len(result.output.strip().splitlines()) == 2 + 10  # header lines + one per class


def test_config_errors_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  typ: linear\n")
    result = run("train", "--config", bad, "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "bad.yaml:2: unknown key 'model.typ'; did you mean 'type'?" in result.output
    assert "Traceback" not in result.output
    result = run("train", "--config", SMOKE, "--set", "train.batch_size=-1", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "train.batch_size" in result.output
    assert not (tmp_path / "r").exists()  # nothing is written for a bad config


def test_diverging_training_exits_1_and_keeps_a_checkpoint(tmp_path):
    out = tmp_path / "nan"
    result = run("train", "--config", SMOKE, "--set", "optim.learning_rate=1e12", "--out", out, "--quiet")
    assert result.exit_code == 1
    assert "smaller learning rate" in result.output and "Traceback" not in result.output
    assert (out / "model.npz").exists()
    assert json.loads((out / "summary.json").read_text())["status"] == "diverged"


def test_random_search_command(tmp_path):
    out = tmp_path / "rs"
    result = run("random-search", "--config", SMOKE, "--set", "search.attempts=30", "--set", "data.normalize=none",
                 "--set", "model.loss=svm", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "random_search" and summary["best_loss"] > 0
    assert len(np.load(out / "search_losses.npy")) == 30
    assert result.output.strip().splitlines()[-1] == f"test accuracy: {summary['test_accuracy']:.4f}"
    evaluated = json.loads(run("evaluate", "--checkpoint", out, "--json").output)
    assert evaluated["accuracy"] == summary["test_accuracy"]


def test_gradcheck_command():
    result = run("gradcheck", "--model", "two_layer", "--loss", "svm", "--activation", "tanh")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()[1:-1]]
    assert {r[3] for r in rows} == {"W1", "b1", "W2", "b2"}
    assert all(float(r[4]) < 1e-6 for r in rows)


def _sweep_folder(tmp_path):
    for name, val, lr in [("a", 0.3, "1e-3"), ("b", 0.7, "1e-2"), ("c", 0.5, "1e-1")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(
            {"val_accuracy": val, "test_accuracy": val - 0.01, "overrides": [f"optim.learning_rate={lr}"],
             "command": f"csnets train --config c.yaml --set optim.learning_rate={lr} --out runs/{name}",
             "status": "completed"}))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "summary.json").write_text(json.dumps(
        {"status": "failed", "overrides": ["optim.learning_rate=1e9"], "error": "its process was killed"}))


def test_summarize_sorts_by_validation_accuracy(tmp_path):
    _sweep_folder(tmp_path)
    csv_path = tmp_path / "table.csv"
    result = run("summarize", tmp_path, "--csv", csv_path)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines[1:5]] == ["b", "c", "a", "d"]
    assert lines[4].split()[:2] == ["d", "failed"]
    assert lines[-1] == "best: b (val accuracy 0.7000): csnets train --config c.yaml --set optim.learning_rate=1e-2"
    assert csv_path.read_text().splitlines()[1].startswith("b,completed,0.0100,0.7000,-")


def test_summarize_plot(tmp_path, plt):
    _sweep_folder(tmp_path)
    result = run("summarize", tmp_path, "--plot")
    assert result.exit_code == 0, result.output
    image = plt.imread(tmp_path / "sweep.png")
    assert image.shape[:2] == (600, 800)


def test_installed_console_script(tmp_path):
    exe = shutil.which("csnets", path=str(Path(sys.executable).parent)) or shutil.which("csnets")
    assert exe, "the csnets console script is not installed"
    out = tmp_path / "sub"
    proc = subprocess.run([exe, "train", "--config", SMOKE, "--set", "train.num_epochs=1", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("test accuracy: ")
    assert "epoch   1/1" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "cs_nets", "train", "--config", SMOKE, "--set", "train.nope=1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: --set train.nope")
    assert "Traceback" not in proc.stderr


def test_plot_command_writes_the_pictures(smoke_run, tmp_path, plt):
    out, _ = smoke_run
    result = run("plot", out, "--out", tmp_path / "pics")
    assert result.exit_code == 0, result.output
    sizes = {p.name: plt.imread(p).shape[:2] for p in (tmp_path / "pics").glob("*.png")}
    assert sizes["curves.png"] == (450, 1000)
    assert sizes["confusion.png"] == (650, 700)
    assert sizes["templates.png"][1] == 1000  # a grid of the 32 first-layer templates of the smoke net


def test_train_plot_flag(tmp_path, plt):
    result = run("train", "--config", SMOKE, "--set", "train.num_epochs=1", "--out", tmp_path / "p", "--plot")
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "p").glob("*.png")} == {"curves.png", "confusion.png", "templates.png"}


def test_missing_matplotlib_is_one_line_and_refused_before_training(smoke_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    out, _ = smoke_run
    result = run("plot", out, "--out", tmp_path / "pics")
    assert result.exit_code == 1
    assert result.output.strip() == "error: plotting needs matplotlib: pip install 'cs_nets[plot]'"
    result = run("train", "--config", SMOKE, "--out", tmp_path / "q", "--plot")
    assert result.exit_code == 1 and "pip install 'cs_nets[plot]'" in result.output
    assert not (tmp_path / "q").exists()  # refused before anything was written


def test_checkpoint_whose_features_do_not_match_the_data(tmp_path):
    out = tmp_path / "hog"
    result = run("train", "--config", SMOKE, "--set", "features=[{type: hog}]", "--set", "train.num_epochs=1",
                 "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    with np.load(out / "model.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    assert meta["inputs"]["features"] == [{"type": "hog", "cell": 8, "bins": 9, "weight": 1.0}]
    assert arrays["params/W1"].shape[0] == 144 and "inputs/std" in arrays  # features are standardized
    meta["inputs"]["features"] = [{"type": "hog", "cell": 4, "bins": 9}]  # 576 values instead of 144
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(out / "model.npz", **arrays)
    result = run("evaluate", "--checkpoint", out)
    assert result.exit_code == 1
    assert "its features (hog) do not give its 144 inputs for 32x32 images" in result.output
    assert "Traceback" not in result.output


def test_ctrl_c_keeps_the_best_checkpoint_and_exits_130(tmp_path):
    import signal
    import time

    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "cs_nets", "train", "--config", SMOKE, "--set",
                             "train.num_epochs=100000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["best_epoch"] >= 1
    assert (out / "model.npz").exists()


@pytest.mark.parametrize("error, one_line", [
    (OSError(28, "No space left on device"), True),  # the machine's: one line, exit 1
    (PermissionError(13, "Permission denied"), True),
    (FileNotFoundError(2, "No such file or directory", "somewhere"), False),  # a bug's: its traceback stays
    (IsADirectoryError(21, "Is a directory"), False),
])
def test_only_the_machines_os_errors_become_one_line(monkeypatch, error, one_line):
    import cs_nets.runs.task

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(cs_nets.runs.task, "run", fail)
    result = run("train", "--config", SMOKE, "--quiet")
    assert result.exit_code == 1
    if one_line:
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert result.output.strip().splitlines()[-1] == f"error: {error}"
    else:
        assert result.exception is error  # not swallowed: CliRunner holds it, a terminal shows the traceback


@pytest.mark.parametrize("command", ["download", "info"])
def test_commands_without_a_config_do_not_promise_a_config_default(command):
    text = run(command, "--help").output
    assert "--data-dir" in text and "data.dir" not in text


def test_random_search_overwrite_speaks_of_its_own_end_not_of_epochs():
    text = " ".join(run("random-search", "--help").output.split())
    overwrite = text[text.index("--overwrite"):text.index("--data-dir")]
    assert "only once the new search has finished" in overwrite and "epoch" not in overwrite
