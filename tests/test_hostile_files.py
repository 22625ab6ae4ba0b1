"""Files users hand cs_nets are opened as regular files only: a FIFO, a device or a socket in place of a
config, a data batch, an archive, a checkpoint, a run's state or summary is refused in one line, at once.

Every case runs csnets as a subprocess with a timeout: a hang fails the test instead of hanging the suite.
"""

import os
import shutil
import socket
import tarfile
import tempfile
from pathlib import Path

import pytest
from archive_writer import write_archive
from hostile import SMOKE, fast_first, invoke, one_line, spawn, untouched

from cs_nets.data.synthetic import make_synthetic

CIFAR = ["--set", "data.source=cifar10", "--set", "data.num_val=50", "--set", "train.num_epochs=1"]


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    """An extracted python-layout CIFAR-10 folder of 300 + 60 synthetic images (5 training batches)."""
    root = tmp_path_factory.mktemp("cifar")
    data = make_synthetic(num_train=300, num_test=60, seed=3)
    archive, _ = write_archive(root, data.X_train, data.y_train, data.X_test, data.y_test, fmt="python")
    with tarfile.open(archive) as tar:
        tar.extractall(root / "data", filter="data")
    archive.unlink()
    return root / "data"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    outcome = invoke(out.parent, ["train", "--config", SMOKE, "--set", "train.num_epochs=1", "--out", out, "--quiet"])
    assert outcome.code == 0, outcome.out
    return out


def make_special(path: Path, kind: str) -> None:
    """Put a FIFO, a symbolic link to a device, or a listening-less Unix socket at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind in ("zero", "null", "urandom"):
        path.symlink_to(f"/dev/{kind}")
    elif kind == "socket":
        # a socket path must be short: bind in a short temporary folder, then move the socket file
        short = Path(tempfile.mkdtemp(prefix="s", dir="/tmp")) / "s"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(short))
        os.rename(short, path)
        short.parent.rmdir()
    else:
        raise ValueError(kind)


KINDS = fast_first(["fifo", "zero", "socket"], ["fifo", "zero", "socket"])  # FIFOs in the quick suite
WORDS = {"fifo": "a FIFO", "zero": "a character device", "null": "a character device", "urandom": "a character device",
         "socket": "a socket"}


@pytest.mark.parametrize("kind", [*KINDS, *fast_first(["", "null", "urandom"])[1:]])
def test_config(tmp_path, kind):
    make_special(tmp_path / "c.yaml", kind)
    outcome = spawn(tmp_path, ["train", "--config", "c.yaml", "--quiet"], timeout=30)
    one_line(outcome, 2, rf"config c.yaml is {WORDS[kind]}.*, not a regular file: refused")
    untouched(outcome)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", fast_first(["data_batch_5", "data_batch_1", "test_batch", "batches.meta"]))
def test_data_file(tmp_path, data_folder, kind, name):
    shutil.copytree(data_folder, tmp_path / "data")
    make_special(tmp_path / "data" / "cifar-10-batches-py" / name, kind)
    outcome = spawn(tmp_path, ["train", "--config", SMOKE, *CIFAR, "--data-dir", "data", "--out", "r", "--quiet"],
                    timeout=30)
    one_line(outcome, 1, rf"data file .*{name} is {WORDS[kind]}.*, not a regular file: refused")
    untouched(outcome)


@pytest.mark.parametrize("kind", KINDS)
def test_archive_in_the_data_folder(tmp_path, kind):
    make_special(tmp_path / "data" / "cifar-10-python.tar.gz", kind)
    outcome = spawn(tmp_path, ["download", "--data-dir", "data", "--quiet"], timeout=30,
                    own=("data/.cifar-10-python.tar.gz.lock",))
    one_line(outcome, 1, rf"archive .*cifar-10-python.tar.gz is {WORDS[kind]}.*, not a regular file: refused")
    untouched(outcome)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("as_path", [False, True], ids=["run folder", "model.npz"])
def test_checkpoint(tmp_path, finished, kind, as_path):
    shutil.copytree(finished, tmp_path / "r")
    make_special(tmp_path / "r" / "model.npz", kind)
    target = "r/model.npz" if as_path else "r"
    outcome = spawn(tmp_path, ["evaluate", "--checkpoint", target, "--quiet"], timeout=30)
    one_line(outcome, 1, rf"checkpoint r/model.npz is {WORDS[kind]}.*, not a regular file: refused")
    untouched(outcome)


def interrupted_copy(finished, dest: Path) -> None:
    """A copy of a finished run that looks interrupted after its last epoch (so --resume reads its state)."""
    import json

    shutil.copytree(finished, dest)
    summary = json.loads((dest / "summary.json").read_text())
    (dest / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    (dest / "model.npz").unlink()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name,what", fast_first([("state.npz", "training state"), ("summary.json", "summary"),
                                                    ("config.yaml", "config")]))
def test_run_files_on_resume(tmp_path, finished, kind, name, what):
    interrupted_copy(finished, tmp_path / "r")
    (tmp_path / "r" / "state.npz").write_bytes(b"")  # replaced below when it is the case's file
    make_special(tmp_path / "r" / name, kind)
    outcome = spawn(tmp_path, ["train", "--resume", "r", "--quiet"], timeout=30, own=(".r.lock",))
    one_line(outcome, 1, rf"{what} r/{name} is {WORDS[kind]}.*, not a regular file: refused")  # a run's file: data
    untouched(outcome)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_feature_cache_is_rebuilt(tmp_path, data_folder, kind):
    """A FIFO where a feature cache file would be: noted and recomputed, never read (no hang)."""
    from cs_nets.config import load_config
    from cs_nets.data.pipeline import prepare_dataset

    shutil.copytree(data_folder, tmp_path / "data")
    config = load_config(SMOKE, ["data.source=cifar10", "data.num_val=50", "features=[{type: color_hist}]"])
    notes = []
    prepare_dataset(config, tmp_path / "data", progress=False, log=notes.append)
    caches = sorted((tmp_path / "data" / "features").glob("features-*.npy"))
    assert len(caches) == 3  # train, val, test
    for path in caches:
        make_special(path, kind)
    outcome = spawn(tmp_path, ["train", "--config", SMOKE, *CIFAR, "--set", "features=[{type: color_hist}]",
                               "--data-dir", "data", "--out", "r"], timeout=60, own=("r", ".r.lock", "data/features"))
    assert outcome.code == 0, outcome.out
    assert outcome.out.count("is unusable") == 3 and "not a regular file" in outcome.out
    assert all(p.is_file() and not p.is_symlink() for p in caches)
    untouched(outcome)
