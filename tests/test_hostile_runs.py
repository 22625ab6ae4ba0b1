"""Run directories as a crash or a careless edit leaves them: summarize and plot show what there is."""

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cs_nets.cli import main
from cs_nets.errors import DataError
from cs_nets.runs.reader import collect_runs, read_batch_losses, read_metrics, read_summary

plt = pytest.importorskip("matplotlib.pyplot")

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "done"
    result = run("train", "--config", SMOKE, "--set", "train.num_epochs=3", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def summary(**fields):
    return json.dumps({"status": "completed", "val_accuracy": 0.5, "overrides": [], "command": "csnets train", **fields})


def make_run(root, name, **files):
    folder = root / name
    folder.mkdir(parents=True)
    for filename, text in files.items():
        (folder / filename.replace("_json", ".json").replace("_jsonl", ".jsonl")).write_text(text)
    return folder


def test_one_bad_run_never_fails_the_table(tmp_path):
    host = socket.gethostname()
    make_run(tmp_path, "a-good", summary_json=summary(val_accuracy=0.6, overrides=["model.reg=1"]))
    make_run(tmp_path, "b-corrupt", summary_json="{not json")
    make_run(tmp_path, "c-killed", summary_json=summary(status="running", pid=dead_pid(), host=host, val_accuracy=None),
             metrics_jsonl='{"epoch": 1, "val_accuracy": 0.3}\n{"epoch": 2, "val_accuracy": 0.4}\n')
    make_run(tmp_path, "d-running", summary_json=summary(status="running", pid=__import__("os").getpid(), host=host))
    make_run(tmp_path, "e-elsewhere", summary_json=summary(status="running", pid=dead_pid(), host="not-" + host))
    make_run(tmp_path, "f-no-summary", config_yaml="seed: 0\n", metrics_jsonl='{"epoch": 1, "val_accuracy": 0.2}\n')
    make_run(tmp_path, "h-array", summary_json="[1, 2, 3]")
    make_run(tmp_path, "i-deep", summary_json="[" * 50_000 + "]" * 50_000)
    make_run(tmp_path, "j-strings", summary_json=summary(val_accuracy="high", epochs="many", status=["x"]))
    (tmp_path / "not-a-run").mkdir()
    rows = {row["run"]: row for row in collect_runs(tmp_path)}
    status = {name: row["status"] for name, row in rows.items()}
    assert status == {"a-good": "completed", "b-corrupt": "corrupt", "c-killed": "killed", "d-running": "running",
                      "e-elsewhere": "running", "f-no-summary": "incomplete",
                      "h-array": "corrupt", "i-deep": "corrupt", "j-strings": "unknown"}
    assert rows["c-killed"]["val_accuracy"] == 0.4 and rows["c-killed"]["epochs"] == 2  # the best so far
    assert rows["j-strings"]["val_accuracy"] is None and rows["j-strings"]["epochs"] is None
    assert list(rows)[0] == "a-good"

    result = run("summarize", tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split()[:2] == ["a-good", "completed"]
    assert {line.split()[0]: line.split(maxsplit=1)[1] for line in lines[1:-1]}["c-killed"].startswith("killed ")
    assert lines[-1].startswith("best: a-good (val accuracy 0.6000)")
    assert len(lines) == 1 + 9 + 1


def test_summarize_without_any_finished_run_prints_the_table(tmp_path):
    make_run(tmp_path, "r1", summary_json="{oops")
    make_run(tmp_path, "r2", summary_json=summary(status="completed", val_accuracy=None))
    result = run("summarize", tmp_path)
    assert result.exit_code == 0, result.output
    assert [line.split()[:2] for line in result.output.splitlines()[1:]] == [["r2", "completed"], ["r1", "corrupt"]]


def test_read_metrics_skips_and_reports_bad_lines(tmp_path):
    make_run(tmp_path, "r", metrics_jsonl='{"epoch": 1, "val_accuracy": 0.1}\nthis is not json\n[1]\n'
                                          '{"epoch": 2, "val_accuracy": "x"}\n' + "[" * 1000 + "\n"
                                          '{"epoch": 3, "val_accuracy": 0.3, "train_loss": null}\n\n')
    problems = []
    records = read_metrics(tmp_path / "r", problems)
    assert [r["epoch"] for r in records] == [1, 3]
    assert len(problems) == 4
    assert "line 2 is not valid JSON" in problems[0] and "line 3 is not an epoch record" in problems[1]
    assert "line 5 nests 1000 levels deep" in problems[3]
    assert read_metrics(tmp_path / "r") == records  # without a list, silently


def test_readers_refuse_bad_files_in_one_line(tmp_path):
    folder = make_run(tmp_path, "r", summary_json='{"a": 1}')
    np.save(folder / "batch_losses.npy", np.zeros((2, 2), np.float32))
    with pytest.raises(DataError, match=r"has shape \(2, 2\), expected \(num_batches,\)"):
        read_batch_losses(folder)
    header = b"\x93NUMPY\x01\x00" + b"v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000,), }"
    (folder / "batch_losses.npy").write_bytes(header.ljust(128, b" ")[:-1] + b"\n")
    with pytest.raises(DataError, match=r"declares shape \(100000000000,\), 372.5 GiB: more than"):
        read_batch_losses(folder)
    (folder / "summary.json").write_bytes(b"\xff\xfe")
    with pytest.raises(DataError, match="not UTF-8"):
        read_summary(folder)


def test_plot_draws_a_killed_run_from_its_metrics(finished, tmp_path):
    killed = tmp_path / "killed"
    shutil.copytree(finished, killed)
    (killed / "summary.json").unlink()
    (killed / "batch_losses.npy").unlink()
    notes = []
    from cs_nets.plots import plot_run

    written = plot_run(killed, log=notes.append)
    assert sorted(p.name for p in written) == ["curves.png", "templates.png"]
    assert plt.imread(killed / "curves.png").shape[:2] == (450, 1000)
    assert "has no summary.json" in notes[0]
    result = run("plot", killed)
    assert result.exit_code == 0, result.output


def test_plot_skips_what_is_corrupt(finished, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(finished, broken)
    with open(broken / "metrics.jsonl", "a") as f:
        f.write("this is not json\n")
    (broken / "summary.json").write_text("{")
    (broken / "model.npz").write_bytes(b"junk")
    notes = []
    from cs_nets.plots import plot_run

    written = plot_run(broken, tmp_path / "pics", log=notes.append)
    assert [p.name for p in written] == ["curves.png"]
    assert len(notes) == 3 and "not valid JSON" in notes[0] and "not a cs_nets checkpoint" in notes[1]
    assert "line 4 is not valid JSON" in notes[2]
    result = run("plot", broken, "--out", tmp_path / "cli")
    assert result.exit_code == 0 and "Traceback" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("plot", empty)
    assert result.exit_code == 1 and result.output.startswith("error: nothing to draw in")
