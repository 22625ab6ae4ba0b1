"""The commands against CIFAR-10 archives served over real HTTP on 127.0.0.1 (no mocks)."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cs_nets.cli import main

SMOKE = str(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml")


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


@pytest.mark.parametrize("fmt", ["python", "binary"])
def test_train_downloads_then_evaluate_reproduces(cifar_server, tmp_path, fmt):
    name = f"cifar-10-{fmt}.tar.gz"
    config = tmp_path / "linear.yaml"
    config.write_text(f"""
data: {{format: {fmt}, url: "{cifar_server.url_for(name)}", md5: {cifar_server.md5[name]}, num_val: 50}}
model: {{type: linear, loss: svm, reg: 1.0e-3}}
optim: {{learning_rate: 1.0e-3, momentum: 0.9}}
train: {{batch_size: 50, num_epochs: 2}}
""")
    data_dir, out = tmp_path / "data", tmp_path / "run"
    result = run("train", "--config", config, "--data-dir", data_dir, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert len(cifar_server.requests) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert sum(map(sum, summary["test_confusion"])) == len(cifar_server.dataset.y_test)
    # evaluate re-reads the extracted data: no new request, the same accuracy to the last digit
    report = json.loads(run("evaluate", "--checkpoint", out, "--data-dir", data_dir, "--json").stdout)
    assert report["accuracy"] == summary["test_accuracy"]
    assert len(cifar_server.requests) == 1


def test_download_and_info(cifar_server, tmp_path):
    url, md5 = cifar_server.url_for("cifar-10-python.tar.gz"), cifar_server.md5["cifar-10-python.tar.gz"]
    data_dir = tmp_path / "data"
    result = run("download", "--data-dir", data_dir, "--url", url, "--md5", md5)
    assert result.exit_code == 0, result.output
    assert (data_dir / "cifar-10-batches-py" / "data_batch_1").exists()
    again = run("download", "--data-dir", data_dir, "--url", url, "--md5", md5)
    assert again.exit_code == 0 and "ready" in again.output
    assert len(cifar_server.requests) == 1  # the second download made no request
    info = run("info", "--data-dir", data_dir)
    assert info.exit_code == 0, info.output
    lines = info.output.splitlines()
    assert "images: 503 train, 101 test" in lines
    table = lines[lines.index(next(x for x in lines if x.startswith("class "))) + 1:
                  lines.index("checksums against the official files:")]
    counts = {row.split()[0]: (int(row.split()[1]), int(row.split()[2])) for row in table}
    assert len(counts) == 10
    assert sum(train for train, _ in counts.values()) == 503 and sum(test for _, test in counts.values()) == 101
    assert any("data_batch_1" in line and "differs" in line for line in lines)  # not the official files


@pytest.mark.slow
def test_download_errors_are_one_line(cifar_server, tmp_path, dead_url):
    result = run("download", "--data-dir", tmp_path / "a", "--url", cifar_server.url_for("cifar-10-python.tar.gz"),
                 "--md5", "0" * 32, "--quiet")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "0" * 32 in result.output
    assert cifar_server.md5["cifar-10-python.tar.gz"] in result.output
    result = run("download", "--data-dir", tmp_path / "b", "--url", dead_url, "--quiet")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and dead_url in result.output
    assert "Traceback" not in result.output


def test_evaluate_refuses_a_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "model.npz"
    bad.write_bytes(b"not a zip file")
    result = run("evaluate", "--checkpoint", bad)
    assert result.exit_code == 1
    assert "is not a cs_nets checkpoint" in result.output and "Traceback" not in result.output
    np.savez(tmp_path / "other.npz", W=np.zeros(3))
    result = run("evaluate", "--checkpoint", tmp_path / "other.npz")
    assert result.exit_code == 1 and "not a cs_nets checkpoint" in result.output


def test_features_are_cached_in_the_data_folder_and_reused(cifar_server, tmp_path):
    name = "cifar-10-python.tar.gz"
    config = tmp_path / "features.yaml"
    config.write_text(f"""
data: {{url: "{cifar_server.url_for(name)}", md5: {cifar_server.md5[name]}, num_val: 50}}
features: [hog, color_hist]
model: {{type: linear, loss: svm}}
train: {{batch_size: 50, num_epochs: 1}}
""")
    data_dir = tmp_path / "data"
    first = run("train", "--config", config, "--data-dir", data_dir, "--out", tmp_path / "a", "--quiet")
    assert first.exit_code == 0, first.output
    cached = sorted((data_dir / "features").glob("*.npy"))
    assert len(cached) == 3  # train, validation and test splits, each keyed by its own rows
    stamps = [p.stat().st_mtime_ns for p in cached]
    second = run("train", "--config", config, "--data-dir", data_dir, "--out", tmp_path / "b", "--quiet")
    assert second.exit_code == 0, second.output
    assert [p.stat().st_mtime_ns for p in sorted((data_dir / "features").glob("*.npy"))] == stamps
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert a["test_accuracy"] == b["test_accuracy"]
    # a corrupt cache file is recomputed, with a warning, to the same result
    cached[0].write_bytes(b"garbage")
    third = run("train", "--config", config, "--data-dir", data_dir, "--out", tmp_path / "c")
    assert third.exit_code == 0
    assert "feature cache" in third.output
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["test_accuracy"] == a["test_accuracy"]


@pytest.mark.slow
def test_train_without_network_fails_cleanly_and_leaves_no_run_directory(tmp_path, dead_url):
    out = tmp_path / "run"
    result = run("train", "--config", SMOKE, "--set", "data.source=cifar10",
                 "--set", f"data.url={dead_url}", "--data-dir", tmp_path / "data", "--out", out, "--quiet")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and dead_url in result.output
    assert "by hand, or use a mirror (csnets download --url, or data.url in a config)" in result.output
    assert not out.exists()
