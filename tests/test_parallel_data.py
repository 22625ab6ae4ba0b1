"""Many processes, one data folder: real parallel `csnets` processes against the test HTTP server.

Exactly one process downloads and extracts, the others wait for it (cs_nets.data.cifar10
locks the folder with filelock); likewise one computes each feature cache file.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

# Runs csnets with extract_features counted: each call appends its image count to a file.
COUNTING_CSNETS = """
import sys
from pathlib import Path

import cs_nets.features.cache as cache

count_file = Path(sys.argv.pop(1))
extract = cache.extract_features


def counted(X, *args, **kwargs):
    with open(count_file, "a") as f:
        f.write(f"{len(X)}\\n")
    return extract(X, *args, **kwargs)


cache.extract_features = counted
from cs_nets.cli import main  # noqa: E402

main(prog_name="csnets")
"""


def start(*args):
    return subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(procs):
    results = [proc.communicate(timeout=180) for proc in procs]
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err
    return results


@pytest.mark.slow
def test_parallel_downloads_transfer_the_archive_once(cifar_server, tmp_path):
    name = "cifar-10-python.tar.gz"
    url, md5 = cifar_server.url_for(name), cifar_server.md5[name]
    cifar_server.delay = 2.0  # a slow link: every process starts while the first transfer is under way
    data_dir = tmp_path / "data"
    results = finish([start("-m", "cs_nets", "download", "--data-dir", data_dir, "--url", url, "--md5", md5)
                      for _ in range(3)])
    gets = [r for r in cifar_server.requests if r.method == "GET"]
    assert len(gets) == 1 and gets[0].status == 200
    waited = sum("another process is downloading or extracting" in err for _, err in results)
    assert waited >= 1  # the race did happen: someone found the folder locked
    assert all(err.strip().splitlines()[-1].startswith("CIFAR-10 is ready in") for _, err in results)
    leftovers = [p.name for p in data_dir.iterdir() if p.name.startswith(".extract") or p.suffix == ".part"]
    assert leftovers == [] and (data_dir / "cifar-10-batches-py" / "test_batch").is_file()
    assert list(data_dir.glob("*.lock")) == []  # the lock file goes once the folder is complete


@pytest.mark.slow
def test_parallel_trainings_share_one_download_and_one_feature_cache(cifar_server, tmp_path):
    name = "cifar-10-python.tar.gz"
    config = tmp_path / "features.yaml"
    config.write_text(f"""
data: {{url: "{cifar_server.url_for(name)}", md5: {cifar_server.md5[name]}, num_val: 50}}
features: [hog, color_hist]
model: {{type: linear, loss: svm}}
train: {{batch_size: 50, num_epochs: 1}}
""")
    script, counts = tmp_path / "counting_csnets.py", tmp_path / "extract_calls"
    script.write_text(COUNTING_CSNETS)
    cifar_server.delay = 2.0
    data_dir = tmp_path / "data"
    finish([start(script, counts, "train", "--config", config, "--data-dir", data_dir, "--out", tmp_path / f"run{i}",
                  "--quiet") for i in range(3)])
    assert len([r for r in cifar_server.requests if r.method == "GET"]) == 1
    # One extraction per split (453 train, 50 val, 101 test), by whichever process came first.
    assert sorted(int(n) for n in counts.read_text().split()) == [50, 101, 453]
    assert len(list((data_dir / "features").glob("features-*.npy"))) == 3
    assert list((data_dir / "features").glob("*.lock")) == []  # no lock file outlives its cache file
    summaries = [json.loads((tmp_path / f"run{i}" / "summary.json").read_text()) for i in range(3)]
    assert len({s["test_accuracy"] for s in summaries}) == 1
    assert np.array_equal(*(np.load(tmp_path / f"run{i}" / "model.npz")["params/W"] for i in (0, 2)))
