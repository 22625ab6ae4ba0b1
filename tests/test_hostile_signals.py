"""A second stop signal (SIGINT, SIGTERM, SIGHUP) while a run scores and saves its results: the run stops
at once, keeps its training state for --resume, exits 128 + the first signal and says so."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hostile import ROOT, SMOKE, fast_first, invoke, one_line, untouched

from cs_nets.cli import main
from cs_nets.data.pipeline import InputPipeline
from cs_nets.runs.checkpoint import load_checkpoint
from cs_nets.runs.signals import StoppedAgain, finishing, stop_signals_as_interrupt

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

TRAIN = ["train", "--config", str(SMOKE), "--set", "train.num_epochs=3", "--set", "data.synthetic_train=500"]
NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


def deliver(sig):
    os.kill(os.getpid(), sig)
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        time.sleep(0.001)


@pytest.mark.parametrize("first", NAMES, ids=NAMES.values())
@pytest.mark.parametrize("second", NAMES, ids=NAMES.values())
def test_a_second_signal_while_finishing_raises_stopped_again(first, second):
    steps = []
    with stop_signals_as_interrupt() as record:
        with pytest.raises(StoppedAgain, match=NAMES[second]):
            with finishing():
                deliver(first)
                steps.append("first recorded")
                deliver(second)
                steps.append("never")
    assert steps == ["first recorded"] and record.signals == [first, second]
    assert record.exit_code() == 128 + first


def test_two_signals_before_finishing_stop_it_on_entry():
    with stop_signals_as_interrupt() as record:
        with pytest.raises(KeyboardInterrupt):
            deliver(signal.SIGTERM)
        deliver(signal.SIGINT)  # counted while the trainer saves
        with pytest.raises(StoppedAgain):
            with finishing():
                pytest.fail("entered")
    assert record.exit_code() == 143


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    result = CliRunner().invoke(main, [*TRAIN, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


SCENARIOS = {
    # signals sent while the test split is scored -> exit code, status in summary.json
    "one SIGTERM: finishes, completed": ([signal.SIGTERM], 0, "completed"),
    "one SIGINT: finishes, completed": ([signal.SIGINT], 0, "completed"),
    "SIGTERM twice": ([signal.SIGTERM, signal.SIGTERM], 143, "interrupted"),
    "SIGINT twice": ([signal.SIGINT, signal.SIGINT], 130, "interrupted"),
    "SIGHUP twice": ([signal.SIGHUP, signal.SIGHUP], 129, "interrupted"),
    "SIGHUP then SIGTERM": ([signal.SIGHUP, signal.SIGTERM], 129, "interrupted"),
    "SIGTERM then three Ctrl-C": ([signal.SIGTERM, signal.SIGINT, signal.SIGINT, signal.SIGINT], 143,
                                  "interrupted"),
}


@pytest.mark.parametrize("signals,code,status", fast_first(
    [SCENARIOS["SIGTERM twice"], *(v for k, v in SCENARIOS.items() if k != "SIGTERM twice")],
    ["SIGTERM twice", *(k for k in SCENARIOS if k != "SIGTERM twice")]))
def test_signals_while_scoring(tmp_path, monkeypatch, reference, signals, code, status):
    """The signals arrive while the test split is scored (the slowest part of finishing a run)."""
    predict = InputPipeline.predict

    def predict_under_fire(self, model, X, **kwargs):
        for sig in signals:
            deliver(sig)
        return predict(self, model, X, **kwargs)

    monkeypatch.setattr(InputPipeline, "predict", predict_under_fire)
    out = tmp_path / "run"
    outcome = invoke(tmp_path, [*TRAIN, "--out", "run", "--quiet"], own=("run", ".run.lock"))
    untouched(outcome)  # nothing but the run's folder and its lock
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == status
    if status == "completed":
        one_line(outcome, code, r"^test accuracy: [0-9.]+$", start="test accuracy: ")
        return
    one_line(outcome, code, "^" + re.escape(
        "stopped again while scoring and saving: the test scores were not computed, the training state is kept; "
        "saved to run; continue with `csnets train --resume run`") + "$", start="stopped again")
    assert "test_accuracy" not in summary and summary["epochs"] == 3 and (out / "state.npz").is_file()
    monkeypatch.setattr(InputPipeline, "predict", predict)
    resumed = CliRunner().invoke(main, ["train", "--resume", str(out), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    ref, _, _ = load_checkpoint(reference)
    got, _, _ = load_checkpoint(out)
    assert all(np.array_equal(got.params[k], ref.params[k]) for k in ref.params)
    assert json.loads((out / "summary.json").read_text())["test_accuracy"] == \
        json.loads((reference / "summary.json").read_text())["test_accuracy"]


@pytest.mark.slow
def test_a_real_process_stopped_twice_while_scoring_exits_at_once(tmp_path, reap):
    """A subprocess scoring a large test split: SIGTERM, then SIGTERM again: it exits 143 within seconds."""
    out = tmp_path / "run"
    big = ["--set", "data.synthetic_test=60000", "--set", "model.hidden_dims=[512]", "--set", "train.num_epochs=1",
           "--set", "data.synthetic_train=600"]
    proc = reap(subprocess.Popen([sys.executable, "-m", "cs_nets", "train", "--config", str(SMOKE), *big, "--out",
                                  str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)}))
    deadline = time.monotonic() + 120
    while not (out / "model.npz").exists():  # written first when finishing, then the test split is scored
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    waited = time.monotonic() - sent
    if "test accuracy" in err:
        pytest.skip("the run finished scoring before the signals arrived")
    assert proc.returncode == 143, err
    assert "stopped again while scoring and saving" in err and "Traceback" not in err
    assert (Path(out) / "state.npz").is_file()
    print(f"exited {waited:.2f} s after the second SIGTERM")
